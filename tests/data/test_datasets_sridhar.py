"""The Sridhar 2025 reader on tiny folders of the published layout: the rebuilt natural movie
against a plain per-frame rendering (1.x's placement), white noise, trial-wise validation, the
cache of built movies, and one message per bad file."""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from fixtures_sridhar import (
    DEFAULT_FIXATIONS,
    NM_FOLDER,
    write_sridhar_nm_fixture,
    write_sridhar_wn_fixture,
)
from openretina_data.batching import TestBatches, TrainBatches
from openretina_data.datasets import load_sridhar_2025, read_sridhar_2025
from openretina_data.datasets.fetching.mirror_folder import listing_url
from openretina_data.datasets.sridhar_2025.reader import MIRROR
from openretina_data.datasets.sridhar_2025.responses import validation_trials
from openretina_data.errors import DataError
from openretina_data.npy_frames import NpyFrames
from openretina_data.splits import make_splits

NM = {"test_frames": 60, "clip_length": 100}


@pytest.fixture(scope="module")
def nm_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sridhar_nm_fixture(tmp_path_factory.mktemp("sridhar"), stas=True)


@pytest.fixture
def small_nm(tmp_path: Path) -> Path:
    """Private files (2 images, 1 retina, 5 trials of 20 frames) for tests that edit them."""
    return write_sridhar_nm_fixture(
        tmp_path / "data", sessions=("01",), n_trials=5, frames_per_trial=20, test_frames=10, n_images=2
    )


def _render(image_wh: np.ndarray, cx: int, cy: int, mirrored: bool) -> np.ndarray:
    """One frame as openretina 1.x draws it, pixel by pixel: a 200x150 window around the centre
    + 50 px padding, flipped along its second axis when mirrored, transposed, then cropped by
    [35, 35, 55, 55] (only the cropped pixels need to lie inside the image)."""
    x, y = cx + 50, cy + 50
    frame = np.zeros((80, 90))
    for row in range(80):
        for col in range(90):
            window_x, window_y = col + 55, row + 35  # (x, y) of the transposed window
            if mirrored:
                window_y = 149 - window_y
            frame[row, col] = image_wh[x - 100 + window_x, y - 75 + window_y]
    return frame


def test_natural_movie_matches_a_plain_rendering_of_every_line(small_nm: Path, tmp_path: Path) -> None:
    dataset = read_sridhar_2025(
        small_nm, test_frames=10, clip_length=20, normalize_stimuli=False, cache_dir=tmp_path / "cache"
    )
    session = dataset.sessions["01"]
    images = [np.load(p) for p in sorted((small_nm / "stimuli_padded_4").iterdir())]
    lines = [line.split() for line in (small_nm / "fixations" / DEFAULT_FIXATIONS).read_text().splitlines()]

    def expected(numbers: range) -> np.ndarray:
        return np.stack(
            [
                _render(images[int(lines[i][0])], int(lines[i][3]), int(lines[i][4]), lines[i][-1][0] == "0")
                for i in numbers
            ]
        )

    assert session.train_movie.frames.dtype == np.uint8  # uint8 stays uint8 until batched
    np.testing.assert_array_equal(session.tests["natural_movie"].movie.read_all()[0], expected(range(10)))
    # training trial t starts on line test_frames + t * frames_per_trial
    np.testing.assert_array_equal(session.train_movie.read_all()[0], expected(range(10, 110)))
    assert any(lines[i][-1][0] == "0" for i in range(110))  # both flip flags occur
    assert any(lines[i][-1][0] == "1" for i in range(110))


