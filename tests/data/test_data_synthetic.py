"""The tutorial and simulated-retina writers: 1.x shapes, determinism, atomic writes, ground truth."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from openretina_data import (
    DataError,
    load_hdf5_dataset,
    read_ground_truth,
    write_retina_dataset,
    write_tutorial_dataset,
)

_SMALL_RETINA = {
    "neurons_per_session": 6,
    "height": 10,
    "width": 8,
    "train_frames": 400,
    "clip_length": 50,
    "test_frames": 60,
    "test_trials": 3,
}


def _contents(root: Path) -> dict[str, np.ndarray]:
    arrays = {}
    for path in sorted(root.rglob("*")):
        if path.suffix == ".npy":
            arrays[str(path.relative_to(root))] = np.load(path)
        elif path.suffix in (".h5", ".hdf5"):
            with h5py.File(path) as handle:
                handle.visititems(
                    lambda key, item, p=path: (
                        arrays.__setitem__(f"{p.relative_to(root)}/{key}", item[()])
                        if isinstance(item, h5py.Dataset)
                        else None
                    )
                )
    return arrays


def test_tutorial_layout_matches_1x(tutorial_dir: Path) -> None:
    names = sorted(p.name for p in tutorial_dir.iterdir())
    assert names == ["session_0.hdf5", "session_1.hdf5", "stimuli"]
    for i in range(4):
        stimulus = np.load(tutorial_dir / "stimuli" / f"random_noise_{i}.npy", mmap_mode="r")
        assert stimulus.shape == (3, 10 * (70 + i), 16, 8)
        assert stimulus.dtype == np.float64
    for s in range(2):
        with h5py.File(tutorial_dir / f"session_{s}.hdf5") as handle:
            n = handle["session_info/celltypes"].shape[0]
            assert 10 <= n <= 29
            assert sorted(handle) == [
                "responses_random_noise_0",
                "responses_random_noise_1",
                "responses_random_noise_2",
                "responses_random_noise_3",
                "session_info",
            ]
            for i in range(4):
                assert handle[f"responses_random_noise_{i}"].shape == (n, 10 * (70 + i))


def test_tutorial_default_shapes_are_the_1x_ones(tmp_path: Path) -> None:
    root = write_tutorial_dataset(tmp_path / "t", num_stimuli=1, num_sessions=1)
    assert np.load(root / "stimuli" / "random_noise_0.npy", mmap_mode="r").shape == (3, 75 * 70, 16, 8)


def test_tutorial_responses_are_a_causal_function_of_the_stimulus(tutorial_dir: Path) -> None:
    stimulus = np.load(tutorial_dir / "stimuli" / "random_noise_0.npy")
    with h5py.File(tutorial_dir / "session_0.hdf5") as handle:
        response = handle["responses_random_noise_0"][()]
    # the best single-pixel, single-lag linear predictor explains a clear share of some neuron
    past = stimulus.sum(axis=0).reshape(stimulus.shape[1], -1)  # (T, pixels)
    best = 0.0
    for lag in range(1, 4):
        x = past[:-lag] - past[:-lag].mean(0)
        y = response[:, lag:] - response[:, lag:].mean(1, keepdims=True)
        corr = (y @ x) / np.outer(np.linalg.norm(y, axis=1), np.linalg.norm(x, axis=0))
        best = max(best, float(np.abs(corr).max()))
    assert best > 0.3


def test_writers_are_deterministic_per_seed(tmp_path: Path) -> None:
    small = {"num_stimuli": 2, "clip_length": 2, "height": 4, "width": 3}
    a = _contents(write_tutorial_dataset(tmp_path / "a", seed=1, **small))
    b = _contents(write_tutorial_dataset(tmp_path / "b", seed=1, **small))
    c = _contents(write_tutorial_dataset(tmp_path / "c", seed=2, **small))
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a if k in c and a[k].shape == c[k].shape)
    r1 = _contents(write_retina_dataset(tmp_path / "r1", seed=4, **_SMALL_RETINA))
    r2 = _contents(write_retina_dataset(tmp_path / "r2", seed=4, **_SMALL_RETINA))
    assert r1.keys() == r2.keys()
    assert all(np.array_equal(r1[k], r2[k]) for k in r1)


def test_writers_refuse_to_overwrite_and_write_atomically(tmp_path: Path) -> None:
    small = {"num_stimuli": 1, "clip_length": 1, "height": 2, "width": 2, "num_sessions": 1}
    root = write_tutorial_dataset(tmp_path / "d", seed=1, **small)
    with pytest.raises(DataError, match="already exists and is not empty"):
        write_tutorial_dataset(root, seed=2, **small)
    first = _contents(root)
    write_tutorial_dataset(root, seed=2, overwrite=True, **small)
    assert not all(np.array_equal(first[k], v) for k, v in _contents(root).items())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no leftovers
    (tmp_path / "empty").mkdir()
    write_tutorial_dataset(tmp_path / "empty", **small)  # an empty folder is fine
    with pytest.raises(DataError):
        write_retina_dataset(tmp_path / "bad", test_frames=3, filter_frames=15)
    assert not (tmp_path / "bad").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "empty"]


def test_retina_dataset_layout_and_ground_truth(tmp_path: Path) -> None:
    root = write_retina_dataset(tmp_path / "r", seed=0, num_sessions=2, **_SMALL_RETINA)
    data = load_hdf5_dataset(root, test_names=["natural_test"])
    assert data.data_info.input_shape == (2, 10, 8)
    assert data.data_info.frame_rate_hz == 30.0
    session = data.sessions["session_0"]
    assert session.train_responses.shape == (6, 400)
    assert session.tests["natural_test"].trials.shape == (3, 6, 60)
    assert set(session.neuron_metadata) >= {"cell_type", "celltypes", "colour_preference", "position"}
    assert set(session.neuron_metadata["cell_type"]) <= {
        "ON sustained",
        "ON transient",
        "OFF sustained",
        "OFF transient",
    }
    counts = session.train_responses
    assert np.array_equal(counts, np.round(counts))
    assert counts.min() >= 0
    assert 1.5 < counts.mean() < 4.0

    truth = read_ground_truth(root)
    assert truth.test_stimulus == "natural_test"
    gt = truth.sessions["session_0"]
    assert gt["rates_natural_test"].shape == (6, 60)
    assert gt["spatial_rf"].shape == (6, 10, 8)
    assert gt["temporal_filter"].shape == (6, 15)
    assert gt["position"].shape == (6, 2)
    ceiling = truth.ceiling("session_0")
    assert ceiling.shape == (6,)
    assert np.all((ceiling > 0.5) & (ceiling <= 1.0))
    # the ceiling is the correlation of the true rate with the observed trial mean
    observed = session.tests["natural_test"].responses
    rate = gt["rates_natural_test"]
    np.testing.assert_allclose(ceiling[0], np.corrcoef(rate[0], observed[0])[0, 1], rtol=1e-4)
    # RF centres are where the positions say
    peak = np.unravel_index(np.argmax(gt["spatial_rf"][0]), (10, 8))
    assert np.abs(np.array(peak) - gt["position"][0]).max() <= 1.0


def test_retina_movie_is_spatially_and_temporally_correlated(tmp_path: Path) -> None:
    root = write_retina_dataset(tmp_path / "r", seed=0, num_sessions=1, **_SMALL_RETINA)
    movie = np.load(root / "stimuli" / "natural_0.npy")
    assert movie.dtype == np.float32
    time_corr = np.corrcoef(movie[0, :-1].ravel(), movie[0, 1:].ravel())[0, 1]
    space_corr = np.corrcoef(movie[0, :, :, :-1].ravel(), movie[0, :, :, 1:].ravel())[0, 1]
    colour_corr = np.corrcoef(movie[0].ravel(), movie[1].ravel())[0, 1]
    assert time_corr > 0.6
    assert space_corr > 0.3
    assert colour_corr > 0.2


def test_read_ground_truth_needs_a_retina_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no ground truth"):
        read_ground_truth(tmp_path)


def test_overwrite_never_replaces_a_folder_holding_a_users_files(tmp_path: Path) -> None:
    """`overwrite=True` replaces an earlier dataset, never a folder with files no writer made."""
    small = {"num_stimuli": 1, "clip_length": 1, "height": 2, "width": 2, "num_sessions": 1}
    root = write_tutorial_dataset(tmp_path / "d", seed=1, **small)
    (root / "analysis.ipynb").write_text("my notebook")
    before = _contents(root)
    with pytest.raises(DataError, match=r"analysis\.ipynb, which no dataset writer made"):
        write_tutorial_dataset(root, seed=2, overwrite=True, **small)
    assert (root / "analysis.ipynb").read_text() == "my notebook"
    assert all(np.array_equal(before[k], v) for k, v in _contents(root).items())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
