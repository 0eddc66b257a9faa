"""Karamanlis et al. 2024: mouse and marmoset ganglion cells (MEA) to natural images seen through
fixational eye movements.

The mirror folder ``gollisch_lab/karamanlis_2024/sessions/`` holds one folder (or zip) per session,
named with its species; each has a MATLAB v7.3 file ``*<stim_type>_data.mat``. As h5py reads it::

    runningImages (n_images, x, y), frozenImages (n_images', x, y)     the natural images
    runningfixations (blocks, frames, 3), frozenfixations (frames', 3)   [1-based image, x, y]
    runningbin (blocks, frames, neurons)                               training spike counts
    frozenbin (repeats, frames', neurons)                              repeated test trials

The movies are rebuilt from images and fixations (:mod:`.fixation_movie`) once, written to the cache
as float32 ``.npy`` files (atomically, with the source file's size and time), and streamed from them
(:class:`~openretina_data.npy_frames.NpyFrames`: positioned reads of the frames a batch needs) on
every later run, which therefore starts at once and holds no copy of the movie. Species and frame
rate (mouse 75 Hz, marmoset 85 Hz) are recorded per neuron in ``neuron_metadata``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import h5py
import numpy as np

from openretina_data.datasets.fetching import (
    BUILT_MARKER,
    ProgressCallback,
    exclusive_lock,
    fetch_folder,
    is_set,
    is_url,
    relative_cache_path,
    replace_built_folder,
    resolve_cache_dir,
)
from openretina_data.datasets.fixation_movie import Screen, check_fixations, fixation_blocks
from openretina_data.datasets.matlab import open_mat_v73, require
from openretina_data.datasets.normalisation import normalised, pooled_moments
from openretina_data.datasets.session_choice import choose_sessions
from openretina_data.errors import DataError
from openretina_data.npy_frames import NpyFrames
from openretina_data.records import DataInfo, Dataset, Movie, SessionData, TestSet

FOLDER_URL = (
    "https://huggingface.co/datasets/open-retina/open-retina/tree/main/gollisch_lab/karamanlis_2024/sessions"
)
FRAME_RATES_HZ = {"mouse": 75.0, "marmoset": 85.0}
STIM_TYPES = ("fixationmovie", "frozencheckerflicker", "gratingflicker", "imagesequence")
BUILT_MOVIES_FOLDER = "gollisch_lab/karamanlis_2024/built_movies"
PUBLISHED_SCREEN = Screen(height=600, width=800, out_height=60, out_width=80)
BUILD_VERSION = 1  # bump when the movie construction changes, so cached movies are rebuilt


def load_karamanlis_2024(
    *,
    url: str = FOLDER_URL,
    data_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    species: str | None = "mouse",
    stim_type: str = "fixationmovie",
    fr_normalization: float = 1.0,
    normalize_stimuli: bool = True,
    sessions: Sequence[str] | None = None,
    movie_height: int = 60,
    movie_width: int = 80,
    screen_height: int = 600,
    screen_width: int = 800,
    screen_pixel_size_um: float = 7.5,
    progress: ProgressCallback | None = None,
) -> Dataset:
    """Karamanlis 2024 as a :class:`Dataset`, downloading the species' sessions if needed.

    ``data_dir`` (a local folder holding the session folders, flat or as
    ``gollisch_lab/karamanlis_2024/sessions/``) replaces the download. Built movies always go to
    the cache (``cache_dir``), never into the data folder.
    """
    _check_options(species, stim_type, url)
    if is_set(data_dir) and not is_url(data_dir):
        root = _local_root(Path(data_dir).expanduser(), url, species)
    else:
        folder_url = f"{str(data_dir).rstrip('/')}/{relative_cache_path(url)}" if is_set(data_dir) else url

        def wanted(path: str) -> bool:
            session = path.split("/", 1)[0]
            needed = path.endswith(".zip") or path.endswith(f"{stim_type}_data.mat")
            return needed and (species is None or species in session)

        root = fetch_folder(folder_url, cache_dir=cache_dir, wanted=wanted, progress=progress)
    return read_karamanlis_2024(
        root,
        species=species,
        stim_type=stim_type,
        fr_normalization=fr_normalization,
        normalize_stimuli=normalize_stimuli,
        sessions=sessions,
        screen=Screen(screen_height, screen_width, movie_height, movie_width),
        screen_pixel_size_um=screen_pixel_size_um,
        cache_dir=cache_dir,
    )


def _check_options(species: str | None, stim_type: str, where: object) -> None:
    if species is not None and species not in FRAME_RATES_HZ:
        raise DataError(
            str(where),
            "species",
            f"unknown species {species!r}",
            f"use one of {tuple(FRAME_RATES_HZ)} or null (both)",
        )
    if stim_type != "fixationmovie":
        raise DataError(
            str(where),
            "stim_type",
            f"{stim_type!r} has no movie to rebuild (only fixationmovie sessions are trainable)",
            "use stim_type: fixationmovie",
        )


def _local_root(data_dir: Path, url: str, species: str | None) -> Path:
    for candidate in (data_dir / relative_cache_path(url), data_dir / "sessions", data_dir):
        if candidate.is_dir() and _session_folders(candidate, species):
            return candidate
    raise DataError(
        data_dir,
        "paths.data_dir",
        f"no {species or 'mouse/marmoset'} session folder here nor under {relative_cache_path(url)}/",
        "point it at the folder holding the (extracted) Karamanlis 2024 session folders, or set it to null "
        "to download them",
    )


def _session_folders(root: Path, species: str | None) -> list[Path]:
    names = FRAME_RATES_HZ if species is None else (species,)
    return sorted(
        p
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and any(s in p.name for s in names)
    )


def read_karamanlis_2024(
    root: str | os.PathLike[str],
    *,
    species: str | None = "mouse",
    stim_type: str = "fixationmovie",
    fr_normalization: float = 1.0,
    normalize_stimuli: bool = True,
    sessions: Sequence[str] | None = None,
    screen: Screen = PUBLISHED_SCREEN,
    screen_pixel_size_um: float = 7.5,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Dataset:
    """Read a folder of Karamanlis 2024 session folders into a :class:`Dataset`.

    Movies are built on first use into ``<cache_dir>/gollisch_lab/karamanlis_2024/built_movies``.
    """
    root = Path(root)
    _check_options(species, stim_type, root)
    if not fr_normalization or not np.isfinite(fr_normalization):
        raise DataError(
            root, "fr_normalization", f"{fr_normalization!r} cannot divide responses", "use e.g. 1.0"
        )
    files = _session_files(root, species, stim_type, sessions)
    built = resolve_cache_dir(cache_dir) / BUILT_MOVIES_FOLDER
    notes: list[str] = []
    records: dict[str, SessionData] = {}
    moments: dict[str, tuple[float, float]] = {}
    for name, path in files.items():
        records[name], moments[name] = _read_session(
            path, name, stim_type, float(fr_normalization), screen, built / name, notes
        )
    normalisation = None
    if normalize_stimuli:
        mean, std = pooled_moments(moments, root, "runningImages")
        normalisation = {"mean": [mean], "std": [std]}
        records = {name: normalised(session, mean, std) for name, session in records.items()}
    rates = {FRAME_RATES_HZ[_species(name)] for name in records}
    if len(rates) > 1:
        notes.append("sessions of both species (75 and 85 Hz): frame rates are per neuron in neuron_metadata")
    fy, _ = screen.factors(root)
    first = next(iter(records.values()))
    info = DataInfo.describe(
        records,
        first.train_movie.frame_shape,
        train_stimuli=(stim_type,),
        test_stimuli=(stim_type,),
        frame_rate_hz=rates.pop() if len(rates) == 1 else None,
        pixel_size_um=float(screen_pixel_size_um) * fy,
        stimulus_normalisation=normalisation,
        response_normalisation=None if fr_normalization == 1.0 else {"divided_by": float(fr_normalization)},
    )
    return Dataset(sessions=records, data_info=info, notes=notes)


def _species(session: str) -> str:
    return next(s for s in FRAME_RATES_HZ if s in session)


def _session_files(
    root: Path, species: str | None, stim_type: str, wanted: Sequence[str] | None
) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for folder in _session_folders(root, species):
        matches = sorted(folder.rglob(f"*{stim_type}_data.mat"))
        if len(matches) > 1:
            raise DataError(
                folder,
                None,
                f"{len(matches)} files end in {stim_type}_data.mat",
                "keep one per session folder",
            )
        if matches:
            files[folder.name] = matches[0]
    files = choose_sessions(files, wanted, root, f"{stim_type}_data.mat")
    if not files:
        raise DataError(
            root,
            "species",
            f"no {species or 'mouse/marmoset'} session folder holds a *{stim_type}_data.mat file",
            "check the folder (zipped sessions must be extracted), or choose species among mouse, marmoset",
        )
    return files


def _read_session(
    path: Path,
    name: str,
    stim_type: str,
    fr_normalization: float,
    screen: Screen,
    cache_folder: Path,
    notes: list[str],
) -> tuple[SessionData, tuple[float, float]]:
    with open_mat_v73(path) as handle:
        running = require(handle, path, "runningbin", 3, "(blocks, frames, neurons)")
        frozen = require(handle, path, "frozenbin", 3, "(repeats, frames, neurons)")
        blocks, frames, n_neurons = running.shape
        if frozen.shape[2] != n_neurons:
            raise DataError(
                path,
                "frozenbin",
                f"{frozen.shape[2]} neurons, runningbin has {n_neurons}",
                "use the published file",
            )
        running_fixations = require(handle, path, "runningfixations", 3, "(blocks, frames, 3)")
        frozen_fixations = require(handle, path, "frozenfixations", 2, "(frames, 3)")
        if running_fixations.shape[:2] != (blocks, frames):
            raise DataError(
                path,
                "runningbin",
                f"{blocks} blocks x {frames} time bins for runningfixations of "
                f"{running_fixations.shape[0]} blocks x {running_fixations.shape[1]} frames",
                "use the published file: runningbin and runningfixations need the same blocks and frames",
            )
        if frozen.shape[1] != frozen_fixations.shape[0]:
            raise DataError(
                path,
                "frozenbin",
                f"repeats of {frozen.shape[1]} time bins for a test movie of "
                f"{frozen_fixations.shape[0]} frames (frozenfixations)",
                "use the published file: every repeat must be as long as frozenfixations",
            )
        (train_movie, test_movie), mean, std = _movies(handle, path, name, screen, cache_folder, notes)
        train = np.empty((n_neurons, blocks * frames), dtype=np.float32)
        for block in range(blocks):  # one block at a time: no float64 copy of all responses
            train[:, block * frames : (block + 1) * frames] = running[block].T
        trials = np.empty((frozen.shape[0], n_neurons, frozen.shape[1]), dtype=np.float32)
        for repeat in range(frozen.shape[0]):
            trials[repeat] = frozen[repeat].T
    if fr_normalization != 1.0:
        train /= np.float32(fr_normalization)
        trials /= np.float32(fr_normalization)
    species = _species(name)
    metadata = {
        "neuron_ids": np.arange(n_neurons, dtype=np.int64),
        "species": np.full(n_neurons, species),
        "frame_rate_hz": np.full(n_neurons, FRAME_RATES_HZ[species]),
    }
    session = SessionData(
        name=name,
        train_movie=Movie(frames=train_movie),
        train_responses=train,
        tests={
            stim_type: TestSet(movie=Movie(frames=test_movie), responses=trials.mean(axis=0), trials=trials)
        },
        neuron_metadata=metadata,
    )
    return session, (mean, std)


def _source_key(path: Path, screen: Screen) -> dict[str, object]:
    """What a cached movie was built from; any change rebuilds it."""
    stat = path.stat()
    return {
        "version": BUILD_VERSION,
        "source": path.name,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "screen": [screen.height, screen.width],
        "movie": [screen.out_height, screen.out_width],
    }


def _movies(
    handle: h5py.File, path: Path, name: str, screen: Screen, cache_folder: Path, notes: list[str]
) -> tuple[tuple[NpyFrames, NpyFrames], float, float]:
    """(train, test) movies (1, T, h, w) float32 streamed from the cache, built first if needed; and
    the training movie's mean and std."""
    key = _source_key(path, screen)
    folder = cache_folder / f"{path.stem}_{screen.out_height}x{screen.out_width}"
    cached = _cached(folder, key)
    if cached is None:
        folder.parent.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(folder):  # concurrent runs (DDP ranks) wait, then find it built
            cached = _cached(folder, key)
            if cached is None:
                _build(handle, path, folder, key, screen)
                notes.append(f"{name}: movies rebuilt from images and fixations into {folder}")
                cached = _cached(folder, key)
    assert cached is not None
    return cached


