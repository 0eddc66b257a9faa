"""The Höfling 2024 reader on tiny files with the published structure (fixtures_published.py)."""

from __future__ import annotations

import os
import pickle
import shutil
import socket
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from fixtures_published import HOEFLING_SESSIONS, PUBLISHED_HOEFLING_QUALITY, write_hoefling_fixture
from openretina_data.datasets import load_hoefling_2024, read_hoefling_2024
from openretina_data.datasets.hoefling_2024 import reader as hoefling
from openretina_data.datasets.safe_pickle import load_array_pickle
from openretina_data.errors import DataError

LEFT, RIGHT = (name for name, _, _ in HOEFLING_SESSIONS)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_hoefling_fixture(tmp_path_factory.mktemp("hoefling"))


@pytest.fixture
def files(published: dict[str, Path], tmp_path: Path) -> dict[str, Path]:
    """A private copy, for tests that edit the files."""
    return {key: Path(shutil.copy(path, tmp_path / path.name)) for key, path in published.items()}


def _movies(paths: dict[str, Path]) -> dict[str, np.ndarray]:
    with paths["movies"].open("rb") as handle:
        return pickle.load(handle)


def _position_to_clip(position: int) -> int:
    """Clip position (0-122) of training position `position` (0-107)."""
    return 5 + position if position < 54 else 64 + position - 54


def test_shapes_follow_the_published_layout(published: dict[str, Path]) -> None:
    dataset = read_hoefling_2024(published["responses"], published["movies"])
    assert sorted(dataset.sessions) == sorted([LEFT, RIGHT])
    for session in dataset.sessions.values():
        test = session.tests["natural"]
        assert session.train_responses.shape == (5, 16200)
        assert session.train_responses.dtype == np.float32
        assert test.responses.shape == (5, 750)
        assert test.trials is not None
        assert test.trials.shape == (3, 5, 750)
        np.testing.assert_allclose(test.responses, test.trials.mean(axis=0), rtol=1e-6)
        assert len(session.train_movie) == 16200
        assert len(test.movie) == 750
    info = dataset.data_info.to_dict()
    assert info["input_shape"] == [2, 4, 4]
    assert info["frame_rate_hz"] == 30.0
    assert info["pixel_size_um"] == 12.5
    assert dataset.notes == []


def test_traces_are_interpolated_at_each_rois_own_times(published: dict[str, Path]) -> None:
    dataset = read_hoefling_2024(published["responses"], published["movies"], norm_by_std=False)
    with h5py.File(published["responses"]) as handle:
        trace = handle[f"{RIGHT}/natural_spikes"][3].astype(np.float64)
        times = handle[f"{RIGHT}/natural_traces_times"][3].astype(np.float64)
    session = dataset.sessions[RIGHT]
    for position in (0, 53, 54, 107):
        clip = _position_to_clip(position)
        frame_times = 1 + 5 * clip + np.arange(150) / 30
        expected = np.interp(frame_times, times, trace)
        got = session.train_responses[3, position * 150 : (position + 1) * 150]
        np.testing.assert_allclose(got, expected, rtol=1e-5)
    for repeat, first_clip in enumerate((0, 59, 118)):
        frame_times = np.concatenate([1 + 5 * (first_clip + c) + np.arange(150) / 30 for c in range(5)])
        expected = np.interp(frame_times, times, trace)
        np.testing.assert_allclose(session.tests["natural"].trials[repeat, 3], expected, rtol=1e-5)


def test_std_normalisation_and_scaling(published: dict[str, Path]) -> None:
    for scale in (1.0, 2.5):
        dataset = read_hoefling_2024(published["responses"], published["movies"], scale_traces=scale)
        session = dataset.sessions[LEFT]
        trials = session.tests["natural"].trials
        every_frame = np.concatenate([session.train_responses, *trials], axis=1)
        assert every_frame.shape == (5, 18450)
        np.testing.assert_allclose(every_frame.std(axis=1), scale, rtol=1e-4)


