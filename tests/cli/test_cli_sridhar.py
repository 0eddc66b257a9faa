"""`openretina train` on Sridhar 2025 fixture folders: a single-cell model takes each cell's
receptive field from its STA, and a bad file stops the run with one message and nothing written."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from cli_helpers import run_cli, run_dirs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from fixtures_sridhar import DEFAULT_FIXATIONS, write_sridhar_nm_fixture

FAST = [
    "trainer=debug",
    "trainer.limit_train_batches=1",
    "trainer.limit_val_batches=1",
    "trainer.detect_anomaly=false",
    "trainer.enable_progress_bar=false",
    "report=false",
    "data_io.test_frames=30",
    "dataloader.clip_length=40",
    "dataloader.train_chunk_size=40",
]


@pytest.mark.slow
def test_single_cell_model_is_placed_on_the_cells_receptive_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_sridhar_nm_fixture(
        tmp_path / "data", frames_per_trial=40, n_trials=5, test_frames=30, stas=True
    )
    args = [
        "train",
        "--config-name",
        "sridhar_2025_nm_single_cell_sc",
        f"paths.data_dir={root}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        "data_io.cells={01: [0, 3], 02: [5]}",
        *FAST,
    ]
    result = run_cli(args, capsys)
    assert result.code == 0, result.err
    from openretina_models import load_model

    (run_dir,) = run_dirs(tmp_path / "logs", "sridhar_2025_nm_single_cell_sc")
    model = load_model(run_dir / "model")
    # the fixture's STA of cell c peaks at (40 + 5c, 60 + 7c) on the 150x200 white noise; the
    # natural movie is flipped top-down relative to it and cropped by 35 rows and 55 columns
    assert model.architecture["kwargs"]["rf_locations"] == {"01": [[74, 5], [59, 26]], "02": [[49, 40]]}


def test_a_bad_fixation_file_is_one_message_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_sridhar_nm_fixture(
        tmp_path / "data", sessions=("03",), frames_per_trial=40, n_trials=5, test_frames=30, n_images=2
    )
    fixations = root / "fixations" / DEFAULT_FIXATIONS
    lines = fixations.read_text().splitlines()
    lines[40] = "5 " + lines[40].split(" ", 1)[1]  # an image index the folder does not have
    fixations.write_text("\n".join(lines) + "\n")
    args = [
        "train",
        "--config-name",
        "sridhar_2025_nm_core_readout",
        f"paths.data_dir={root}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        *FAST,
    ]
    result = run_cli(args, capsys)
    assert result.code != 0
    assert str(fixations) in result.err
    assert "image index (field 1)" in result.err
    assert "outside 0..1" in result.err
    assert "line 41" in result.err
    assert result.err.count("Fix:") == 1
    assert not list((tmp_path / "cache").rglob("*.npy"))
    assert not run_dirs(tmp_path / "logs", "sridhar_2025_nm_core_readout")
