"""load_hdf5_dataset: the 1.x layout, trials, attributes, memory sharing, read-only, every bad input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from data_testkit import movie, responses, write_layout
from openretina_data import DataError, load_hdf5_dataset, make_splits
from openretina_data.batching import TestBatches, TrainBatches, ValidationBatches
from openretina_data.npy_frames import NpyFrames
from openretina_data.records import ConcatenatedFrames


def test_reads_shapes_timeline_and_tests(small_layout: Path) -> None:
    data = load_hdf5_dataset(small_layout, test_names=["test"])
    assert sorted(data.sessions) == ["a", "b"]
    a = data.sessions["a"]
    assert len(a.train_movie) == 100
    assert a.train_responses.shape == (3, 100)
    assert a.train_responses.dtype == np.float32
    stimuli = small_layout / "stimuli"
    expected = np.concatenate([np.load(stimuli / "train_a.npy"), np.load(stimuli / "train_b.npy")], axis=1)
    np.testing.assert_array_equal(a.train_movie.read_all(), expected)  # sorted-name order
    with h5py.File(small_layout / "a.h5") as handle:
        np.testing.assert_array_equal(a.train_responses[:, 60:], handle["responses_train_b"][()])
    assert set(a.tests) == {"test"}
    assert a.tests["test"].trials is None
    assert a.neuron_metadata["celltypes"].tolist() == [1, 2, 3]
    assert a.neuron_metadata["neuron_ids"].tolist() == [0, 1, 2]


def test_trials_are_kept_and_their_mean_is_the_target(small_layout: Path) -> None:
    test = load_hdf5_dataset(small_layout, test_names=["test"]).sessions["b"].tests["test"]
    assert test.trials is not None
    assert test.trials.shape == (4, 5, 30)
    np.testing.assert_allclose(test.responses, test.trials.mean(axis=0))


def test_data_info_carries_attributes_and_sessions(tmp_path: Path) -> None:
    attrs = {
        "s": {
            "frame_rate_hz": 30.0,
            "pixel_size_um": 25.0,
            "stimulus_mean": [1.0, 2.0],
            "stimulus_std": [2.0, 4.0],
            "response_mean": [0.5, 0.5],
            "response_std": [1.5, 2.5],
        }
    }
    sessions = {"s": {"responses_m": responses(2, 20), "session_info/neuron_ids": np.array([7, 9])}}
    root = write_layout(tmp_path / "d", sessions, {"m": movie(20)}, attrs)
    data = load_hdf5_dataset(root, test_names=[])
    info = data.data_info.to_dict()
    json.dumps(info)
    assert info["input_shape"] == [2, 4, 3]
    assert info["frame_rate_hz"] == 30.0
    assert info["pixel_size_um"] == 25.0
    assert info["stimulus_normalisation"] == {"mean": [1.0, 2.0], "std": [2.0, 4.0]}
    assert info["response_normalisation"] == {"s": {"mean": [0.5, 0.5], "std": [1.5, 2.5]}}
    assert info["sessions"]["s"]["n_neurons"] == 2
    assert info["sessions"]["s"]["neuron_ids"] == [7, 9]
    assert info["train_stimuli"] == ["m"]
    assert info["test_stimuli"] == []
    raw = np.load(root / "stimuli" / "m.npy")
    expected = (raw - np.array([1.0, 2.0])[:, None, None, None]) / np.array([2.0, 4.0])[:, None, None, None]
    np.testing.assert_allclose(data.sessions["s"].train_movie.read_all(), expected, rtol=1e-6)
    assert load_hdf5_dataset(root, frame_rate_hz=60.0).data_info.frame_rate_hz == 60.0


def test_session_stimulus_takes_precedence_and_needs_no_shared_movie(tmp_path: Path) -> None:
    own, shared, only_own = movie(20, seed=5), movie(20, seed=6), movie(15, seed=7)
    sessions = {
        "a": {
            "responses_m": responses(2, 20),
            "stimulus_m": own,
            "responses_x": responses(2, 15),
            "stimulus_x": only_own,
        },
        "b": {"responses_m": responses(2, 20)},
    }
    root = write_layout(tmp_path / "d", sessions, {"m": shared})
    for in_memory in (True, False):
        data = load_hdf5_dataset(root, test_names=["x"], in_memory=in_memory)
        np.testing.assert_array_equal(data.sessions["a"].train_movie.read_all(), own)
        np.testing.assert_array_equal(data.sessions["b"].train_movie.read_all(), shared)
        np.testing.assert_array_equal(data.sessions["a"].tests["x"].movie.read_all(), only_own)


def test_in_memory_sessions_share_one_array(small_layout: Path) -> None:
    data = load_hdf5_dataset(small_layout, test_names=["test"], in_memory=True)
    a, b = data.sessions["a"], data.sessions["b"]
    storage = a.train_movie.frames.base
    assert b.train_movie.frames.base is storage
    assert a.train_movie.frames.dtype == np.float32
    assert storage is not None
    assert storage.nbytes == 4 * 2 * 100 * 4 * 3  # each training movie once
    # test movies are read from disk when evaluated, through one reader shared by the sessions
    assert isinstance(a.tests["test"].movie.frames, NpyFrames)
    assert a.tests["test"].movie.frames is b.tests["test"].movie.frames
    np.testing.assert_array_equal(
        a.tests["test"].movie.read_all(), np.load(small_layout / "stimuli" / "test.npy")
    )
    assert any("test movies" in note for note in data.notes)


def test_streaming_matches_in_memory_batches(small_layout: Path) -> None:
    loaded = [load_hdf5_dataset(small_layout, test_names=["test"], in_memory=m) for m in (True, False)]
    assert isinstance(loaded[1].sessions["a"].train_movie.frames, ConcatenatedFrames)
    batches = []
    for data in loaded:
        splits = make_splits(data, clip_length=10, num_val_clips=2, train_chunk_size=8, seed=3)
        batches.append(
            [
                *TrainBatches(data, splits, batch_size=4),
                *ValidationBatches(data, splits, batch_size=4),
                *TestBatches(data),
            ]
        )
    assert len(batches[0]) == len(batches[1]) > 0
    for x, y in zip(*batches, strict=True):
        assert x.session == y.session
        np.testing.assert_array_equal(x.stimulus, y.stimulus)
        np.testing.assert_array_equal(x.responses, y.responses)


def _snapshot(root: Path) -> dict[str, tuple[int, str]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_files_are_read_only(small_layout: Path) -> None:
    before = _snapshot(small_layout)
    for in_memory in (True, False):
        data = load_hdf5_dataset(small_layout, test_names=["test"], in_memory=in_memory)
        splits = make_splits(data, clip_length=10, num_val_clips=2, train_chunk_size=8)
        for _ in TrainBatches(data, splits, batch_size=4):
            pass
        del data
    assert _snapshot(small_layout) == before


def test_tutorial_dataset_reads_with_the_tutorial_settings(tutorial_dir: Path) -> None:
    data = load_hdf5_dataset(
        tutorial_dir,
        test_names=["random_noise_2", "random_noise_3"],
        color_channels=3,
        video_height=16,
        video_width=8,
    )
    assert data.data_info.input_shape == (3, 16, 8)
    for session in data.sessions.values():
        assert len(session.train_movie) == 10 * 70 + 10 * 71
        assert set(session.tests) == {"random_noise_2", "random_noise_3"}


def test_mismatched_lengths_can_be_cut_and_are_reported(tmp_path: Path) -> None:
    root = write_layout(tmp_path / "d", {"s": {"responses_m": responses(2, 18)}}, {"m": movie(20)})
    data = load_hdf5_dataset(root, check_stimuli_responses_match=False)
    assert len(data.sessions["s"].train_movie) == 18
    assert any("first 18" in note for note in data.notes)


# ------------------------------------------------------------------------------------------------
# bad input: one DataError naming the file, the key and the fix


def _expect(root: Path, match: str, **options) -> DataError:
    with pytest.raises(DataError, match=match) as caught:
        load_hdf5_dataset(root, **options)
    assert "Fix:" in str(caught.value)
    return caught.value


def test_missing_folder(tmp_path: Path) -> None:
    error = _expect(tmp_path / "nope", "does not exist")
    assert error.key == "data_dir"
    assert error.file == str(tmp_path / "nope")


def test_path_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    _expect(tmp_path / "f", "not a folder")


def test_no_session_files(tmp_path: Path) -> None:
    (tmp_path / "stimuli").mkdir()
    _expect(tmp_path, "no session files")


def test_not_hdf5(tmp_path: Path) -> None:
    (tmp_path / "s.h5").write_bytes(b"this is not hdf5" * 100)
    error = _expect(tmp_path, "not an HDF5 file or it is truncated")
    assert error.file.endswith("s.h5")


def test_truncated_hdf5(tmp_path: Path) -> None:
    root = write_layout(tmp_path / "d", {"s": {"responses_m": responses(50, 2000)}}, {"m": movie(2000)})
    path = root / "s.h5"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    error = _expect(root, "truncated")
    assert error.file.endswith("s.h5")


def test_session_without_responses(tmp_path: Path) -> None:
    root = write_layout(tmp_path / "d", {"s": {"something": np.zeros(3)}}, {"m": movie(20)})
    _expect(root, "has no responses_<stimulus>")


def test_stimulus_exists_nowhere(tmp_path: Path) -> None:
    root = write_layout(tmp_path / "d", {"s": {"responses_m": responses(2, 20)}})
    error = _expect(root, "stimulus exists nowhere")
    assert error.key == "responses_m"
    assert "stimuli/m.npy" in str(error)


@pytest.mark.parametrize(
    ("content", "stimuli", "match", "options"),
    [
        ({"responses_m": np.zeros(20)}, {"m": movie(20)}, "1 axes", {}),
        ({"responses_m": np.zeros((2, 2, 20))}, {"m": movie(20)}, "add 'm' to test_names", {}),
        (
            {"responses_m": np.zeros((1, 2, 2, 20)), "responses_n": responses(2, 20)},
            {"m": movie(20), "n": movie(20)},
            "4 axes",
            {"test_names": ["m"]},
        ),
        ({"responses_m": responses(2, 20)}, {"m": np.zeros((2, 20, 4))}, "3 axes", {}),
    ],
)
def test_wrong_rank(tmp_path: Path, content, stimuli, match, options) -> None:
    _expect(write_layout(tmp_path / "d", {"s": content}, stimuli), match, **options)


@pytest.mark.parametrize(
    ("option", "value"), [("color_channels", 3), ("video_height", 5), ("video_width", 2)]
)
def test_frame_shape_differs_from_config(tmp_path: Path, option: str, value: int) -> None:
    root = write_layout(tmp_path / "d", {"s": {"responses_m": responses(2, 20)}}, {"m": movie(20)})
    error = _expect(root, f"data_io.{option} is {value}", **{option: value})
    assert error.file.endswith("m.npy")
    assert f"data_io.{option}=" in error.fix


def test_movies_disagree_in_frame_shape(tmp_path: Path) -> None:
    sessions = {"s": {"responses_m": responses(2, 20), "responses_n": responses(2, 20)}}
    root = write_layout(tmp_path / "d", sessions, {"m": movie(20), "n": movie(20, width=5)})
    _expect(root, "video_width=5")


def test_frames_of_responses_and_stimulus_differ(tmp_path: Path) -> None:
    root = write_layout(tmp_path / "d", {"s": {"responses_m": responses(2, 19)}}, {"m": movie(20)})
    error = _expect(root, "has 19 frames but its stimulus stimuli/m.npy has 20")
    assert error.key == "responses_m"


def test_neuron_counts_differ_within_a_session(tmp_path: Path) -> None:
    sessions = {"s": {"responses_m": responses(2, 20), "responses_n": responses(3, 20)}}
    root = write_layout(tmp_path / "d", sessions, {"m": movie(20), "n": movie(20)})
    _expect(root, "has 3 neurons but responses_m has 2")


def test_unknown_test_name(small_layout: Path) -> None:
    error = _expect(small_layout, "'nope' is not a stimulus of any session", test_names=["test", "nope"])
    assert error.key == "test_names"


def test_unknown_stimulus_name(small_layout: Path) -> None:
    _expect(small_layout, "'nope' is not a stimulus", stimulus_names=["train_a", "nope"])


@pytest.mark.parametrize("where", ["responses", "stimulus"])
def test_non_numeric_dtype(tmp_path: Path, where: str) -> None:
    if where == "responses":
        content = {"responses_m": np.array([[b"a", b"b"]])}
        stimuli = {"m": movie(2)}
    else:
        content = {"responses_m": responses(2, 3), "stimulus_m": np.array([b"x"] * 3)}
        stimuli = {}
    _expect(write_layout(tmp_path / "d", {"s": content}, stimuli), "non-numeric dtype")


def test_unreadable_npy(tmp_path: Path) -> None:
    root = write_layout(tmp_path / "d", {"s": {"responses_m": responses(2, 20)}})
    (root / "stimuli").mkdir()
    (root / "stimuli" / "m.npy").write_bytes(b"garbage")
    _expect(root, "cannot be read as a .npy array")


def test_session_with_only_test_responses(tmp_path: Path) -> None:
    sessions = {
        "a": {"responses_m": responses(2, 20), "responses_t": responses(2, 20)},
        "b": {"responses_t": responses(2, 20)},
    }
    root = write_layout(tmp_path / "d", sessions, {"m": movie(20), "t": movie(20)})
    _expect(root, "only for test stimuli", test_names=["t"])


def test_two_files_for_one_session(small_layout: Path) -> None:
    (small_layout / "a.hdf5").write_bytes((small_layout / "a.h5").read_bytes())
    _expect(small_layout, "two files for session 'a'")


def test_in_memory_option_is_checked(small_layout: Path) -> None:
    _expect(small_layout, "in_memory", in_memory="sometimes")


def test_sessions_with_different_movie_sets_still_share_one_copy(tmp_path: Path) -> None:
    movies = {"m1": movie(20, seed=1), "m2": movie(30, seed=2), "m3": movie(10, seed=3)}
    sessions = {
        "a": {"responses_m1": responses(2, 20), "responses_m2": responses(2, 30)},
        "b": {"responses_m1": responses(3, 20), "responses_m3": responses(3, 10)},
        "c": {"responses_m2": responses(1, 30), "responses_m3": responses(1, 10)},
    }
    root = write_layout(tmp_path / "d", sessions, movies)
    for in_memory in (True, False):
        data = load_hdf5_dataset(root, in_memory=in_memory)
        for name, content in sessions.items():
            names = sorted(key.removeprefix("responses_") for key in content)
            expected = np.concatenate([movies[n] for n in names], axis=1)
            np.testing.assert_array_equal(data.sessions[name].train_movie.read_all(), expected)
        if in_memory:
            frames = {
                id(s.train_movie.frames.base if s.train_movie.index is None else s.train_movie.frames)
                for s in data.sessions.values()
            }
            assert len(frames) == 1  # one array, indexed differently per session
            assert data.sessions["b"].train_movie.index is not None  # m1, m3 are not adjacent
            assert data.sessions["a"].train_movie.frames.base.shape[1] == 60  # each movie once


@pytest.mark.parametrize("in_memory", [True, False])
def test_integer_responses_and_stimuli_become_float32(tmp_path: Path, in_memory: bool) -> None:
    counts = np.random.default_rng(0).poisson(2, (3, 20)).astype(np.int64)
    frames = np.random.default_rng(1).integers(0, 255, (2, 20, 4, 3)).astype(np.uint8)
    root = write_layout(tmp_path / "d", {"s": {"responses_m": counts}}, {"m": frames})
    session = load_hdf5_dataset(root, in_memory=in_memory).sessions["s"]
    assert session.train_responses.dtype == np.float32
    np.testing.assert_array_equal(session.train_responses, counts)
    read = session.train_movie.read(np.array([[0, 1, 2], [17, 18, 19]]))
    assert read.dtype == np.float32
    np.testing.assert_array_equal(read[1], frames[:, 17:20])
