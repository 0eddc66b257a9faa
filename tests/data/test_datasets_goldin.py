"""The Goldin 2022 reader (flashed images, one frame per trial) on tiny files of the published layout."""

from __future__ import annotations

import io
import json
import shutil
import urllib.request
from pathlib import Path
from typing import ClassVar

import h5py
import numpy as np
import pytest
from fixtures_published import write_goldin_fixture
from openretina_data.batching import TrainBatches, ValidationBatches
from openretina_data.datasets import load_goldin_2022, read_goldin_2022
from openretina_data.datasets.fetching.mirror_folder import listing_url
from openretina_data.datasets.goldin_2022 import FOLDER_URL
from openretina_data.errors import DataError
from openretina_data.splits import make_splits

MOUSE = ["mouse_retina_1", "mouse_retina_2"]


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_goldin_fixture(tmp_path_factory.mktemp("goldin"))


@pytest.fixture
def root(published: Path, tmp_path: Path) -> Path:
    """A private copy, for tests that edit the files."""
    return Path(shutil.copytree(published, tmp_path / "goldin_2022"))


def test_one_frame_per_image_with_trials_and_shared_images(published: Path) -> None:
    dataset = read_goldin_2022(published)
    assert sorted(dataset.sessions) == MOUSE  # the axolotl file is another species
    first, second = (dataset.sessions[name] for name in MOUSE)
    for session in (first, second):
        assert len(session.train_movie) == 60
        assert session.train_movie.frames.shape == (1, 60, 16, 16)
        assert session.train_movie.frames.dtype == np.uint8  # z-scored per batch, never copied to float
        assert session.train_responses.shape == (5, 60)
        test = session.tests["naturalscene"]
        assert test.trials.shape == (4, 5, 6)
        np.testing.assert_allclose(test.responses, test.trials.mean(axis=0), rtol=1e-6)
        assert list(session.neuron_metadata["species"]) == ["mouse"] * 5
    assert first.train_movie.frames is second.train_movie.frames  # the same images are held once
    assert first.train_movie.shows_same_frames_as(second.train_movie)
    info = dataset.data_info.to_dict()
    assert info["input_shape"] == [1, 16, 16]
    assert info["frame_rate_hz"] is None
    assert info["pixel_size_um"] == 28.0
    assert info["response_normalisation"] == {"divided_by": 0.3}


def test_counts_become_rates_and_images_are_z_scored(published: Path) -> None:
    dataset = read_goldin_2022(published, species="axolotl", fr_normalization=0.3)
    session = dataset.sessions["axolotl_retina_1"]
    with h5py.File(published / "axolotl_retina_1.h5") as handle:
        counts = handle["train/response/binned"][()]
        trials = np.stack([handle[f"test/repeats/cell_{k}"][()] for k in range(5)], axis=1)
        images = handle["train/stimulus"][()].astype(np.float64)
    np.testing.assert_allclose(session.train_responses, counts / 0.3, rtol=1e-6)
    np.testing.assert_allclose(session.tests["naturalscene"].trials, trials / 0.3, rtol=1e-6)
    frames = session.train_movie.read_all()
    assert frames.dtype == np.float32
    np.testing.assert_allclose(frames[0], (images - images.mean()) / images.std(), rtol=1e-4, atol=1e-5)


def test_repeated_and_test_images_never_straddle_a_split(root: Path) -> None:
    path = root / "mouse_retina_1.h5"
    with h5py.File(path, "a") as handle:
        images = handle["train/stimulus"][()]
        images[10] = images[3]  # a repeated training image
        images[20] = images[3]
        images[30] = handle["test/stimulus"][0]  # a test image also in training
        handle["train/stimulus"][...] = images
        counts = handle["train/response/binned"][()]
    dataset = read_goldin_2022(root, sessions=["mouse_retina_1"])
    session = dataset.sessions["mouse_retina_1"]
    assert len(session.train_movie) == 57  # 60 - 2 repeats - 1 test image
    np.testing.assert_allclose(
        session.train_responses[:, 3], counts[:, [3, 10, 20]].mean(axis=1) / 0.3, rtol=1e-5
    )
    frames = session.train_movie.frames[0].reshape(57, -1)
    assert len(np.unique(frames, axis=0)) == 57
    notes = " ".join(dataset.notes)
    assert "2 repeated training presentations merged" in notes
    assert "1 training images also shown as test images were removed" in notes
    splits = make_splits(dataset, clip_length=1, num_val_clips=10, train_chunk_size=1, seed=1)
    split = splits.sessions["mouse_retina_1"]
    assert split.val_mask().sum() == 10
    assert split.train_mask().sum() == 47