def test_records_responses_trials_and_excluded_cells(nm_root: Path, tmp_path: Path) -> None:
    dataset = read_sridhar_2025(nm_root, excluded_cells={"01": [1, 4]}, cache_dir=tmp_path, **NM)
    with (nm_root / "responses" / "cell_responses_01_fixation_movie.pkl").open("rb") as handle:
        raw = pickle.load(handle)
    session = dataset.sessions["01"]
    kept = [0, 2, 3, 5]
    assert session.neuron_metadata["neuron_ids"].tolist() == kept
    trials_back_to_back = raw["train_responses"][kept].transpose(0, 2, 1).reshape(4, 2000)
    np.testing.assert_allclose(session.train_responses, trials_back_to_back)
    test = session.tests["natural_movie"]
    np.testing.assert_allclose(test.trials, raw["test_responses"][kept].transpose(2, 0, 1))
    np.testing.assert_allclose(test.responses, test.trials.mean(axis=0), rtol=1e-6)
    assert len(test.movie) == 60
    assert any("2 of 6 cells excluded as unreliable" in note and "[1, 4]" in note for note in dataset.notes)
    assert dataset.n_neurons == {"01": 4, "02": 6}
    info = dataset.data_info
    assert (info.input_shape, info.frame_rate_hz, info.pixel_size_um) == ((1, 80, 90), 85.0, 30.0)
    frames = session.train_movie.read(np.arange(2000)[None])
    assert abs(float(frames.mean())) < 0.05  # z-scored per batch, pooled over both retinas
    assert abs(float(frames.std()) - 1.0) < 0.05