def _cached(
    folder: Path, key: dict[str, object]
) -> tuple[tuple[np.ndarray, np.ndarray], float, float] | None:
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("source_key") != key:
        return None
    movies = (NpyFrames(folder / "train.npy"), NpyFrames(folder / "test.npy"))
    return movies, float(meta["train_mean"]), float(meta["train_std"])


def _build(handle: h5py.File, path: Path, folder: Path, key: dict[str, object], screen: Screen) -> None:
    """Both movies, written into a scratch folder that replaces ``folder`` only when complete."""
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}.building-", dir=folder.parent))
    try:
        scratch.chmod(0o755)  # a shared cache stays readable by others, as downloaded files are
        stats = []
        for split in ("running", "frozen"):
            images = require(handle, path, f"{split}Images", 3, "(images, x, y)")
            fixations_key = f"{split}fixations"
            ndim = 3 if split == "running" else 2
            layout = "(blocks, frames, 3)" if ndim == 3 else "(frames, 3)"
            raw = require(handle, path, fixations_key, ndim, layout)
            if raw.shape[-1] != 3:
                raise DataError(
                    path, fixations_key, f"shape {raw.shape}, expected {layout}", "use the published file"
                )
            image_shape = (images.shape[2], images.shape[1])  # (height, width) of each image
            fixations = check_fixations(raw[()], images.shape[0], image_shape, screen, path, fixations_key)
            n_frames = int(np.prod(fixations.shape[:-1]))
            blocks = fixation_blocks(images, fixations, screen, path, _image_yx)
            target = scratch / ("train.npy" if split == "running" else "test.npy")
            stats.append(_write_movie(target, blocks, n_frames, screen))
        total, square, count = stats[0]
        mean = total / count
        meta = {
            "source_key": key,
            "train_mean": mean,
            "train_std": max(square / count - mean * mean, 0.0) ** 0.5,
        }
        (scratch / BUILT_MARKER).write_text(json.dumps(meta, indent=1))
        replace_built_folder(scratch, folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _image_yx(images: h5py.Dataset, index: int) -> np.ndarray:
    """Image ``index`` as (height, width): h5py reads MATLAB's (y, x) image as (x, y)."""
    return images[index].T


def _write_movie(
    target: Path, blocks: Iterable[np.ndarray], n_frames: int, screen: Screen
) -> tuple[float, float, int]:
    """Write (1, n_frames, h, w) float32 as .npy from ``blocks``; return (sum, sum of squares, count)."""
    header = {
        "descr": "<f4",
        "fortran_order": False,
        "shape": (1, n_frames, screen.out_height, screen.out_width),
    }
    total = square = 0.0
    with target.open("wb") as sink:
        np.lib.format.write_array_header_2_0(sink, header)
        for block in blocks:
            values = block.astype(np.float64)
            total += float(values.sum())
            square += float(np.square(values, out=values).sum())
            sink.write(np.ascontiguousarray(block, dtype="<f4").data)
    return total, square, n_frames * screen.out_height * screen.out_width
