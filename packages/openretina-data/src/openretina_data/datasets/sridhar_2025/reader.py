"""Sridhar et al. 2025: marmoset ganglion cells (MEA, 85 Hz) to natural movies seen through
simulated fixational eye movements, and to white noise, from the same four retinas.

The mirror folders ``gollisch_lab/sridhar_2025/marmoset/natural_movie`` and ``.../whitenoise`` hold::

    responses/cell_responses_<NN>_fixation_movie.pkl   (natural movie; <NN>_wn.pkl: white noise)
        train_responses (neurons, frames_per_trial, trials), test_responses (neurons, T, repeats)
        optional seeds, trial_separation (seed -> trial indices)
    fixations/*.txt, stimuli_padded_4/*_img_*.npy           natural movie (see .stimuli)
    non_repeating_stimuli_<k>/trial_<ttt>/all_images.npy     white-noise training trials
    repeating_stimuli_<k>/all_images.npy                     the repeated white-noise test
    stas/cell_data_<NN>_WN_stas_cell_<c>.npy                 spike-triggered averages (time, H, W)

The pickles are read without running code (:mod:`..safe_pickle`). Training trial ``t`` is shown on
fixation lines ``test_frames + t * frames_per_trial`` onwards; the test movie on the first lines.
Movies are built once into the cache (:mod:`..fetching.built_movies`) and streamed from it. Validation is
trial-wise: a seeded ``1 - train_frac`` of the trials, redrawn until trials with repeated content
(``same_side_trials``) fall on one side; it is handed to the splits as fixed validation clips.
Cells listed in ``excluded_cells`` (the published unreliable cells) are removed and reported.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from openretina_data.datasets.fetching import (
    Builder,
    MovieWriter,
    ProgressCallback,
    cached_movies,
    fetch_folder,
    is_set,
    is_url,
    mean_std,
    relative_cache_path,
    resolve_cache_dir,
)
from openretina_data.datasets.normalisation import normalised, pooled_moments
from openretina_data.datasets.sridhar_2025.responses import Responses, read_responses, validation_trials
from openretina_data.datasets.sridhar_2025.stimuli import (
    Crop,
    check_fixation_lines,
    image_files,
    natural_movie_blocks,
    open_white_noise,
    read_fixations,
    stored_dtype,
    white_noise_blocks,
)
from openretina_data.errors import DataError
from openretina_data.records import DataInfo, Dataset, Movie, SessionData, TestSet

MIRROR = (
    "https://huggingface.co/datasets/open-retina/open-retina/tree/main/gollisch_lab/sridhar_2025/marmoset"
)
STIMULI = {"natural_movie": "fixation_movie", "white_noise": "wn"}
FOLDERS = {"natural_movie": "natural_movie", "white_noise": "whitenoise"}
FRAME_RATE_HZ = 85.0
PIXEL_SIZE_UM = 30.0  # one pixel of the 4x downsampled natural movie, and one white-noise square
TEST_FRAMES = 5100  # fixation lines of the repeated test movie, before the training trials
DEFAULT_FIXATIONS = "complete_fixations_seed_2022and2023_s4_fixed.txt"
PUBLISHED_FIXATIONS = {"02": "complete_fixations_seed2022_s4.txt"}
PUBLISHED_WHITE_NOISE_FOLDERS = {"01": 1, "02": 1, "03": 1, "04": 2}
PUBLISHED_SAME_SIDE = ((0, 9), (10, 19))
BUILD_VERSION = 1  # bump when the movie construction changes, so cached movies are rebuilt
BUILT_FOLDER = "gollisch_lab/sridhar_2025/built_movies"
PUBLISHED_CROP = Crop()


def load_sridhar_2025(
    *,
    stimulus: str = "natural_movie",
    url: str = MIRROR,
    data_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    sessions: Sequence[str] | None = None,
    excluded_cells: Mapping[str, Sequence[int]] | None = None,
    cells: Mapping[str, Sequence[int]] | None = None,
    clip_length: int = 100,
    train_frac: float = 0.8,
    split_seed: int = 1000,
    same_side_trials: Sequence[Sequence[int]] = PUBLISHED_SAME_SIDE,
    stimulus_seed: int | None = None,
    first_test_repeats: Mapping[str, int] | None = None,
    normalize_stimuli: bool = True,
    fixation_files: Mapping[str, str] | None = None,
    white_noise_folders: Mapping[str, int] | None = None,
    test_frames: int = TEST_FRAMES,
    receptive_fields: bool = False,
    progress: ProgressCallback | None = None,
) -> Dataset:
    """Sridhar 2025 (``stimulus``: natural_movie or white_noise) as a :class:`Dataset`, downloading
    the stimulus' mirror folder if needed.

    ``data_dir`` (a local folder holding ``responses/`` etc., or the mirror layout above it)
    replaces the download. Built movies always go to the cache, never into the data folder.
    """
    _check_stimulus(stimulus, url)
    folder_url = f"{url.rstrip('/')}/{FOLDERS[stimulus]}"
    if is_set(data_dir) and not is_url(data_dir):
        root = _local_root(Path(data_dir).expanduser(), folder_url, stimulus)
    else:
        source = (
            f"{str(data_dir).rstrip('/')}/{relative_cache_path(folder_url)}"
            if is_set(data_dir)
            else folder_url
        )
        wanted = functools.partial(_needed, stimulus=stimulus, stas=receptive_fields)
        root = fetch_folder(source, cache_dir=cache_dir, wanted=wanted, progress=progress)
    return read_sridhar_2025(
        root,
        stimulus=stimulus,
        cache_dir=cache_dir,
        sessions=sessions,
        excluded_cells=excluded_cells,
        cells=cells,
        clip_length=clip_length,
        train_frac=train_frac,
        split_seed=split_seed,
        same_side_trials=same_side_trials,
        stimulus_seed=stimulus_seed,
        first_test_repeats=first_test_repeats,
        normalize_stimuli=normalize_stimuli,
        fixation_files=fixation_files,
        white_noise_folders=white_noise_folders,
        test_frames=test_frames,
        receptive_fields=receptive_fields,
    )


def _needed(path: str, *, stimulus: str, stas: bool) -> bool:
    """Whether a file of the mirror folder is read: not the full-resolution images
    (``stimuli_padded/``), and the STAs only for ``receptive_fields``."""
    top = path.split("/", 1)[0]
    if top in ("responses", "fixations") or (stas and top == "stas"):
        return True
    if stimulus == "natural_movie":
        return top == "stimuli_padded_4"
    return top.startswith(("non_repeating_stimuli_", "repeating_stimuli_"))


def _check_stimulus(stimulus: str, where: object) -> None:
    if stimulus not in STIMULI:
        raise DataError(
            str(where), "stimulus", f"unknown stimulus {stimulus!r}", f"use one of {tuple(STIMULI)}"
        )


def _local_root(data_dir: Path, folder_url: str, stimulus: str) -> Path:
    for candidate in (data_dir / relative_cache_path(folder_url), data_dir / FOLDERS[stimulus], data_dir):
        if (candidate / "responses").is_dir():
            return candidate
    raise DataError(
        data_dir,
        "paths.data_dir",
        f"no responses/ folder here, under {FOLDERS[stimulus]}/ nor under {relative_cache_path(folder_url)}/",
        f"point it at a copy of the Sridhar 2025 {FOLDERS[stimulus]} folder, or set it to null to "
        "download it",
    )


@dataclass(frozen=True)
class _Options:
    stimulus: str
    excluded: Mapping[str, Sequence[int]]
    cells: Mapping[str, Sequence[int]]
    clip_length: int
    train_frac: float
    split_seed: int
    same_side: tuple[tuple[int, ...], ...]
    stimulus_seed: int | None
    first_test_repeats: Mapping[str, int]
    fixation_files: Mapping[str, str]
    white_noise_folders: Mapping[str, int]
    test_frames: int
    crop: Crop
    built: Path


def read_sridhar_2025(
    root: str | os.PathLike[str],
    *,
    stimulus: str = "natural_movie",
    cache_dir: str | os.PathLike[str] | None = None,
    sessions: Sequence[str] | None = None,
    excluded_cells: Mapping[str, Sequence[int]] | None = None,
    cells: Mapping[str, Sequence[int]] | None = None,
    clip_length: int = 100,
    train_frac: float = 0.8,
    split_seed: int = 1000,
    same_side_trials: Sequence[Sequence[int]] = PUBLISHED_SAME_SIDE,
    stimulus_seed: int | None = None,
    first_test_repeats: Mapping[str, int] | None = None,
    normalize_stimuli: bool = True,
    fixation_files: Mapping[str, str] | None = None,
    white_noise_folders: Mapping[str, int] | None = None,
    test_frames: int = TEST_FRAMES,
    receptive_fields: bool = False,
    crop: Crop = PUBLISHED_CROP,
) -> Dataset:
    """Read a Sridhar 2025 stimulus folder (the one holding ``responses/``) into a :class:`Dataset`."""
    root = Path(root)
    _check_stimulus(stimulus, root)
    crop.check(root)
    if not 0.0 < train_frac < 1.0:
        raise DataError(root, "train_frac", f"is {train_frac}", "use a fraction between 0 and 1, e.g. 0.8")
    if int(clip_length) < 1:
        raise DataError(root, "clip_length", f"is {clip_length}", "use a positive number of frames")
    options = _Options(
        stimulus=stimulus,
        excluded={str(k): list(v) for k, v in (excluded_cells or {}).items()},
        cells={str(k): list(v) for k, v in (cells or {}).items()},
        clip_length=int(clip_length),
        train_frac=float(train_frac),
        split_seed=int(split_seed),
        same_side=tuple(tuple(int(t) for t in group) for group in same_side_trials),
        stimulus_seed=stimulus_seed,
        first_test_repeats={str(k): int(v) for k, v in (first_test_repeats or {}).items()},
        fixation_files={str(k): v for k, v in (fixation_files or PUBLISHED_FIXATIONS).items()},
        white_noise_folders={
            str(k): int(v) for k, v in (white_noise_folders or PUBLISHED_WHITE_NOISE_FOLDERS).items()
        },
        test_frames=int(test_frames),
        crop=crop,
        built=resolve_cache_dir(cache_dir) / BUILT_FOLDER / FOLDERS[stimulus],
    )
    files = _response_files(root, stimulus, sessions)
    notes: list[str] = []
    records: dict[str, SessionData] = {}
    moments: dict[str, tuple[float, float]] = {}
    shared: dict[str, tuple[Any, ...]] = {}  # built folder -> frames, so identical movies are one object
    for name, path in files.items():
        records[name], moments[name] = _read_session(root, path, name, options, shared, notes)
        if receptive_fields:
            _add_receptive_fields(root, records[name], options)
    normalisation = None
    if normalize_stimuli:
        mean, std = pooled_moments(moments, root, "train movie")
        normalisation = {"mean": [mean], "std": [std]}
        records = {name: normalised(session, mean, std) for name, session in records.items()}
    info = DataInfo.describe(
        records,
        (1, crop.height, crop.width),
        train_stimuli=(stimulus,),
        test_stimuli=(stimulus,),
        frame_rate_hz=FRAME_RATE_HZ,
        pixel_size_um=PIXEL_SIZE_UM,
        stimulus_normalisation=normalisation,
    )
    return Dataset(sessions=records, data_info=info, notes=notes)


def _response_files(root: Path, stimulus: str, wanted: Sequence[str] | None) -> dict[str, Path]:
    suffix = f"_{STIMULI[stimulus]}.pkl"
    folder = root / "responses"
    found = {
        p.name.removeprefix("cell_responses_").removesuffix(suffix): p
        for p in sorted(folder.glob(f"cell_responses_*{suffix}"))
    }
    if wanted is not None:
        missing = [str(name) for name in wanted if str(name) not in found]
        if missing:
            raise DataError(
                folder,
                "sessions",
                f"no cell_responses_<NN>{suffix} for {missing}",
                f"choose among {sorted(found)} (the retinas recorded with this stimulus)",
            )
        found = {str(name): found[str(name)] for name in wanted}
    if not found:
        raise DataError(
            folder, None, f"no cell_responses_<NN>{suffix} file", "download the whole folder again"
        )
    return found


def _read_session(
    root: Path,
    path: Path,
    name: str,
    options: _Options,
    shared: dict[str, tuple[Any, ...]],
    notes: list[str],
) -> tuple[SessionData, tuple[float, float]]:
    responses = read_responses(
        path,
        name,
        excluded=options.excluded,
        cells=options.cells,
        stimulus_seed=options.stimulus_seed,
        first_test_repeats=options.first_test_repeats,
        notes=notes,
    )
    n_neurons, frames_per_trial, n_trials = responses.train.shape
    if options.stimulus == "natural_movie":
        build, key = _natural_movie(root, name, responses, options)
    else:
        build, key = _white_noise(root, name, responses, options)
    # the folder is named by what is shown (shared by retinas that saw the same movie); the key also
    # holds the source files' sizes and times, so a changed source rebuilds into the same folder
    folder = options.built / _digest({k: v for k, v in key.items() if k != "sources"})
    if str(folder) not in shared:
        movies, meta, built_now = cached_movies(folder, key, ("train", "test"), build)
        if built_now:
            notes.append(f"session {name}: movies rebuilt into {folder}")
        shared[str(folder)] = (movies["train"], movies["test"], (meta["train_mean"], meta["train_std"]))
    train_frames, test_frames, moments = shared[str(folder)]
    per_trial = (frames_per_trial // options.clip_length) * options.clip_length
    if per_trial == 0:
        raise DataError(
            path,
            "train_responses",
            f"trials of {frames_per_trial} frames are shorter than dataloader.clip_length "
            f"{options.clip_length}",
            f"set dataloader.clip_length <= {frames_per_trial}",
        )
    timeline = responses.train.transpose(0, 2, 1)  # (N, trials, frames): trials back to back
    index = None
    if per_trial < frames_per_trial:
        index = (np.arange(n_trials)[:, None] * frames_per_trial + np.arange(per_trial)).reshape(-1)
        notes.append(
            f"session {name}: last {frames_per_trial - per_trial} of each trial's {frames_per_trial} "
            f"frames dropped (not a whole clip of {options.clip_length}; trials are never crossed)"
        )
    train = np.ascontiguousarray(timeline[:, :, :per_trial]).reshape(n_neurons, n_trials * per_trial)
    clips = per_trial // options.clip_length
    position = {int(t): i for i, t in enumerate(responses.trials_used.tolist())}  # trial -> place in use
    groups = [[position[t] for t in group if t in position] for group in options.same_side]
    val = validation_trials(n_trials, options.train_frac, options.split_seed, groups, path)
    val_clips = (val[:, None] * clips + np.arange(clips)).reshape(-1).tolist()
    test = TestSet(
        movie=Movie(frames=test_frames),
        responses=responses.test_mean,
        trials=responses.test_trials,
    )
    session = SessionData(
        name=name,
        train_movie=Movie(frames=train_frames, index=index),
        train_responses=train,
        tests={options.stimulus: test},
        neuron_metadata={
            "neuron_ids": responses.neuron_ids,
            "species": np.full(n_neurons, "marmoset"),
            "frame_rate_hz": np.full(n_neurons, FRAME_RATE_HZ),
        },
        val_clip_indices=val_clips,
    )
    notes.append(
        f"session {name}: {len(val)} of {n_trials} trials for validation (trials "
        f"{responses.trials_used[val].tolist()}; seed {options.split_seed})"
    )
    return session, moments


def _digest(key: Mapping[str, Any]) -> str:
    """The cache folder name of a built movie: sessions with the same stimulus share one."""
    return hashlib.sha1(json.dumps(dict(key), sort_keys=True).encode()).hexdigest()[:16]


def _stat(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _natural_movie(
    root: Path, name: str, responses: Responses, options: _Options
) -> tuple[Builder, dict[str, Any]]:
    """The builder of this retina's movies and the key they are cached under."""
    _, frames_per_trial, _ = responses.train.shape
    test_length = responses.test_mean.shape[1]
    fixation_file = root / "fixations" / options.fixation_files.get(name, DEFAULT_FIXATIONS)
    images = image_files(root / "stimuli_padded_4")
    if test_length > options.test_frames:
        raise DataError(
            fixation_file,
            "data_io.test_frames",
            f"the test movie is its first {options.test_frames} lines, but retina {name}'s test "
            f"responses have {test_length} time bins",
            "use the published files (5100 test lines), or set data_io.test_frames",
        )
    lines = np.concatenate(
        [np.arange(test_length)]
        + [
            options.test_frames + t * frames_per_trial + np.arange(frames_per_trial)
            for t in responses.trials_used
        ]
    )
    if not fixation_file.is_file():
        raise DataError(
            fixation_file, None, "the fixation file is missing", f"check data_io.fixation_files.{name}"
        )
    key = {
        "version": BUILD_VERSION,
        "stimulus": "natural_movie",
        "fixations": fixation_file.name,
        "images": [len(images), images[0].name, images[-1].name],
        "sources": [_stat(fixation_file), _stat(images[0].parent)],
        "frames_per_trial": frames_per_trial,
        "trials": responses.trials_used.tolist(),
        "test_length": test_length,
        "test_frames": options.test_frames,
        "crop": list(vars(options.crop).values()),
    }

    def build(scratch: Path) -> dict[str, Any]:
        fixations = read_fixations(fixation_file)
        if lines.max() >= len(fixations):
            raise DataError(
                fixation_file,
                "lines",
                f"{len(fixations)} lines, but {len(responses.trials_used)} trials of {frames_per_trial} "
                f"frames after {options.test_frames} test lines need {int(lines.max()) + 1}",
                f"use the fixation file published for retina {name} (data_io.fixation_files)",
            )
        sample = np.load(images[0], mmap_mode="r")
        if sample.ndim != 2:
            raise DataError(
                images[0], None, f"shape {sample.shape}, expected (width, height)", "use the published images"
            )
        check_fixation_lines(fixations, lines, len(images), sample.shape, options.crop)
        dtype = stored_dtype(sample)
        stats = []
        for split, part in (("test", lines[:test_length]), ("train", lines[test_length:])):
            with MovieWriter(
                scratch / f"{split}.npy", len(part), options.crop.height, options.crop.width, dtype
            ) as out:
                for block in natural_movie_blocks(fixations, part, images, options.crop, dtype):
                    out.write(block)
            stats.append(out.moments())
        mean, std = mean_std(*stats[1])
        return {"train_mean": mean, "train_std": std}

    return build, key