def test_trial_wise_validation_keeps_repeated_trials_together(nm_root: Path, tmp_path: Path) -> None:
    for seed in range(20):
        val = validation_trials(20, 0.8, seed, [[0, 9], [10, 19]], "here")
        assert len(val) == 4
        assert (0 in val) == (9 in val)
        assert (10 in val) == (19 in val)
    dataset = read_sridhar_2025(nm_root, sessions=["01"], cache_dir=tmp_path, test_frames=60, clip_length=30)
    session = dataset.sessions["01"]
    val = validation_trials(20, 0.8, 1000, [[0, 9], [10, 19]], "here")
    assert session.val_clip_indices == [3 * t + k for t in val.tolist() for k in range(3)]
    assert len(session.train_movie) == 20 * 90  # the last 10 frames of each 100-frame trial dropped
    assert any("last 10 of each trial's 100 frames dropped" in note for note in dataset.notes)
    splits = make_splits(dataset, clip_length=30, train_chunk_size=30, allow_over_boundaries=False, seed=1)
    split = splits.sessions["01"]
    starts = split.chunk_starts(0)
    trial_of_chunk = (starts // 90, (starts + 29) // 90)
    np.testing.assert_array_equal(*trial_of_chunk)  # no chunk crosses a trial
    assert not set((starts // 90).tolist()) & set(val.tolist())  # no validation trial is trained on


def test_stimulus_seed_and_first_test_repeats(nm_root: Path, tmp_path: Path) -> None:
    by_seed = read_sridhar_2025(nm_root, sessions=["01"], stimulus_seed=2023, cache_dir=tmp_path, **NM)
    assert len(by_seed.sessions["01"].train_movie) == 10 * 100  # the odd trials of the fixture
    first = read_sridhar_2025(
        nm_root, sessions=["01"], first_test_repeats={"01": 2}, cache_dir=tmp_path, **NM
    )
    assert first.sessions["01"].tests["natural_movie"].trials.shape[0] == 2
    one = read_sridhar_2025(nm_root, sessions=["02"], cells={"02": [3]}, cache_dir=tmp_path, **NM)
    assert one.sessions["02"].neuron_metadata["neuron_ids"].tolist() == [3]


def test_built_movies_are_cached_and_rebuilt_when_the_source_changes(
    small_nm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = {"test_frames": 10, "clip_length": 20, "cache_dir": tmp_path / "cache"}
    first = read_sridhar_2025(small_nm, **options)
    assert any("rebuilt" in note for note in first.notes)

    def no_build(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached movie should have been used")

    monkeypatch.setattr("openretina_data.datasets.sridhar_2025.reader.natural_movie_blocks", no_build)
    second = read_sridhar_2025(small_nm, **options)
    assert isinstance(second.sessions["01"].train_movie.frames, NpyFrames)  # streamed, not loaded
    assert not any("rebuilt" in note for note in second.notes)
    np.testing.assert_array_equal(
        second.sessions["01"].train_movie.read_all(), first.sessions["01"].train_movie.read_all()
    )
    monkeypatch.undo()
    fixations = small_nm / "fixations" / DEFAULT_FIXATIONS
    stat = fixations.stat()
    os.utime(fixations, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert any("rebuilt" in note for note in read_sridhar_2025(small_nm, **options).notes)
    built = list((tmp_path / "cache").rglob("meta.json"))
    assert len(built) == 1  # the stale build was replaced, not kept beside the new one


def _pickle(root: Path, update) -> Path:
    path = root / "responses" / "cell_responses_01_fixation_movie.pkl"
    with path.open("rb") as handle:
        data = pickle.load(handle)
    update(data)
    with path.open("wb") as handle:
        pickle.dump(data, handle, protocol=4)
    return path


def _fixations(root: Path, field: int, value: str, line: int = 3) -> Path:
    path = root / "fixations" / DEFAULT_FIXATIONS
    lines = path.read_text().splitlines()
    fields = lines[line].split()
    fields[field] = value
    lines[line] = " ".join(fields)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("edit", "key", "words"),
    [
        (lambda r: _pickle(r, lambda d: d.pop("train_responses")), "train_responses", "missing"),
        (
            lambda r: _pickle(r, lambda d: d.update(test_responses=[np.ones((6, 10)), np.ones((6, 9))])),
            "test_responses",
            "repeats of unequal length",
        ),
        (lambda r: _fixations(r, 0, "7"), "image index (field 1)", "outside 0..1"),
        (lambda r: _fixations(r, 3, "400"), "center_x/center_y (fields 4-5)", "outside the 300x350 image"),
    ],
)
def test_bad_files_get_one_message_naming_file_and_key(
    small_nm: Path, tmp_path: Path, edit, key: str, words: str
) -> None:
    path = edit(small_nm)
    with pytest.raises(DataError, match=words) as error:
        read_sridhar_2025(small_nm, test_frames=10, clip_length=20, cache_dir=tmp_path / "cache")
    assert (error.value.file, error.value.key) == (str(path), key)
    assert "Fix:" in str(error.value)
    assert not list((tmp_path / "cache").rglob("*.npy"))  # nothing written


def test_too_few_fixation_lines_and_unknown_cells_are_named(small_nm: Path, tmp_path: Path) -> None:
    fixations = small_nm / "fixations" / DEFAULT_FIXATIONS
    fixations.write_text("\n".join(fixations.read_text().splitlines()[:50]) + "\n")
    with pytest.raises(DataError, match="50 lines") as error:
        read_sridhar_2025(small_nm, test_frames=10, clip_length=20, cache_dir=tmp_path)
    assert error.value.file == str(fixations)
    with pytest.raises(DataError, match="first 5 lines, but retina 01's test responses have 10") as error:
        read_sridhar_2025(small_nm, test_frames=5, clip_length=20, cache_dir=tmp_path)
    assert error.value.key == "data_io.test_frames"
    with pytest.raises(DataError, match=r"cells \[99\] do not exist"):
        read_sridhar_2025(small_nm, excluded_cells={"01": [99]}, test_frames=10, clip_length=20)


def test_white_noise_is_the_cropped_trials_back_to_back(tmp_path: Path) -> None:
    root = write_sridhar_wn_fixture(tmp_path / "data")
    dataset = read_sridhar_2025(
        root, stimulus="white_noise", clip_length=20, normalize_stimuli=False, cache_dir=tmp_path / "cache"
    )
    assert sorted(dataset.sessions) == ["01", "04"]
    session = dataset.sessions["04"]  # retina 04 saw stimulus set 2
    trials = [
        np.load(root / "non_repeating_stimuli_2" / f"trial_{t:03d}" / "all_images.npy") for t in range(5)
    ]
    expected = np.concatenate([t[35:115, 55:145].transpose(2, 0, 1) for t in trials])
    np.testing.assert_array_equal(session.train_movie.read_all()[0], expected)
    test = np.load(root / "repeating_stimuli_2" / "all_images.npy")[35:115, 55:145, :30].transpose(2, 0, 1)
    np.testing.assert_array_equal(session.tests["white_noise"].movie.read_all()[0], test)
    assert session.tests["white_noise"].trials.shape == (3, 5, 30)


def test_receptive_fields_come_from_the_stas(nm_root: Path, tmp_path: Path) -> None:
    dataset = read_sridhar_2025(nm_root, sessions=["01"], receptive_fields=True, cache_dir=tmp_path, **NM)
    metadata = dataset.sessions["01"].neuron_metadata
    cells = np.arange(6)
    # the fixture's STA peak of cell c is at (40 + 5c, 60 + 7c); the natural movie flips rows
    np.testing.assert_array_equal(metadata["rf_row"], 149 - (40 + 5 * cells) - 35)
    np.testing.assert_array_equal(metadata["rf_col"], 60 + 7 * cells - 55)


def test_loader_reads_local_copies_and_downloads_once(
    small_nm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = {"test_frames": 10, "clip_length": 20, "cache_dir": tmp_path / "built"}
    for data_dir in (small_nm.parents[3], small_nm):
        assert list(load_sridhar_2025(data_dir=data_dir, **options).sessions) == ["01"]
    files = {
        f"{NM_FOLDER}/{p.relative_to(small_nm).as_posix()}": p.read_bytes() for p in small_nm.rglob("*.*")
    }
    folder_url = f"{MIRROR}/natural_movie"
    unread = {
        f"{NM_FOLDER}/stimuli_padded/00000_img_10088.npy": b"full size",
        f"{NM_FOLDER}/stas/x.npy": b"-",
    }
    listing = json.dumps(
        [{"type": "file", "path": path, "size": len(body)} for path, body in (files | unread).items()]
    )
    base = "https://huggingface.co/datasets/open-retina/open-retina/resolve/main/"
    bodies = {listing_url(folder_url): listing.encode()} | {base + path: body for path, body in files.items()}
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
    quiet = {**options, "progress": lambda *args: None, "cache_dir": tmp_path / "cache"}
    assert list(load_sridhar_2025(**quiet).sessions) == ["01"]
    assert list(load_sridhar_2025(**quiet).sessions) == ["01"]
    assert len(calls) == 1 + len(files)  # the listing and each file it reads, once
    assert not set(calls) & {base + path for path in unread}  # full-resolution images, STAs unasked


def test_configs_instantiate_and_batch(nm_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("hydra", reason="the configs need hydra-core")
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    configs = Path(__file__).parents[2] / "configs"
    wn_root = write_sridhar_wn_fixture(tmp_path / "wn")
    for name, root, extra in (
        ("sridhar_2025_nm", nm_root, ["data_io.test_frames=60"]),
        ("sridhar_2025_wn", wn_root, []),
    ):
        with initialize_config_dir(config_dir=str(configs), version_base="1.3"):
            config = compose(
                overrides=[
                    "+paths=default",
                    f"paths.data_dir={root}",
                    f"paths.cache_dir={tmp_path / 'cache'}",
                    f"+data_io={name}",
                    "+dataloader=default",
                    "dataloader.clip_length=20",
                    "~data_io.excluded_cells",  # the published lists name cells the fixture lacks
                    "+data_io.excluded_cells={01: [1, 2]}",
                    *extra,
                ]
            )
        dataset = instantiate(config.data_io)
        assert dataset.data_info.frame_rate_hz == 85.0
        assert any("2 of 5" in note or "2 of 6" in note for note in dataset.notes)
        splits = make_splits(
            dataset, clip_length=20, train_chunk_size=20, allow_over_boundaries=False, seed=42
        )
        batch = next(iter(TrainBatches(dataset, splits, batch_size=2, seed=0)))
        assert batch.stimulus.shape == (2, 1, 20, 80, 90)
        test = next(iter(TestBatches(dataset)))
        assert test.trials.shape[1] == 3


_MEASURE = textwrap.dedent(
    """
    import json, sys
    def high_water_mark():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    sys.path.insert(0, {fixtures!r})
    from fixtures_published import float32_bytes
    from openretina_data.datasets import read_sridhar_2025
    before = high_water_mark()
    dataset = read_sridhar_2025({root!r}, test_frames=600, clip_length=100, cache_dir={cache!r})
    peak = high_water_mark()
    print(json.dumps({{"before": before, "peak": peak, "float32": float32_bytes(dataset)}}))
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak RSS from /proc (Linux)")
def test_peak_memory_building_and_from_the_cache(tmp_path: Path) -> None:
    root = write_sridhar_nm_fixture(
        tmp_path, sessions=("01", "03"), n_cells=100, frames_per_trial=1000, n_trials=12, test_frames=600
    )
    code = _MEASURE.format(fixtures=str(Path(__file__).parent), root=str(root), cache=str(tmp_path / "cache"))
    for _ in ("build", "cached"):
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        numbers = json.loads(result.stdout.strip().splitlines()[-1])
        assert numbers["peak"] - numbers["before"] <= 1.3 * numbers["float32"], numbers
