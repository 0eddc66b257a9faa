"""Maheswaranathan et al. 2023: tiger salamander ganglion cells (MEA) to jittered natural scenes.

Layout after extracting ``neural_code_data.zip``::

    neural_code_data/ganglion_cell_data/<session>/{naturalscene,whitenoise}.h5
        train/stimulus (T, 50, 50) uint8 on a 10 ms grid, train/response/<type> (N, T)
        test/stimulus (T', 50, 50), test/response/<type> (N, T' + 1)   <- one bin more than frames
        test/repeats/cellNN (R, T' + 1)  or  test/repeats/<type> (R, N, T' + 1)

Frames stay uint8 (0.9 GB per session instead of 3.6 GB as float32); the z-scoring with the
training movie's mean and std is applied per batch through ``Movie.offset``/``Movie.scale``.
Responses are frame-aligned 1:1 (no resampling); the extra test bin is dropped and said so in
``Dataset.notes``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from openretina_data.datasets.fetching import ProgressCallback, fetch, hugging_face_url, is_set, is_url
from openretina_data.datasets.session_choice import choose_sessions
from openretina_data.errors import DataError
from openretina_data.records import DataInfo, Dataset, Movie, SessionData, TestSet

DATA_URL = hugging_face_url("baccus_lab/maheswaranathan_2023/neural_code_data.zip")
RESPONSE_TYPES = ("firing_rate_5ms", "firing_rate_10ms", "firing_rate_20ms", "binned")
STIM_TYPES = ("naturalscene", "whitenoise")
SESSIONS_FOLDER = "ganglion_cell_data"
MAX_STATS_DISAGREEMENT = 1.0  # sessions' stimulus mean/std (in raw units) may differ at most this much
_BLOCK_FRAMES = 4096
_CELL_NAME = re.compile(r"^cell(\d+)$")


def load_maheswaranathan_2023(
    *,
    base_data_path: str | os.PathLike[str] | None = None,
    url: str = DATA_URL,
    data_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    sha256: str | None = None,
    stim_type: str = "naturalscene",
    response_type: str = "firing_rate_20ms",
    fr_normalization: float = 1.0,
    normalize_stimuli: bool = True,
    sessions: Sequence[str] | None = None,
    frame_rate_hz: float = 100.0,
    pixel_size_um: float = 50.0,
    progress: ProgressCallback | None = None,
) -> Dataset:
    """Maheswaranathan 2023 as a :class:`Dataset`, downloading ``neural_code_data.zip`` if needed.

    ``base_data_path`` (a local folder holding ``ganglion_cell_data``, or a URL of the zip) takes
    precedence; then ``data_dir`` (a local copy: nothing is downloaded); then the cache.
    """
    root = _locate(base_data_path, url, data_dir, cache_dir, sha256, progress)
    return read_maheswaranathan_2023(
        root,
        stim_type=stim_type,
        response_type=response_type,
        fr_normalization=fr_normalization,
        normalize_stimuli=normalize_stimuli,
        sessions=sessions,
        frame_rate_hz=frame_rate_hz,
        pixel_size_um=pixel_size_um,
    )


def _dataset_root(path: Path) -> Path | None:
    """The folder holding ``ganglion_cell_data`` at or near ``path``, if any."""
    for candidate in (path, path / "neural_code_data"):
        if (candidate / SESSIONS_FOLDER).is_dir():
            return candidate
    if path.name == SESSIONS_FOLDER and path.is_dir():
        return path.parent
    return None


def _locate(
    base_data_path: str | os.PathLike[str] | None,
    url: str,
    data_dir: str | os.PathLike[str] | None,
    cache_dir: str | os.PathLike[str] | None,
    sha256: str | None,
    progress: ProgressCallback | None,
) -> Path:
    if is_set(base_data_path):
        if is_url(base_data_path):
            url, data_dir = str(base_data_path), None
        else:
            path = Path(base_data_path).expanduser()
            root = _dataset_root(path)
            if root is None:
                raise DataError(
                    path,
                    "base_data_path",
                    f"no {SESSIONS_FOLDER}/ folder found here",
                    "point it at the extracted neural_code_data folder, or set it to null to download",
                )
            return root
    if is_set(data_dir) and not is_url(data_dir):
        root = _dataset_root(Path(data_dir).expanduser())
        if root is not None:
            return root
    found = fetch(url, cache_dir=cache_dir, data_dir=data_dir, sha256=sha256, progress=progress)
    root = _dataset_root(found)
    if root is None:
        raise DataError(
            found,
            None,
            f"the extracted archive holds no {SESSIONS_FOLDER}/ folder",
            "delete it and download again",
        )
    return root


def read_maheswaranathan_2023(
    root: str | os.PathLike[str],
    *,
    stim_type: str = "naturalscene",
    response_type: str = "firing_rate_20ms",
    fr_normalization: float = 1.0,
    normalize_stimuli: bool = True,
    sessions: Sequence[str] | None = None,
    frame_rate_hz: float = 100.0,
    pixel_size_um: float = 50.0,
) -> Dataset:
    """Read an extracted ``neural_code_data`` folder into a :class:`Dataset`."""
    root = Path(root)
    if stim_type not in STIM_TYPES:
        raise DataError(root, "stim_type", f"unknown stimulus type {stim_type!r}", f"use one of {STIM_TYPES}")
    if not fr_normalization or not np.isfinite(fr_normalization):
        raise DataError(
            root, "fr_normalization", f"{fr_normalization!r} cannot divide responses", "use e.g. 1.0"
        )
    files = _session_files(root, stim_type, sessions)
    notes: list[str] = []
    histograms: dict[str, np.ndarray] = {}
    records: dict[str, SessionData] = {}
    for name, path in files.items():
        session, histogram = _read_session(
            path, name, stim_type, response_type, float(fr_normalization), notes
        )
        records[name] = session
        histograms[name] = histogram
    normalisation = None
    if normalize_stimuli:
        mean, std = _pooled_stats(histograms, root)
        normalisation = {"mean": [mean], "std": [std]}
        records = {name: _with_normalisation(session, mean, std) for name, session in records.items()}
    first = next(iter(records.values()))
    info = DataInfo.describe(
        records,
        first.train_movie.frame_shape,
        train_stimuli=(stim_type,),
        test_stimuli=(stim_type,),
        frame_rate_hz=float(frame_rate_hz),
        pixel_size_um=float(pixel_size_um),
        stimulus_normalisation=normalisation,
        response_normalisation=None if fr_normalization == 1.0 else {"divided_by": float(fr_normalization)},
    )
    return Dataset(sessions=records, data_info=info, notes=notes)


def _session_files(root: Path, stim_type: str, wanted: Sequence[str] | None) -> dict[str, Path]:
    folder = root / SESSIONS_FOLDER
    files: dict[str, Path] = {}
    for session in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))):
        matches = sorted(p for p in session.iterdir() if p.name.endswith(f"{stim_type}.h5"))
        if matches:
            files[session.name] = matches[0]
    files = choose_sessions(files, wanted, folder, f"{stim_type}.h5")
    if not files:
        raise DataError(
            folder, None, f"no session folder holds a {stim_type}.h5 file", "check the extracted archive"
        )
    return files


def _read_float32(handle: h5py.File, path: Path, key: str) -> np.ndarray:
    if key not in handle:
        raise DataError(path, key, "missing", "use the published files")
    dataset = handle[key]
    return dataset.astype(np.float32)[()] if dataset.dtype != np.float32 else dataset[()]


def _response_key(handle: h5py.File, path: Path, split: str, response_type: str) -> str:
    key = f"{split}/response/{response_type}"
    if key not in handle:
        available = sorted(handle[f"{split}/response"]) if f"{split}/response" in handle else []
        raise DataError(
            path, key, "missing", f"choose response_type among {available or list(RESPONSE_TYPES)}"
        )
    return key


def _fit_length(
    values: np.ndarray, frames: int, path: Path, key: str, notes: list[str], name: str
) -> np.ndarray:
    """Responses cut to the movie's length when they have exactly one bin more (the published quirk)."""
    bins = values.shape[-1]
    if bins == frames:
        return values
    if bins == frames + 1:
        notes.append(f"{name}: {key} has {bins} bins for {frames} frames; the last bin was dropped")
        return np.ascontiguousarray(values[..., :frames])
    raise DataError(path, key, f"{bins} bins for {frames} stimulus frames", "use the published files")


