"""The default experiment keeps its quality: `openretina train` with no data options fits the
built-in simulated retina to at least 0.9 of the ground-truth ceiling (issue 14 keeps this test)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import read_results, run_cli, run_dirs


@pytest.mark.slow
def test_default_experiment_reaches_ninety_percent_of_the_ceiling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli(
        [
            "train",
            f"paths.cache_dir={tmp_path / 'cache'}",
            f"paths.log_dir={tmp_path / 'logs'}",
            "report=false",
            "++trainer.enable_progress_bar=false",
        ],
        capsys,
    )
    assert result.code == 0, result.err
    assert "Readout positions start at the receptive-field centres of 64/64 neurons" in result.out
    (run_dir,) = run_dirs(tmp_path / "logs", "simulated_retina_core_readout")
    metrics = read_results(run_dir)["metrics"]
    assert metrics["test/natural_test/fraction_ceiling"] >= 0.9
