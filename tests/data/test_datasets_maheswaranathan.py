"""The Maheswaranathan 2023 reader on tiny files with the published structure."""

from __future__ import annotations

import io
import shutil
import urllib.request
import zipfile
from pathlib import Path
from typing import ClassVar

import h5py
import numpy as np
import pytest
from fixtures_published import write_maheswaranathan_fixture
from openretina_data.datasets import load_maheswaranathan_2023, read_maheswaranathan_2023
from openretina_data.datasets.maheswaranathan_2023 import DATA_URL
from openretina_data.errors import DataError

SESSIONS = ["15-10-07", "15-11-21a"]


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_maheswaranathan_fixture(tmp_path_factory.mktemp("maheswaranathan"))


@pytest.fixture
def root(published: Path, tmp_path: Path) -> Path:
    """A private copy, for tests that edit the files."""
    return Path(shutil.copytree(published, tmp_path / "neural_code_data"))


def _file(root: Path, session: str = SESSIONS[0], stim: str = "naturalscene") -> Path:
    return root / "ganglion_cell_data" / session / f"{stim}.h5"


def test_shapes_and_the_extra_test_bin(published: Path) -> None:
    dataset = read_maheswaranathan_2023(published, response_type="firing_rate_10ms")
    assert sorted(dataset.sessions) == SESSIONS
    for session in dataset.sessions.values():
        test = session.tests["naturalscene"]
        assert session.train_responses.shape == (5, 372)
        assert session.train_responses.dtype == np.float32
        assert len(session.train_movie) == 372
        assert session.train_movie.frames.dtype == np.uint8  # frames stay uint8
        assert test.responses.shape == (5, 120)
        assert test.trials.shape == (5, 5, 120)
        assert session.val_clip_indices is None
        np.testing.assert_array_equal(session.neuron_metadata["neuron_ids"], [1, 2, 3, 4, 5])
    notes = " ".join(dataset.notes)
    assert "test/response/firing_rate_10ms has 121 bins for 120 frames; the last bin was dropped" in notes
    info = dataset.data_info.to_dict()
    assert info["input_shape"] == [1, 50, 50]
    assert info["frame_rate_hz"] == 100.0
    assert info["pixel_size_um"] == 50.0


@pytest.mark.parametrize(
    "response_type", ["firing_rate_5ms", "firing_rate_10ms", "firing_rate_20ms", "binned"]
)
def test_response_type_and_fr_normalization(published: Path, response_type: str) -> None:
    dataset = read_maheswaranathan_2023(published, response_type=response_type, fr_normalization=4.0)
    with h5py.File(_file(published)) as handle:
        train = handle[f"train/response/{response_type}"][()]
        test = handle[f"test/response/{response_type}"][()]
    session = dataset.sessions[SESSIONS[0]]
    np.testing.assert_allclose(session.train_responses, train / 4.0, rtol=1e-6)
    np.testing.assert_allclose(session.tests["naturalscene"].responses, test[:, :120] / 4.0, rtol=1e-6)


def test_repeats_per_cell_are_sorted_numerically_and_normalised(root: Path) -> None:
    with h5py.File(_file(root), "a") as handle:
        group = handle["test/repeats"]
        originals = {k: group[k][()] for k in group}
        for key in list(group):
            del group[key]
        order = [3, 1, 5, 2, 4]
        for number in order:  # unpadded names in a scrambled order
            group[f"cell{number * 2}"] = originals[f"cell{number:02d}"]
    session = read_maheswaranathan_2023(root, fr_normalization=2.0).sessions[SESSIONS[0]]
    np.testing.assert_array_equal(session.neuron_metadata["neuron_ids"], [2, 4, 6, 8, 10])
    trials = session.tests["naturalscene"].trials
    for row, number in enumerate([1, 2, 3, 4, 5]):
        np.testing.assert_allclose(trials[:, row], originals[f"cell{number:02d}"][:, :120] / 2.0, rtol=1e-6)


def test_stacked_repeats_per_response_type_are_normalised_too(tmp_path: Path) -> None:
    root = write_maheswaranathan_fixture(tmp_path, repeats_layout="stacked", n_repeats=7)
    dataset = read_maheswaranathan_2023(root, response_type="binned", fr_normalization=10.0)
    with h5py.File(_file(root)) as handle:
        stacked = handle["test/repeats/binned"][()]
    trials = dataset.sessions[SESSIONS[0]].tests["naturalscene"].trials
    assert trials.shape == (7, 5, 120)
    np.testing.assert_allclose(trials, stacked[..., :120] / 10.0, rtol=1e-6)