def test_batches_are_single_frames(published: Path) -> None:
    dataset = read_goldin_2022(published)
    splits = make_splits(dataset, clip_length=1, num_val_clips=12, train_chunk_size=1, seed=0)
    batches = list(TrainBatches(dataset, splits, batch_size=8, seed=0))
    for name in MOUSE:  # every training image exactly once per epoch (no repeated chunk)
        starts = np.concatenate([batch.starts for batch in batches if batch.session == name])
        assert sorted(starts.tolist()) == np.flatnonzero(splits.sessions[name].train_mask()).tolist()
    assert {batch.stimulus.shape[1:] for batch in batches} == {(1, 1, 16, 16)}
    assert {batch.responses.shape[1:] for batch in batches} == {(1, 5)}
    assert abs(float(np.mean([batch.stimulus.mean() for batch in batches]))) < 0.2
    validation = next(iter(ValidationBatches(dataset, splits, batch_size=4)))
    assert validation.stimulus.shape[2] == 1


def test_repeats_of_unequal_length_name_the_file_and_cell(root: Path) -> None:
    path = root / "mouse_retina_2.h5"
    with h5py.File(path, "a") as handle:
        values = handle["test/repeats/cell_3"][()]
        del handle["test/repeats/cell_3"]
        handle["test/repeats/cell_3"] = values[:3]
    with pytest.raises(DataError, match="repeats of unequal length") as error:
        read_goldin_2022(root)
    assert error.value.file == str(path)
    assert error.value.key == "test/repeats/cell_3"


@pytest.mark.parametrize(
    ("edit", "key", "words"),
    [
        (lambda h: h.__delitem__("train/stimulus"), "train/stimulus", "missing"),
        (lambda h: h.__delitem__("test/response/binned"), "test/response/binned", "binned"),
        (
            lambda h: h["test/response/binned"].__setitem__(Ellipsis, 99.0),
            "test/response/binned",
            "not the mean",
        ),
        (lambda h: h.__delitem__("test/repeats/cell_4"), "test/repeats", "4 cell_<k> datasets for 5"),
    ],
)
def test_bad_files_get_one_message_naming_file_and_key(root: Path, edit, key: str, words: str) -> None:
    path = root / "mouse_retina_1.h5"
    with h5py.File(path, "a") as handle:
        edit(handle)
    with pytest.raises(DataError, match=words) as error:
        read_goldin_2022(root)
    assert (error.value.file, error.value.key) == (str(path), key)
    assert "Fix:" in str(error.value)


def test_species_and_session_selection(published: Path) -> None:
    with pytest.raises(DataError, match="unknown species"):
        read_goldin_2022(published, species="marmoset")
    with pytest.raises(DataError, match="choose among"):
        read_goldin_2022(published, sessions=["mouse_retina_9"])
    assert list(read_goldin_2022(published, sessions=["mouse_retina_2"]).sessions) == ["mouse_retina_2"]


def test_loader_reads_local_copies_without_network(published: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    mirror = published.parents[1]  # holds marre_lab/goldin_2022/
    for data_dir in (mirror, published):
        assert sorted(load_goldin_2022(data_dir=data_dir).sessions) == MOUSE
    with pytest.raises(DataError, match=r"no \.h5 session file"):
        load_goldin_2022(data_dir=mirror / "marre_lab")


def _no_network(*args: object, **kwargs: object) -> None:
    raise AssertionError("no network call expected")


def test_loader_downloads_the_species_files_once(
    published: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {f"marre_lab/goldin_2022/{p.name}": p.read_bytes() for p in sorted(published.glob("*.h5"))}
    listing = json.dumps(
        [{"type": "directory", "path": "marre_lab/goldin_2022/extra", "size": 0}]
        + [{"type": "file", "path": path, "size": len(body)} for path, body in files.items()]
    ).encode()
    base = "https://huggingface.co/datasets/open-retina/open-retina/resolve/main/"
    bodies = {listing_url(FOLDER_URL): listing} | {base + path: body for path, body in files.items()}
    calls: list[str] = []

    class Response(io.BytesIO):
        status = 200
        headers: ClassVar[dict[str, str]] = {}

    def urlopen(request: urllib.request.Request, timeout: float | None = None) -> Response:
        calls.append(request.full_url)
        response = Response(bodies[request.full_url])
        response.headers = {"Content-Length": str(len(bodies[request.full_url]))}
        return response

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    quiet = {"progress": lambda *args: None, "cache_dir": tmp_path / "cache"}
    first = load_goldin_2022(**quiet)
    second = load_goldin_2022(**quiet)
    assert sorted(first.sessions) == sorted(second.sessions) == MOUSE
    assert calls == [listing_url(FOLDER_URL), *(base + f"marre_lab/goldin_2022/{s}.h5" for s in MOUSE)]
    assert listing_url(FOLDER_URL).startswith(
        "https://huggingface.co/api/datasets/open-retina/open-retina/tree/main/"
    )
