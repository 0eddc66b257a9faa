"""The published datasets' data_io configs instantiate through Hydra and feed the shared batching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures_published import (
    write_goldin_fixture,
    write_hoefling_fixture,
    write_karamanlis_fixture,
    write_maheswaranathan_fixture,
)
from openretina_data.batching import TestBatches, TrainBatches, ValidationBatches
from openretina_data.records import Dataset
from openretina_data.splits import make_splits

pytest.importorskip(
    "hydra", reason="the configs need hydra-core (absent when openretina-data is tested alone)"
)
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

CONFIGS = Path(__file__).parents[2] / "configs"


def _data_io(name: str, overrides: list[str]) -> Dataset:
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        config = compose(overrides=["+paths=default", "paths.data_dir=null", f"+data_io={name}", *overrides])
    return instantiate(config.data_io)


@pytest.mark.parametrize(
    ("name", "pixel_size"), [("hoefling_2024_high_res", 12.5), ("hoefling_2024_low_res", 50.0)]
)
def test_hoefling_config_instantiates_with_published_selection(
    tmp_path: Path, name: str, pixel_size: float
) -> None:
    paths = write_hoefling_fixture(tmp_path)
    dataset = _data_io(
        name,
        [
            f"+paths.responses_path={paths['responses']}",
            f"+paths.movies_path={paths['movies']}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            "data_io.quality_checks.verbose=false",
        ],
    )
    assert dataset.data_info.pixel_size_um == pixel_size
    assert dataset.n_neurons == {"session_1_ventral1_20200226": 2, "session_2_ventral2_20200303": 2}

    splits = make_splits(dataset, clip_length=150, train_chunk_size=50, seed=42)
    for session in dataset.sessions.values():
        assert len(session.val_clip_indices) == 15
    batch = next(iter(TrainBatches(dataset, splits, batch_size=4, seed=0)))
    assert batch.stimulus.shape == (4, 2, 50, 4, 4)
    assert batch.responses.shape == (4, 50, 2)
    validation = next(iter(ValidationBatches(dataset, splits, batch_size=4)))
    assert validation.stimulus.shape[1:3] == (2, 150)
    test = next(iter(TestBatches(dataset)))
    assert test.stimulus.shape[1:3] == (2, 750)


def test_hoefling_selection_can_be_switched_off(tmp_path: Path) -> None:
    paths = write_hoefling_fixture(tmp_path)
    dataset = _data_io(
        "hoefling_2024_high_res",
        [
            f"+paths.responses_path={paths['responses']}",
            f"+paths.movies_path={paths['movies']}",
            "data_io.quality_checks=null",
        ],
    )
    assert set(dataset.n_neurons.values()) == {5}


def test_maheswaranathan_config_instantiates_and_batches(tmp_path: Path) -> None:
    root = write_maheswaranathan_fixture(tmp_path)
    dataset = _data_io("maheswaranathan_2023", [f"data_io.base_data_path={root}"])
    assert dataset.n_neurons == {"15-10-07": 5, "15-11-21a": 5}
    assert dataset.data_info.frame_rate_hz == 100.0
    splits = make_splits(dataset, clip_length=90, num_val_clips=1, train_chunk_size=50, seed=42)
    batch = next(iter(TrainBatches(dataset, splits, batch_size=2, seed=0)))
    assert batch.stimulus.shape == (2, 1, 50, 50, 50)
    assert batch.stimulus.dtype == np.float32
    assert abs(float(batch.stimulus.mean())) < 0.2  # z-scored frames


def test_goldin_config_instantiates_and_batches_single_frames(tmp_path: Path) -> None:
    root = write_goldin_fixture(tmp_path)
    dataset = _data_io("goldin_2022", [f"paths.data_dir={root}", "data_io.species=axolotl"])
    assert dataset.n_neurons == {"axolotl_retina_1": 5}
    assert dataset.data_info.pixel_size_um == 28.0
    splits = make_splits(dataset, clip_length=1, num_val_clips=6, train_chunk_size=1, seed=42)
    batch = next(iter(TrainBatches(dataset, splits, batch_size=54, seed=0)))
    assert batch.stimulus.shape == (54, 1, 1, 16, 16)


def test_karamanlis_config_builds_the_movie_into_the_cache_and_batches(tmp_path: Path) -> None:
    root = write_karamanlis_fixture(tmp_path)
    overrides = [f"paths.data_dir={root}", f"paths.cache_dir={tmp_path / 'cache'}"]
    dataset = _data_io("karamanlis_2024", [*overrides, "data_io.species=marmoset"])
    assert dataset.n_neurons == {"20220412_marmoset_retina2": 6}
    assert dataset.data_info.frame_rate_hz == 85.0
    assert list((tmp_path / "cache").rglob("train.npy"))
    splits = make_splits(dataset, clip_length=75, num_val_clips=2, train_chunk_size=50, seed=42)
    batch = next(iter(TrainBatches(dataset, splits, batch_size=2, seed=0)))
    assert batch.stimulus.shape == (2, 1, 50, 60, 80)
    test = next(iter(TestBatches(dataset)))
    assert test.trials.shape[1] == 3