def _read_session(
    path: Path, name: str, stim_type: str, response_type: str, fr_normalization: float, notes: list[str]
) -> tuple[SessionData, np.ndarray]:
    with h5py.File(path, "r") as handle:
        for key in ("train/stimulus", "test/stimulus"):
            if key not in handle or handle[key].ndim != 3:
                raise DataError(path, key, "missing or not (time, height, width)", "use the published files")
        train_frames = handle["train/stimulus"][()]
        test_frames = handle["test/stimulus"][()]
        histogram = _histogram(train_frames)
        key = _response_key(handle, path, "train", response_type)
        train = _fit_length(_read_float32(handle, path, key), len(train_frames), path, key, notes, name)
        key = _response_key(handle, path, "test", response_type)
        test = _fit_length(_read_float32(handle, path, key), len(test_frames), path, key, notes, name)
        trials, ids = _read_repeats(handle, path, response_type, test.shape[0], notes, name)
        if trials is not None:
            trials = _fit_length(trials, len(test_frames), path, "test/repeats", notes, name)
    for array in (train, test, trials):
        if array is not None and fr_normalization != 1.0:
            array /= np.float32(fr_normalization)
    session = SessionData(
        name=name,
        train_movie=Movie(frames=train_frames[None]),
        train_responses=train,
        tests={stim_type: TestSet(movie=Movie(frames=test_frames[None]), responses=test, trials=trials)},
        neuron_metadata={"neuron_ids": ids},
    )
    return session, histogram