def _white_noise(
    root: Path, name: str, responses: Responses, options: _Options
) -> tuple[Builder, dict[str, Any]]:
    """The builder of this retina's movies and the key they are cached under."""
    _, frames_per_trial, _ = responses.train.shape
    test_length = responses.test_mean.shape[1]
    if name not in options.white_noise_folders:
        raise DataError(
            root,
            f"data_io.white_noise_folders.{name}",
            "no stimulus folder for this retina",
            "map it to 1 or 2",
        )
    k = options.white_noise_folders[name]
    train_files = [
        root / f"non_repeating_stimuli_{k}" / f"trial_{t:03d}" / "all_images.npy"
        for t in responses.trials_used
    ]
    test_file = root / f"repeating_stimuli_{k}" / "all_images.npy"
    for path in [*train_files, test_file]:
        if not path.is_file():
            raise DataError(
                path,
                None,
                "the white-noise stimulus is missing",
                "download the whole whitenoise folder again",
            )
    key = {
        "version": BUILD_VERSION,
        "stimulus": "white_noise",
        "train": [str(p.relative_to(root)) for p in train_files],
        "test": str(test_file.relative_to(root)),
        "sources": [_stat(p) for p in [*train_files, test_file]],
        "frames_per_trial": frames_per_trial,
        "test_length": test_length,
        "crop": list(vars(options.crop).values()),
    }

    def build(scratch: Path) -> dict[str, Any]:
        dtype = stored_dtype(open_white_noise(test_file, test_length, options.crop))
        h, w = options.crop.height, options.crop.width
        with MovieWriter(scratch / "test.npy", test_length, h, w, dtype) as out:
            for block in white_noise_blocks(test_file, test_length, options.crop, dtype):
                out.write(block)
        with MovieWriter(scratch / "train.npy", frames_per_trial * len(train_files), h, w, dtype) as out:
            for path in train_files:
                for block in white_noise_blocks(path, frames_per_trial, options.crop, dtype):
                    out.write(block)
        mean, std = mean_std(*out.moments())
        return {"train_mean": mean, "train_std": std}

    return build, key


