"""Helpers for the cli tests: tiny-run overrides and in-process command runs."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pytest
from openretina_cli.main import main

# Overrides that make a training run tiny: small data windows, a small model, one short epoch.
TINY_RUN = [
    "dataloader.batch_size=8",
    "dataloader.clip_length=40",
    "dataloader.train_chunk_size=20",
    "dataloader.num_val_clips=3",
    "model.hidden_channels=[4,4]",
    "model.temporal_kernel_sizes=[5,3]",
    "model.spatial_kernel_sizes=[3,3]",
    "trainer=debug",
    "trainer.detect_anomaly=false",
    "trainer.enable_progress_bar=false",
]


@dataclass
class Result:
    code: int
    out: str
    err: str


def tutorial_args(data_dir: Path, log_dir: Path) -> list[str]:
    return [
        "--config-name",
        "hdf5_core_readout",
        f"paths.data_dir={data_dir}",
        "data_io.test_names=[random_noise_2]",
        f"paths.log_dir={log_dir}",
        *TINY_RUN,
    ]


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> Result:
    """Run ``openretina ARGS`` in this process and return its exit code and output."""
    for handler in logging.getLogger().handlers[:]:  # handlers bound to an earlier test's streams
        logging.getLogger().removeHandler(handler)
    code = 0
    try:
        main(args)
    except SystemExit as ex:
        code = ex.code if isinstance(ex.code, int) else (0 if ex.code is None else 1)
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def run_dirs(log_dir: Path, exp_name: str = "hdf5_core_readout") -> list[Path]:
    root = log_dir / "runs" / exp_name
    return sorted(root.iterdir()) if root.is_dir() else []


def read_results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())