def _read_repeats(
    handle: h5py.File, path: Path, response_type: str, n_cells: int, notes: list[str], name: str
) -> tuple[np.ndarray | None, np.ndarray]:
    """Trials (R, N, T) float32 and the cells' ids (their numbers, or 1..N)."""
    default_ids = np.arange(1, n_cells + 1, dtype=np.int64)
    if "test/repeats" not in handle:
        notes.append(f"{name}: no test/repeats; the test set has no trials")
        return None, default_ids
    group = handle["test/repeats"]
    if response_type in group:
        trials = _read_float32(handle, path, f"test/repeats/{response_type}")
        if trials.ndim != 3 or trials.shape[1] != n_cells:
            raise DataError(
                path,
                f"test/repeats/{response_type}",
                f"shape {trials.shape}, expected (repeats, {n_cells}, time)",
                "fix the file",
            )
        return trials, default_ids
    cells = sorted(
        ((int(m.group(1)), key) for key in group if (m := _CELL_NAME.match(key))), key=lambda item: item[0]
    )
    if len(cells) != n_cells:
        notes.append(f"{name}: test/repeats holds {len(cells)} cells for {n_cells} responses; no trials used")
        return None, default_ids
    first = group[cells[0][1]]
    trials = np.empty((first.shape[0], n_cells, first.shape[-1]), dtype=np.float32)
    for row, (_, key) in enumerate(cells):
        cell = group[key]
        if cell.shape != first.shape:
            raise DataError(
                path, f"test/repeats/{key}", f"shape {cell.shape}, others are {first.shape}", "fix the file"
            )
        trials[:, row] = cell.astype(np.float32)[()]
    return trials, np.array([number for number, _ in cells], dtype=np.int64)


def _histogram(frames: np.ndarray) -> np.ndarray:
    """Counts of each of the 256 grey levels, in blocks (no float copy of the movie)."""
    counts = np.zeros(256, dtype=np.int64)
    if frames.dtype != np.uint8:
        raise DataError(
            None, "train/stimulus", f"dtype {frames.dtype}, expected uint8", "use the published files"
        )
    for start in range(0, len(frames), _BLOCK_FRAMES):
        counts += np.bincount(frames[start : start + _BLOCK_FRAMES].reshape(-1), minlength=256)
    return counts


def _moments(counts: np.ndarray) -> tuple[float, float]:
    levels = np.arange(256, dtype=np.float64)
    total = counts.sum()
    mean = float((counts * levels).sum() / total)
    var = float((counts * (levels - mean) ** 2).sum() / total)
    return mean, var**0.5


def _pooled_stats(histograms: dict[str, np.ndarray], root: Path) -> tuple[float, float]:
    """One mean/std for all sessions' training movies; sessions must agree within 1 grey level."""
    per_session = {name: _moments(counts) for name, counts in histograms.items()}
    means = [m for m, _ in per_session.values()]
    stds = [s for _, s in per_session.values()]
    if max(means) - min(means) > MAX_STATS_DISAGREEMENT or max(stds) - min(stds) > MAX_STATS_DISAGREEMENT:
        detail = ", ".join(f"{name}: mean {m:.2f}, std {s:.2f}" for name, (m, s) in per_session.items())
        raise DataError(
            root,
            "normalize_stimuli",
            f"the sessions' training movies differ too much to share one normalisation ({detail})",
            "load the sessions separately (data_io.sessions) or set normalize_stimuli: false",
        )
    mean, std = _moments(sum(histograms.values()))
    return float(np.float32(mean)), float(np.float32(std))


def _with_normalisation(session: SessionData, mean: float, std: float) -> SessionData:
    def normalised(movie: Movie) -> Movie:
        return Movie(frames=movie.frames, index=movie.index, mirror=movie.mirror, offset=mean, scale=std)

    session.train_movie = normalised(session.train_movie)
    for test in session.tests.values():
        test.movie = normalised(test.movie)
    return session
