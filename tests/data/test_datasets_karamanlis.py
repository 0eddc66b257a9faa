"""The Karamanlis 2024 reader on tiny MATLAB v7.3 files of the published layout: the rebuilt movie
against a plain full-resolution rendering, the cache of built movies, and one message per bad file."""

from __future__ import annotations

import io
import json
import os
import urllib.request
from pathlib import Path
from typing import ClassVar

import h5py
import numpy as np
import pytest
from fixtures_published import write_karamanlis_fixture
from openretina_data.datasets import load_karamanlis_2024, read_karamanlis_2024
from openretina_data.datasets.fetching.mirror_folder import listing_url
from openretina_data.datasets.fixation_movie import Screen
from openretina_data.datasets.karamanlis_2024 import FOLDER_URL
from openretina_data.errors import DataError
from openretina_data.npy_frames import NpyFrames

MOUSE = "20220301_mouse_retina1"
MARMOSET = "20220412_marmoset_retina2"
SMALL_SCREEN = Screen(height=60, width=80, out_height=6, out_width=8)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_karamanlis_fixture(tmp_path_factory.mktemp("karamanlis"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Small private files (40x50 images on a 60x80 screen), for tests that edit them."""
    return write_karamanlis_fixture(
        tmp_path / "data", n_blocks=2, block_frames=20, test_frames=15, image_height=40, image_width=50
    )


def _mat(root: Path, session: str = MOUSE) -> Path:
    return root / session / f"{session}_fixationmovie_data.mat"


def _render(image_yx: np.ndarray, x: int, y: int, screen: Screen) -> np.ndarray:
    """The full-resolution screen of one fixation, pixel by pixel, then averaged in blocks."""
    full = np.zeros((screen.height, screen.width))
    for row in range(screen.height):
        for col in range(screen.width):
            r, c = row + y - screen.height // 2, col + x - screen.width // 2
            if 0 <= r < image_yx.shape[0] and 0 <= c < image_yx.shape[1]:
                full[row, col] = image_yx[r, c]
    fy, fx = screen.height // screen.out_height, screen.width // screen.out_width
    return full.reshape(screen.out_height, fy, screen.out_width, fx).mean(axis=(1, 3))


def test_movie_matches_a_plain_rendering_of_every_fixation(root: Path, tmp_path: Path) -> None:
    path = _mat(root)
    with h5py.File(path, "a") as handle:  # some fixations near the image edges: black borders
        fixations = handle["frozenfixations"][()]
        fixations[:4, 1:] = [[0, 0], [49, 39], [-30, 10], [70, 55]]
        handle["frozenfixations"][...] = fixations
        images = handle["frozenImages"][()]
    dataset = read_karamanlis_2024(
        root, sessions=[MOUSE], screen=SMALL_SCREEN, normalize_stimuli=False, cache_dir=tmp_path / "cache"
    )
    movie = dataset.sessions[MOUSE].tests["fixationmovie"].movie.read_all()[0]
    expected = np.stack(
        [_render(images[int(i) - 1].T, int(x), int(y), SMALL_SCREEN) for i, x, y in fixations]
    )
    np.testing.assert_allclose(movie, expected, rtol=1e-5, atol=1e-6)
    assert movie[3].min() == 0.0  # partly off the image: black there


def test_records_species_rates_and_responses(published: Path, tmp_path: Path) -> None:
    dataset = read_karamanlis_2024(published, species=None, fr_normalization=2.0, cache_dir=tmp_path)
    assert sorted(dataset.sessions) == [MOUSE, MARMOSET]
    with h5py.File(_mat(published)) as handle:
        running, frozen = handle["runningbin"][()], handle["frozenbin"][()]
    mouse = dataset.sessions[MOUSE]
    np.testing.assert_allclose(mouse.train_responses, running.reshape(600, 6).T / 2.0, rtol=1e-6)
    test = mouse.tests["fixationmovie"]
    np.testing.assert_allclose(test.trials, frozen.transpose(0, 2, 1) / 2.0, rtol=1e-6)
    np.testing.assert_allclose(test.responses, test.trials.mean(axis=0), rtol=1e-6)
    assert mouse.train_movie.frames.shape == (1, 600, 60, 80)
    assert list(mouse.neuron_metadata["frame_rate_hz"]) == [75.0] * 6
    assert list(dataset.sessions[MARMOSET].neuron_metadata["species"]) == ["marmoset"] * 6
    assert list(dataset.sessions[MARMOSET].neuron_metadata["frame_rate_hz"]) == [85.0] * 6
    info = dataset.data_info.to_dict()
    assert info["frame_rate_hz"] is None  # two species: the rates are per neuron
    assert info["pixel_size_um"] == 75.0  # 7.5 um screen pixels, reduced 10x
    assert info["input_shape"] == [1, 60, 80]
    one = read_karamanlis_2024(published, species="marmoset", cache_dir=tmp_path)
    assert one.data_info.frame_rate_hz == 85.0
    frames = one.sessions[MARMOSET].train_movie.read(np.arange(600)[None])
    assert abs(float(frames.mean())) < 1e-3
    assert abs(float(frames.std()) - 1.0) < 1e-3  # z-scored per batch from the uint8-free float32 cache


def test_built_movie_is_cached_and_rebuilt_when_the_source_changes(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = {"sessions": [MOUSE], "screen": SMALL_SCREEN, "cache_dir": tmp_path / "cache"}
    first = read_karamanlis_2024(root, **options)
    assert any("rebuilt" in note for note in first.notes)
    built = tmp_path / "cache" / "gollisch_lab" / "karamanlis_2024" / "built_movies" / MOUSE
    assert sorted(p.name for p in built.iterdir() if not p.name.endswith(".lock")) == [
        f"{MOUSE}_fixationmovie_data_6x8"
    ]

    def no_build(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached movie should have been used")

    monkeypatch.setattr("openretina_data.datasets.karamanlis_2024.fixation_blocks", no_build)
    second = read_karamanlis_2024(root, **options)
    assert isinstance(second.sessions[MOUSE].train_movie.frames, NpyFrames)  # streamed, not loaded
    np.testing.assert_array_equal(
        second.sessions[MOUSE].train_movie.read_all(), first.sessions[MOUSE].train_movie.read_all()
    )
    monkeypatch.undo()
    stat = _mat(root).stat()
    os.utime(_mat(root), ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a newer source file
    third = read_karamanlis_2024(root, **options)
    assert any("rebuilt" in note for note in third.notes)
    meta = json.loads((built / f"{MOUSE}_fixationmovie_data_6x8" / "meta.json").read_text())
    assert meta["source_key"]["mtime_ns"] == stat.st_mtime_ns + 10**9


def _edit(path: Path, key: str, update) -> None:
    with h5py.File(path, "a") as handle:
        values = update(handle[key][()])
        del handle[key]
        handle[key] = values


@pytest.mark.parametrize(
    ("key", "update", "words"),
    [
        ("runningbin", None, "missing"),
        (
            "runningfixations",
            lambda f: np.concatenate([f[..., :1] * 0 + 9, f[..., 1:]], axis=-1),
            "outside 1..5",
        ),
        ("frozenfixations", lambda f: np.concatenate([f[:, :1], f[:, 1:] + 500], axis=-1), "off the"),
        ("frozenbin", lambda b: b[:, :10], "repeats of 10 time bins for a test movie of 15 frames"),
        ("runningbin", lambda b: b[:1], "1 blocks x 20 time bins for runningfixations of 2 blocks"),
    ],
)
def test_bad_files_get_one_message_naming_file_and_key(
    root: Path, tmp_path: Path, key: str, update, words: str
) -> None:
    path = _mat(root)
    if update is None:
        with h5py.File(path, "a") as handle:
            del handle[key]
    else:
        _edit(path, key, update)
    with pytest.raises(DataError, match=words) as error:
        read_karamanlis_2024(root, screen=SMALL_SCREEN, cache_dir=tmp_path / "cache")
    assert (error.value.file, error.value.key) == (str(path), key)
    assert "Fix:" in str(error.value)
    assert not list((tmp_path / "cache").rglob("*.npy"))  # nothing written


def test_a_matlab_v7_file_is_named_with_how_to_resave_it(root: Path, tmp_path: Path) -> None:
    path = _mat(root)
    path.write_bytes(
        b"MATLAB 5.0 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 2024".ljust(128) + b"\0" * 64
    )
    with pytest.raises(DataError, match="MATLAB v5/v7 file") as error:
        read_karamanlis_2024(root, screen=SMALL_SCREEN, cache_dir=tmp_path)
    assert error.value.file == str(path)
    assert "-v7.3" in error.value.fix


def test_header_is_the_matlab_v73_one(published: Path) -> None:
    with _mat(published).open("rb") as handle:
        assert handle.read(19) == b"MATLAB 7.3 MAT-file"
    with h5py.File(_mat(published)) as handle:
        assert handle.userblock_size == 512


def test_options_are_checked(published: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not divide"):
        read_karamanlis_2024(published, screen=Screen(600, 800, 70, 80), cache_dir=tmp_path)
    with pytest.raises(DataError, match="unknown species"):
        read_karamanlis_2024(published, species="axolotl")
    with pytest.raises(DataError, match="only fixationmovie"):
        read_karamanlis_2024(published, stim_type="gratingflicker")


def test_loader_reads_local_copies_and_downloads_one_species_once(
    published: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = published.parents[2]
    for data_dir in (mirror, published):
        dataset = load_karamanlis_2024(data_dir=data_dir, cache_dir=tmp_path / "built")
        assert list(dataset.sessions) == [MOUSE]
    files = {
        f"gollisch_lab/karamanlis_2024/sessions/{p.relative_to(published).as_posix()}": p.read_bytes()
        for p in sorted(published.rglob("*.mat"))
    }
    listing = json.dumps([{"type": "file", "path": path, "size": len(body)} for path, body in files.items()])
    base = "https://huggingface.co/datasets/open-retina/open-retina/resolve/main/"
    bodies = {listing_url(FOLDER_URL): listing.encode()} | {base + path: body for path, body in files.items()}
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
    assert list(load_karamanlis_2024(**quiet).sessions) == [MOUSE]
    assert list(load_karamanlis_2024(**quiet).sessions) == [MOUSE]
    mouse_file = next(path for path in files if MOUSE in path)
    assert calls == [listing_url(FOLDER_URL), base + mouse_file]