def test_training_movie_follows_the_sessions_clip_order(published: dict[str, Path]) -> None:
    dataset = read_hoefling_2024(published["responses"], published["movies"])
    movies = _movies(published)
    for name, _, column in HOEFLING_SESSIONS:
        movie = dataset.sessions[name].train_movie
        sequence = movies["random_sequences"][:, column].astype(int)
        assert movie.frames is dataset.sessions[LEFT].train_movie.frames  # one shared array
        np.testing.assert_array_equal(movie.index[::150] // 150, sequence)
        frames = movie.read(np.array([np.arange(150) + 150 * 7]))[0]
        expected = movies["train"][:, sequence[7] * 150 : sequence[7] * 150 + 150]
        if movie.mirror:
            expected = expected[..., ::-1]
        np.testing.assert_array_equal(frames, expected)


def test_left_eyes_are_mirrored(published: dict[str, Path]) -> None:
    dataset = read_hoefling_2024(published["responses"], published["movies"])
    movies = _movies(published)
    left, right = dataset.sessions[LEFT], dataset.sessions[RIGHT]
    assert left.train_movie.mirror
    assert left.tests["natural"].movie.mirror
    assert not right.train_movie.mirror
    assert not right.tests["natural"].movie.mirror
    np.testing.assert_array_equal(left.tests["natural"].movie.read_all(), movies["test"][..., ::-1])
    np.testing.assert_array_equal(right.tests["natural"].movie.read_all(), movies["test"])


def test_validation_clips_map_to_positions_in_the_sessions_order(published: dict[str, Path]) -> None:
    chosen = [0, 4, 10, 107]
    dataset = read_hoefling_2024(published["responses"], published["movies"], validation_clip_indices=chosen)
    movies = _movies(published)
    for name, _, column in HOEFLING_SESSIONS:
        positions = dataset.sessions[name].val_clip_indices
        sequence = movies["random_sequences"][:, column]
        assert positions == sorted(positions)
        assert len(positions) == 4
        assert sorted(int(sequence[p]) for p in positions) == chosen
    default = read_hoefling_2024(published["responses"], published["movies"])
    assert len(default.sessions[LEFT].val_clip_indices) == 15
    none = read_hoefling_2024(published["responses"], published["movies"], validation_clip_indices=None)
    assert none.sessions[LEFT].val_clip_indices is None


@pytest.mark.parametrize("bad", [[108], [-1], [3, 3]])
def test_bad_validation_clips_are_an_error(published: dict[str, Path], bad: list[int]) -> None:
    with pytest.raises(DataError, match="validation_clip_indices"):
        read_hoefling_2024(published["responses"], published["movies"], validation_clip_indices=bad)


def test_metadata_and_roi_coordinates(published: dict[str, Path]) -> None:
    session = read_hoefling_2024(published["responses"], published["movies"]).sessions[LEFT]
    meta = session.neuron_metadata
    np.testing.assert_array_equal(meta["neuron_ids"], [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(meta["cell_types"], [1, 5, 12, 20, 40])
    assert meta["group_confidences"].shape == (5, 46)
    coords = meta["roi_coords"]
    assert coords.shape == (5, 2)
    assert np.all(np.abs(coords) <= 1)
    # ROI k covers rows 0-2 and columns 4k..4k+2 of the 64x64 mask: centre (1, 4k+1)
    np.testing.assert_allclose(coords[:, 1], (4 * np.arange(5) + 1 - 31.5) / 31.5, rtol=1e-6)
    np.testing.assert_allclose(coords[:, 0], (1 - 31.5) / 31.5, rtol=1e-6)


def test_trace_types(files: dict[str, Path]) -> None:
    with h5py.File(files["responses"]) as handle:
        raw = handle[f"{LEFT}/natural_raw_traces"][()]
    spikes = read_hoefling_2024(files["responses"], files["movies"], norm_by_std=False)
    detrended = read_hoefling_2024(
        files["responses"], files["movies"], trace_type="detrended", norm_by_std=False
    )
    preprocessed = read_hoefling_2024(
        files["responses"], files["movies"], trace_type="preprocessed", norm_by_std=False
    )
    raw_traces = read_hoefling_2024(files["responses"], files["movies"], trace_type="raw", norm_by_std=False)
    a = detrended.sessions[LEFT].train_responses
    np.testing.assert_allclose(a, preprocessed.sessions[LEFT].train_responses, atol=1e-5)
    np.testing.assert_allclose(a + 10, raw_traces.sessions[LEFT].train_responses, atol=1e-4)
    assert raw.mean() > 5 > spikes.sessions[LEFT].train_responses.mean()
    with pytest.raises(DataError, match="trace_type"):
        read_hoefling_2024(files["responses"], files["movies"], trace_type="dff")
    with h5py.File(files["responses"], "a") as handle:
        del handle[f"{LEFT}/natural_smoothed_traces"]
    with pytest.raises(DataError, match="natural_smoothed_traces"):
        read_hoefling_2024(files["responses"], files["movies"], trace_type="smoothed")


def test_older_inferred_spikes_name_is_tried_first(files: dict[str, Path]) -> None:
    with h5py.File(files["responses"], "a") as handle:
        group = handle[LEFT]
        group["natural_inferred_spikes"] = group["natural_spikes"][()] * 3
    plain = read_hoefling_2024(files["responses"], files["movies"], norm_by_std=False)
    with h5py.File(files["responses"], "a") as handle:
        del handle[f"{LEFT}/natural_spikes"]
    older = read_hoefling_2024(files["responses"], files["movies"], norm_by_std=False)
    np.testing.assert_allclose(plain.sessions[LEFT].train_responses, older.sessions[LEFT].train_responses)


def test_times_from_t0_and_dt(files: dict[str, Path]) -> None:
    with h5py.File(files["responses"], "a") as handle:
        group = handle[LEFT]
        times = group["natural_traces_times"][()]
        del group["natural_traces_times"]
        group["natural_traces_t0"] = times[:, 0]
        group["natural_traces_dt"] = np.full(5, 0.128, dtype=np.float32)
    dataset = read_hoefling_2024(files["responses"], files["movies"])
    assert dataset.sessions[LEFT].train_responses.shape == (5, 16200)


def test_attribute_traps_are_handled(files: dict[str, Path]) -> None:
    """1-element array attributes, bytes, a missing eye and root attributes all load."""
    with h5py.File(files["responses"], "a") as handle:
        handle.attrs["exported_by"] = "someone"
        left = handle[LEFT]
        left.attrs["eye"] = np.bytes_(b"left")
        left.attrs["scan_sequence_idx"] = np.array([0])
        del handle[RIGHT].attrs["eye"]
        handle[RIGHT].attrs["scan_sequence_idx"] = np.array([1], dtype=np.int64)
    dataset = read_hoefling_2024(files["responses"], files["movies"])
    assert dataset.sessions[LEFT].train_movie.mirror
    assert not dataset.sessions[RIGHT].train_movie.mirror
    assert any("root attributes" in note for note in dataset.notes)


def test_known_mislabelled_session_is_forced_to_the_right_eye(files: dict[str, Path]) -> None:
    with h5py.File(files["responses"], "a") as handle:
        handle.move(LEFT, "session_2_ventral2_20200626")
    dataset = read_hoefling_2024(files["responses"], files["movies"])
    assert not dataset.sessions["session_2_ventral2_20200626"].train_movie.mirror
    assert any("overridden to 'right'" in note for note in dataset.notes)


def test_nan_and_constant_traces_are_dropped_and_reported(files: dict[str, Path]) -> None:
    with h5py.File(files["responses"], "a") as handle:
        spikes = handle[f"{LEFT}/natural_spikes"]
        values = spikes[()]
        values[1, 100] = np.nan
        values[3] = 0.5
        spikes[...] = values
    dataset = read_hoefling_2024(files["responses"], files["movies"])
    session = dataset.sessions[LEFT]
    np.testing.assert_array_equal(session.neuron_metadata["neuron_ids"], [1, 3, 5])
    assert session.train_responses.shape == (3, 16200)
    assert np.isfinite(session.train_responses).all()
    assert session.tests["natural"].trials.shape == (3, 3, 750)
    notes = " ".join(dataset.notes)
    assert "[2] with NaN/inf values" in notes
    assert "[4] with a constant trace" in notes


def test_per_roi_array_of_another_length_is_skipped_with_a_note(files: dict[str, Path]) -> None:
    with h5py.File(files["responses"], "a") as handle:
        del handle[f"{LEFT}/d_qi"]
        handle[f"{LEFT}/d_qi"] = np.zeros(4)
        del handle[f"{LEFT}/chirp_qi"]
        handle[f"{LEFT}/chirp_qi"] = np.ones((5, 1))
    dataset = read_hoefling_2024(files["responses"], files["movies"])
    meta = dataset.sessions[LEFT].neuron_metadata
    assert "d_qi" not in meta
    assert meta["chirp_qi"].shape == (5,)
    assert any("d_qi: shape (4,)" in note for note in dataset.notes)


def test_sequence_traps_are_clear_errors(files: dict[str, Path]) -> None:
    movies = _movies(files)
    movies["random_sequences"] = movies["random_sequences"][:, 0]  # a single, 1-D column
    with files["movies"].open("wb") as sink:
        pickle.dump(movies, sink)
    with pytest.raises(DataError, match=r"scan_sequence_idx.*1 is out of range.*1 random sequence"):
        read_hoefling_2024(files["responses"], files["movies"])
    movies["random_sequences"] = np.zeros((108, 2), dtype=np.uint8)
    with files["movies"].open("wb") as sink:
        pickle.dump(movies, sink)
    with pytest.raises(DataError, match="not a permutation"):
        read_hoefling_2024(files["responses"], files["movies"])


def test_wrong_trigger_count_is_an_error(files: dict[str, Path]) -> None:
    with h5py.File(files["responses"], "a") as handle:
        del handle[f"{LEFT}/natural_trigger_times"]
        handle[f"{LEFT}/natural_trigger_times"] = np.zeros((5, 120), dtype=np.float32)
    with pytest.raises(DataError, match="120 triggers, expected 123"):
        read_hoefling_2024(files["responses"], files["movies"])


def test_only_natural_responses_are_supported(published: dict[str, Path]) -> None:
    with pytest.raises(DataError, match="response_type"):
        read_hoefling_2024(published["responses"], published["movies"], response_type="chirp")


def test_movie_pickle_with_code_is_refused(tmp_path: Path) -> None:
    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.getcwd, ())  # harmless, but not an array

    path = tmp_path / "movies.pkl"
    path.write_bytes(pickle.dumps({"train": Payload()}))
    with pytest.raises(DataError, match="not allowed"):
        load_array_pickle(path)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_movie_pickle_of_any_protocol_and_precision_loads_as_float32(tmp_path: Path, protocol: int) -> None:
    rng = np.random.default_rng(0)
    content = {
        "train": rng.standard_normal((2, 150, 30, 40)),  # float64, 2.9 MB: read block by block
        "order": np.asfortranarray(rng.standard_normal((300, 500))),
        "random_sequences": np.arange(6, dtype=np.uint8).reshape(3, 2),
        "movie_stats": {"dichromatic": {"mean": np.array([1.5]), "sd": np.array([2.0])}},
    }
    path = tmp_path / "movies.pkl"
    path.write_bytes(pickle.dumps(content, protocol=protocol))
    loaded = load_array_pickle(path, float_dtype=np.float32)
    assert loaded["train"].dtype == np.float32
    np.testing.assert_array_equal(loaded["train"], content["train"].astype(np.float32))
    np.testing.assert_array_equal(loaded["order"], content["order"].astype(np.float32))
    assert loaded["order"].flags.f_contiguous
    np.testing.assert_array_equal(loaded["random_sequences"], content["random_sequences"])
    assert loaded["random_sequences"].dtype == np.uint8
    assert float(loaded["movie_stats"]["dichromatic"]["sd"][0]) == 2.0
    exact = load_array_pickle(path)
    np.testing.assert_array_equal(exact["train"], content["train"])


def test_truncated_movie_pickle_is_a_clear_error(published: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "cut.pkl"
    path.write_bytes(published["movies"].read_bytes()[:-1000])
    with pytest.raises(DataError, match=r"cut\.pkl"):
        load_array_pickle(path, float_dtype=np.float32)


def test_loader_with_local_paths_and_published_quality_checks(published: dict[str, Path]) -> None:
    config = PUBLISHED_HOEFLING_QUALITY | {"verbose": False}
    dataset = load_hoefling_2024(
        responses_path=published["responses"], movies_path=published["movies"], quality_checks=config
    )
    for session in dataset.sessions.values():
        np.testing.assert_array_equal(session.neuron_metadata["neuron_ids"], [1, 2])
        assert session.tests["natural"].trials.shape == (3, 2, 750)
    assert dataset.data_info.sessions[LEFT]["n_neurons"] == 2


def _zip(path: Path, archive: Path) -> None:
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(path, path.name)


def test_loader_finds_a_local_mirror_copy_without_network(
    published: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = tmp_path / "mirror"
    _zip(published["responses"], mirror / "euler_lab/hoefling_2024/responses/rgc_natstim_2024-08-14.zip")
    _zip(published["movies"], mirror / "rgc_natstim_18x16_joint_normalized_2024-01-11.zip")  # flat also works

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("network used")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    dataset = load_hoefling_2024(
        movies_url=hoefling.MOVIES_URLS["low_res"], data_dir=mirror, cache_dir=tmp_path / "cache"
    )
    assert dataset.sessions[LEFT].train_responses.shape == (5, 16200)


def test_missing_local_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_hoefling_2024(responses_path=tmp_path / "nope.h5", movies_path=tmp_path / "nope.pkl")


def test_offline_error_lists_both_missing_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataError) as error:
        load_hoefling_2024(cache_dir=tmp_path)
    message = str(error.value)
    for url in (hoefling.RESPONSES_URL, hoefling.MOVIES_URLS["high_res"]):
        assert url in message
        assert str(tmp_path / url.split("/resolve/main/")[1]) in message