def _add_receptive_fields(root: Path, session: SessionData, options: _Options) -> None:
    """``rf_row``/``rf_col`` (model pixels) per neuron: the pixel of largest temporal variance of its
    white-noise STA (flipped top-down for the natural movie, whose images are mirrored relative to
    the STAs), moved into the crop. Neurons without an STA file get the crop's centre and a note."""
    crop = options.crop
    rows, cols = [], []
    for cell in session.neuron_metadata["neuron_ids"].tolist():
        path = root / "stas" / f"cell_data_{session.name}_WN_stas_cell_{cell}.npy"
        if not path.is_file():
            raise DataError(
                path,
                None,
                "the STA is missing (data_io.receptive_fields needs one per cell)",
                "download the stas/ folder, or set data_io.receptive_fields=false",
            )
        sta = np.load(path, mmap_mode="r")
        if sta.ndim != 3:
            raise DataError(
                path, None, f"shape {sta.shape}, expected (time, height, width)", "use the published STAs"
            )
        variance = np.asarray(sta, dtype=np.float32).var(axis=0)
        row, col = np.unravel_index(int(np.argmax(variance)), variance.shape)
        if options.stimulus == "natural_movie":
            row = variance.shape[0] - 1 - row
        rows.append(int(np.clip(row - crop.top, 0, crop.height - 1)))
        cols.append(int(np.clip(col - crop.left, 0, crop.width - 1)))
    session.neuron_metadata["rf_row"] = np.asarray(rows, dtype=np.int64)
    session.neuron_metadata["rf_col"] = np.asarray(cols, dtype=np.int64)
