"""Movie.read gathers the right frames from every kind of frame source; records serialise."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
from data_testkit import movie
from openretina_data import ConcatenatedFrames, DataError, DataInfo, Movie, SessionData
from openretina_data.npy_frames import NpyFrames
from openretina_data.records import measure_stimulus_range, per_neuron


def _reference(frames: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Slow, obvious version of Movie.read for a plain movie."""
    return np.stack([frames[:, row] for row in positions]).astype(np.float32)


def test_read_gathers_frames_in_order() -> None:
    frames = movie(20)
    positions = np.array([[3, 4, 5], [10, 11, 12], [0, 1, 2]])
    out = Movie(frames).read(positions)
    assert out.shape == (3, 2, 3, 4, 3)
    assert out.dtype == np.float32
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, _reference(frames, positions))


def test_read_applies_index_mirror_offset_and_scale() -> None:
    raw = np.arange(2 * 10 * 2 * 3, dtype=np.uint8).reshape(2, 10, 2, 3)
    index = np.array([9, 7, 5, 3, 1])
    offset, scale = np.array([1.0, 2.0]), np.array([2.0, 4.0])
    out = Movie(raw, index=index, mirror=True, offset=offset, scale=scale).read(np.array([[0, 1], [3, 4]]))
    expected = _reference(raw[:, index][..., ::-1].astype(np.float64), np.array([[0, 1], [3, 4]]))
    expected = (expected - offset[None, :, None, None, None]) / scale[None, :, None, None, None]
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert len(Movie(raw, index=index)) == 5


def test_streamed_sources_read_like_memory(tmp_path: Path) -> None:
    frames = movie(50).astype(np.float64)
    np.save(tmp_path / "m.npy", frames)
    with h5py.File(tmp_path / "m.h5", "w") as handle:
        handle["m"] = frames
    positions = np.array([[40, 41, 42, 43], [2, 3, 4, 5], [41, 42, 43, 44]])
    expected = Movie(frames).read(positions)
    mapped = np.load(tmp_path / "m.npy", mmap_mode="r")
    np.testing.assert_array_equal(Movie(mapped).read(positions), expected)
    with h5py.File(tmp_path / "m.h5", "r") as handle:
        np.testing.assert_array_equal(Movie(handle["m"]).read(positions), expected)
    joined = ConcatenatedFrames([(mapped[:, :20], 20), (np.asarray(frames[:, 20:]), 30)])
    np.testing.assert_array_equal(Movie(joined).read(positions), expected)
    streamed = NpyFrames(tmp_path / "m.npy")
    np.testing.assert_array_equal(Movie(streamed).read(positions), expected)
    copy = pickle.loads(pickle.dumps(streamed))  # e.g. into a DataLoader worker
    np.testing.assert_array_equal(copy[:, 3:6], frames[:, 3:6])
    with pytest.raises(IndexError):
        Movie(streamed).read(np.array([[50]]))


def test_concatenated_frames_use_only_the_given_length() -> None:
    a, b = movie(10, seed=1), movie(10, seed=2)
    joined = ConcatenatedFrames([(a, 6), (b, 10)])
    assert joined.shape == (2, 16, 4, 3)
    np.testing.assert_array_equal(joined[:, [5, 6]], np.stack([a[:, 5], b[:, 0]], axis=1))


def test_read_rejects_flat_positions() -> None:
    with pytest.raises(ValueError, match="batch, length"):
        Movie(movie(5)).read(np.arange(3))


def test_data_error_names_file_key_problem_and_fix() -> None:
    error = DataError("/data/s.h5", "responses_x", "has 3 axes.", "store (neurons, T)")
    assert str(error) == "/data/s.h5: responses_x: has 3 axes. Fix: store (neurons, T)."
    assert isinstance(error, ValueError)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.file, copy.key, str(copy)) == (error.file, error.key, str(error))
    assert str(DataError(None, None, "bad", "fix it")) == "bad. Fix: fix it."


def test_data_info_is_json_and_round_trips() -> None:
    info = DataInfo(
        input_shape=(2, 4, 3),
        sessions={"a": {"n_neurons": 2, "neuron_ids": [0, 1], "metadata": {"celltypes": ["ON", "OFF"]}}},
        train_stimuli=("x",),
        test_stimuli=("y",),
        frame_rate_hz=30.0,
        stimulus_normalisation={"mean": [0.5, 0.5], "std": [2.0, 2.0]},
    )
    text = json.dumps(info.to_dict())
    assert DataInfo.from_dict(json.loads(text)) == info


def test_per_neuron_statistics_in_blocks_match_the_whole() -> None:
    responses = np.random.default_rng(0).standard_normal((7, 50)).astype(np.float32)
    responses[3, 4] = np.nan
    whole = np.nanstd(responses, axis=1)
    blocks = per_neuron(responses, lambda block: np.nanstd(block, axis=1), block_bytes=2 * 50 * 4)
    np.testing.assert_array_equal(blocks, whole)


def test_shows_same_frames_as_compares_views_without_reading() -> None:
    frames = np.arange(2 * 6 * 3 * 4, dtype=np.float32).reshape(2, 6, 3, 4)
    a = Movie(frames, index=np.array([0, 2, 4]))
    assert a.shows_same_frames_as(Movie(frames, index=np.array([0, 2, 4])))
    np.testing.assert_array_equal(a.read_all(), Movie(frames, index=np.array([0, 2, 4])).read_all())
    assert not a.shows_same_frames_as(Movie(frames, index=np.array([0, 2, 5])))
    assert not a.shows_same_frames_as(Movie(frames))
    assert not a.shows_same_frames_as(Movie(frames, index=np.array([0, 2, 4]), mirror=True))
    assert not a.shows_same_frames_as(Movie(frames, index=np.array([0, 2, 4]), scale=2.0))
    assert not a.shows_same_frames_as(Movie(frames.copy(), index=np.array([0, 2, 4])))  # not known equal
    assert Movie(frames).shows_same_frames_as(Movie(frames))


def test_stimulus_range_is_measured_on_the_normalised_training_movies() -> None:
    rng = np.random.default_rng(0)
    frames = rng.uniform(0, 255, (2, 30, 4, 3)).astype(np.float32)
    shared = Movie(frames, offset=np.array([100.0, 50.0]), scale=np.array([10.0, 20.0]))
    other = Movie(frames[:, :7] * 0 + 300.0, offset=0.0, scale=1.0)  # 300 everywhere, both channels
    sessions = {
        name: SessionData(name, movie, np.zeros((1, len(movie)), np.float32), {}, {"neuron_ids": np.zeros(1)})
        for name, movie in (("a", shared), ("b", shared), ("c", other))
    }
    measured = measure_stimulus_range(sessions.values(), chunk_frames=4)
    normalised = (frames - np.array([100.0, 50.0])[:, None, None, None]) / np.array([10.0, 20.0])[
        :, None, None, None
    ]
    np.testing.assert_allclose(measured["min"], normalised.min(axis=(1, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(measured["max"], [300.0, 300.0])
    info = DataInfo(input_shape=(2, 4, 3), sessions={}).with_stimulus_range(sessions)
    assert info.stimulus_range == measured
    assert DataInfo.from_dict(json.loads(json.dumps(info.to_dict()))) == info
