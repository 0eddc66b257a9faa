"""Helpers for the robust-run tests: a tiny simulated retina and `openretina train` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# A small model and short data windows: one epoch takes a fraction of a second of compute.
TINY = [
    "model.hidden_channels=[4]",
    "model.temporal_kernel_sizes=[5]",
    "model.spatial_kernel_sizes=[3]",
    "dataloader.batch_size=8",
    "dataloader.train_chunk_size=20",
    "dataloader.clip_length=30",
    "dataloader.num_val_clips=2",
    "trainer.accelerator=cpu",
    "++trainer.enable_progress_bar=false",
]


SMALL_RETINA = {
    "num_sessions": 2,
    "neurons_per_session": 4,
    "num_colors": 1,
    "height": 8,
    "width": 8,
    "train_frames": 600,
    "num_stimuli": 2,
    "clip_length": 30,
    "test_frames": 120,
    "test_trials": 2,
}


def write_small_retina(directory: Path, **changes: int) -> Path:
    """A simulated retina small enough for a run of a few seconds (`SMALL_RETINA` plus `changes`)."""
    from openretina_data import write_retina_dataset

    return write_retina_dataset(directory, **{**SMALL_RETINA, **changes})


@pytest.fixture(scope="session")
def retina_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated retina: 2 sessions of 4 neurons, 1 colour, 8x8 pixels, 600 training frames."""
    directory = tmp_path_factory.mktemp("retina") / "data"
    write_small_retina(directory)
    return directory


def retina_args(data_dir: Path, log_dir: Path, *extra: str) -> list[str]:
    """``openretina train`` arguments for a tiny run of the default experiment on ``data_dir``."""
    return [f"paths.data_dir={data_dir}", f"paths.log_dir={log_dir}", *TINY, *extra]


def command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "openretina_cli.main", "train", *args]


def environment() -> dict[str, str]:
    """A child environment that cannot start other work on this shared machine by accident."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
    for name in ("LOCAL_RANK", "WORLD_SIZE", "MASTER_PORT", "MASTER_ADDR", "NODE_RANK"):
        env.pop(name, None)
    return env


def train(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``openretina train ARGS`` in a fresh process; fail the test with its output if it fails."""
    done = subprocess.run(
        command(args), cwd=cwd, env=environment(), capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        pytest.fail(
            f"openretina train {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
    return done


def run_dir(log_dir: Path, exp_name: str) -> Path:
    found = sorted((log_dir / "runs" / exp_name).iterdir())
    assert len(found) == 1, found
    return found[0]


def metrics(directory: Path) -> dict[str, float | None]:
    return json.loads((directory / "results.json").read_text())["metrics"]
