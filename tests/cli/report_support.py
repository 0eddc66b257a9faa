"""A trained tiny run with its report, shared by the report tests (trained once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import run_cli
from robust_support import TINY, write_small_retina

EXP = "simulated_retina_core_readout"


class NoCapture:
    """run_cli's capsys for a session fixture (output goes to the terminal)."""

    def readouterr(self) -> object:
        class Captured:
            out = ""
            err = ""

        return Captured()


@pytest.fixture(scope="session")
def report_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run of the default experiment on a two-colour simulated retina (green, UV) with
    repeated test trials, trained for 2 epochs with paths.log_dir given."""
    data = write_small_retina(
        tmp_path_factory.mktemp("report_retina") / "data", neurons_per_session=5, num_colors=2, test_trials=4
    )
    log_dir = tmp_path_factory.mktemp("report_logs")
    result = run_cli(
        ["train", f"paths.data_dir={data}", f"paths.log_dir={log_dir}", *TINY, "trainer.max_epochs=2"],
        NoCapture(),  # type: ignore[arg-type]
    )
    assert result.code == 0
    (run,) = sorted((log_dir / "runs" / EXP).iterdir())
    return run
