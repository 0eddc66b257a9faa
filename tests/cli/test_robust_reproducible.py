"""Reproducibility: the same seed on the same machine gives identical metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from openretina_cli.main import main
from robust_support import metrics, retina_args, retina_dir, run_dir

__all__ = ["retina_dir"]  # the fixture, used by name


def _train(args: list[str]) -> None:
    code: int | str | None = 0
    try:
        main(["train", *args])
    except SystemExit as ex:
        code = ex.code
    assert code in (0, None), f"openretina train exited {code}"


@pytest.mark.slow
def test_same_seed_same_metrics(retina_dir: Path, tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    args = retina_args(retina_dir, log_dir, "trainer.max_epochs=2", "model.dropout=0.2")
    for name in ("first", "second"):
        _train([*args, "seed=3", f"exp_name={name}"])
    _train([*args, "seed=4", "exp_name=other"])
    first, second = metrics(run_dir(log_dir, "first")), metrics(run_dir(log_dir, "second"))
    assert first == second  # bit-identical, not merely close
    assert metrics(run_dir(log_dir, "other"))["val/correlation"] != first["val/correlation"]