def test_stimulus_z_scored_from_the_training_movie(published: Path) -> None:
    dataset = read_maheswaranathan_2023(published)
    pooled = []
    for name in SESSIONS:
        with h5py.File(_file(published, name)) as handle:
            pooled.append(handle["train/stimulus"][()].astype(np.float64))
    everything = np.concatenate(pooled)
    mean, std = everything.mean(), everything.std()
    norm = dataset.data_info.stimulus_normalisation
    np.testing.assert_allclose([norm["mean"][0], norm["std"][0]], [mean, std], rtol=1e-5)
    session = dataset.sessions[SESSIONS[0]]
    frames = session.train_movie.read_all()
    assert frames.dtype == np.float32
    np.testing.assert_allclose(frames[0], (pooled[0] - mean) / std, rtol=1e-4, atol=1e-5)
    test = session.tests["naturalscene"].movie
    assert (test.offset, test.scale) == (session.train_movie.offset, session.train_movie.scale)


def test_stimulus_left_raw_when_asked(published: Path) -> None:
    dataset = read_maheswaranathan_2023(published, normalize_stimuli=False)
    session = dataset.sessions[SESSIONS[0]]
    with h5py.File(_file(published)) as handle:
        raw = handle["train/stimulus"][:10]
    np.testing.assert_array_equal(session.train_movie.read(np.arange(10)[None])[0, 0], raw)
    assert dataset.data_info.stimulus_normalisation is None


def test_sessions_with_different_movie_statistics_are_an_error(root: Path) -> None:
    with h5py.File(_file(root, SESSIONS[1]), "a") as handle:
        handle["train/stimulus"][...] = 200
    with pytest.raises(DataError, match="differ too much"):
        read_maheswaranathan_2023(root)
    assert len(read_maheswaranathan_2023(root, sessions=[SESSIONS[0]]).sessions) == 1


def test_whitenoise_and_session_selection(tmp_path: Path) -> None:
    root = write_maheswaranathan_fixture(tmp_path, stim_type="whitenoise", sessions=["15-11-21b"])
    write_maheswaranathan_fixture(tmp_path, sessions=["15-10-07"])  # only naturalscene
    dataset = read_maheswaranathan_2023(root, stim_type="whitenoise")
    assert list(dataset.sessions) == ["15-11-21b"]
    assert list(dataset.sessions["15-11-21b"].tests) == ["whitenoise"]
    with pytest.raises(DataError, match=r"no whitenoise\.h5"):
        read_maheswaranathan_2023(root, stim_type="whitenoise", sessions=["15-10-07"])
    with pytest.raises(DataError, match="stim_type"):
        read_maheswaranathan_2023(root, stim_type="checkerboard")


def test_unknown_response_type_lists_the_available_ones(published: Path) -> None:
    with pytest.raises(DataError, match="firing_rate_10ms"):
        read_maheswaranathan_2023(published, response_type="firing_rate_50ms")


def test_other_length_mismatches_are_errors(root: Path) -> None:
    with h5py.File(_file(root), "a") as handle:
        values = handle["test/response/firing_rate_20ms"][()]
        del handle["test/response/firing_rate_20ms"]
        handle["test/response/firing_rate_20ms"] = values[:, :100]
    with pytest.raises(DataError, match="100 bins for 120 stimulus frames"):
        read_maheswaranathan_2023(root)


def test_missing_repeats_leave_the_test_without_trials(root: Path) -> None:
    with h5py.File(_file(root), "a") as handle:
        del handle["test/repeats"]
    dataset = read_maheswaranathan_2023(root)
    assert dataset.sessions[SESSIONS[0]].tests["naturalscene"].trials is None
    assert any("no test/repeats" in note for note in dataset.notes)


def test_loader_finds_local_copies(published: Path) -> None:
    for where in (published, published / "ganglion_cell_data", published.parent):
        dataset = load_maheswaranathan_2023(base_data_path=where)
        assert sorted(dataset.sessions) == SESSIONS
    assert sorted(load_maheswaranathan_2023(data_dir=published.parent).sessions) == SESSIONS
    with pytest.raises(DataError, match="ganglion_cell_data"):
        load_maheswaranathan_2023(base_data_path=published / "ganglion_cell_data" / SESSIONS[0])


def test_loader_downloads_and_extracts_the_archive_once(
    published: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for path in sorted(published.rglob("*")):
            bundle.write(path, path.relative_to(published.parent).as_posix())
    body = buffer.getvalue()
    calls: list[str] = []

    class Response(io.BytesIO):
        status = 200
        headers: ClassVar[dict[str, str]] = {"Content-Length": str(len(body))}

    def urlopen(request: urllib.request.Request, timeout: float | None = None) -> Response:
        calls.append(request.full_url)
        return Response(body)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    cache = tmp_path / "cache"
    quiet = {"progress": lambda *args: None}
    first = load_maheswaranathan_2023(cache_dir=cache, **quiet)
    second = load_maheswaranathan_2023(cache_dir=cache, **quiet)
    assert calls == [DATA_URL]
    assert sorted(first.sessions) == sorted(second.sessions) == SESSIONS
    assert (cache / "baccus_lab/maheswaranathan_2023/neural_code_data/ganglion_cell_data").is_dir()
