"""Höfling et al. 2024: mouse retinal ganglion cells (two-photon Ca²⁺ imaging) to green/UV movies.

Two files make the dataset (docs/datasets.md, facts in the project's dataset fact sheet):

- a responses HDF5 with one group per recording field ("session"): traces sampled at ~7.8 Hz, each
  ROI with its own sample times, and 123 triggers, one per 150-frame movie clip at 30 Hz;
- a movie pickle: ``train`` (2, 16200, H, W) = 108 clips in clip-number order, ``test``
  (2, 750, H, W) = the 5-clip test movie, and ``random_sequences`` (108, 20): column j is the order
  in which sequence j showed the training clips.

Every trace is interpolated at the 18,450 frame times (123 clips × 150 frames). Clips 0–4, 59–63
and 118–122 are three repeats of the test movie (trials); the other 108 clip positions are the
session's training timeline, in presentation order. Each session's training movie is an index into
the ONE shared training array (``Movie.index``), mirrored along the width for left eyes
(``Movie.mirror``): no per-session copies.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from openretina_data.datasets.fetching import ProgressCallback, fetch, hugging_face_url, is_set, is_url
from openretina_data.datasets.hoefling_2024.quality import hoefling_quality_checks, settings_from_config
from openretina_data.datasets.safe_pickle import load_array_pickle
from openretina_data.errors import DataError
from openretina_data.records import DataInfo, Dataset, Movie, SessionData, TestSet

RESPONSES_URL = hugging_face_url("euler_lab/hoefling_2024/responses/rgc_natstim_2024-08-14.zip")
SUBSET_RESPONSES_URL = hugging_face_url(  # a small plain-HDF5 subset (natural spikes only), for smoke runs
    "euler_lab/hoefling_2024/responses/rgc_natsim_subset_only_naturalspikes_2024-08-14.h5"
)
MOVIES_URLS = {
    "high_res": hugging_face_url(
        "euler_lab/hoefling_2024/stimuli/rgc_natstim_72x64_joint_normalized_2024-10-11.zip"
    ),
    "low_res": hugging_face_url(
        "euler_lab/hoefling_2024/stimuli/rgc_natstim_18x16_joint_normalized_2024-01-11.zip"
    ),
}

N_TRIGGERS = 123
FRAMES_PER_CLIP = 150
FRAME_RATE_HZ = 30.0
CLIP_DURATION_S = (FRAMES_PER_CLIP - 1) / FRAME_RATE_HZ  # 4.9666667 s from first to last frame
N_TRAIN_CLIPS = 108
TEST_CLIPS_PER_REPEAT = 5
TEST_BLOCK_STARTS = (0, 59, 118)  # three repeats of the 5-clip test movie
TRAIN_CLIP_BLOCKS = ((5, 59), (64, 118))  # clip positions [first, stop) of the training clips
DEFAULT_VALIDATION_CLIP_INDICES = (0, 4, 10, 11, 18, 30, 45, 62, 67, 77, 79, 80, 81, 83, 95)
FORCED_RIGHT_EYE = frozenset({"session_2_ventral2_20200626"})
TEST_NAME = "natural"

_TRACE_KEYS: dict[str, tuple[str, ...]] = {
    "spikes": ("{s}_inferred_spikes", "{s}_spikes"),
    "raw": ("{s}_raw_traces",),
    "smoothed": ("{s}_smoothed_traces",),
    "preprocessed": ("{s}_preprocessed_traces",),
}
TRACE_TYPES = (*_TRACE_KEYS, "detrended")

_METADATA_KEYS = {  # neuron_metadata name: HDF5 key
    "cell_types": "group_assignment",
    "group_confidences": "group_confidences",
    "d_qi": "d_qi",
    "chirp_qi": "chirp_qi",
}


def load_hoefling_2024(
    *,
    responses_url: str = RESPONSES_URL,
    movies_url: str = MOVIES_URLS["high_res"],
    responses_path: str | os.PathLike[str] | None = None,
    movies_path: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    responses_sha256: str | None = None,
    movies_sha256: str | None = None,
    response_type: str = "natural",
    trace_type: str = "spikes",
    norm_by_std: bool = True,
    scale_traces: float = 1.0,
    validation_clip_indices: Sequence[int] | None = DEFAULT_VALIDATION_CLIP_INDICES,
    quality_checks: Mapping[str, Any] | None = None,
    frame_rate_hz: float = FRAME_RATE_HZ,
    pixel_size_um: float = 12.5,
    progress: ProgressCallback | None = None,
) -> Dataset:
    """Höfling 2024 as a :class:`Dataset`, downloading the two files into the cache if needed.

    ``responses_path``/``movies_path`` (local files or URLs) take precedence over the URLs;
    ``data_dir`` (a local copy of the mirror, or a file folder) skips downloading. ``quality_checks``
    takes the keys of ``configs/quality_checks/hoefling_2024.yaml`` (see
    :func:`~openretina_data.datasets.hoefling_2024.quality.hoefling_quality_checks`); None keeps every ROI.
    """
    found: list[Path] = []
    problems: list[DataError] = []
    for local, url, sha256 in (
        (responses_path, responses_url, responses_sha256),
        (movies_path, movies_url, movies_sha256),
    ):
        try:
            found.append(_locate(local, url, data_dir, cache_dir, sha256, progress))
        except DataError as error:  # try the other file too, so one message lists everything missing
            problems.append(error)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise DataError(
            None,
            None,
            "; ".join(f"{error.file}: {error.problem}" for error in problems),
            "; and ".join(dict.fromkeys(error.fix for error in problems)),
        )
    responses_file, movies_file = found
    dataset = read_hoefling_2024(
        responses_file,
        movies_file,
        response_type=response_type,
        trace_type=trace_type,
        norm_by_std=norm_by_std,
        scale_traces=scale_traces,
        validation_clip_indices=validation_clip_indices,
        frame_rate_hz=frame_rate_hz,
        pixel_size_um=pixel_size_um,
    )
    if quality_checks is not None:
        dataset, _report = hoefling_quality_checks(dataset, **settings_from_config(quality_checks))
    return dataset


def _locate(
    local: str | os.PathLike[str] | None,
    url: str,
    data_dir: str | os.PathLike[str] | None,
    cache_dir: str | os.PathLike[str] | None,
    sha256: str | None,
    progress: ProgressCallback | None,
) -> Path:
    if is_set(local):
        if is_url(local):
            return fetch(str(local), cache_dir=cache_dir, sha256=sha256, progress=progress)
        path = Path(local).expanduser()
        if not path.exists():
            raise DataError(path, None, "the file does not exist", "fix the path, or set it to null")
        return path
    return fetch(url, cache_dir=cache_dir, data_dir=data_dir, sha256=sha256, progress=progress)


def read_hoefling_2024(
    responses_file: str | os.PathLike[str],
    movies_file: str | os.PathLike[str],
    *,
    response_type: str = "natural",
    trace_type: str = "spikes",
    norm_by_std: bool = True,
    scale_traces: float = 1.0,
    validation_clip_indices: Sequence[int] | None = DEFAULT_VALIDATION_CLIP_INDICES,
    frame_rate_hz: float = FRAME_RATE_HZ,
    pixel_size_um: float = 12.5,
) -> Dataset:
    """Read local Höfling 2024 files (responses ``.h5``, movie ``.pkl``) into a :class:`Dataset`."""
    if response_type != "natural":
        raise DataError(
            responses_file,
            "response_type",
            f"{response_type!r} is not supported: the chirp and moving-bar stimuli are not published",
            "use response_type: natural",
        )
    if trace_type not in TRACE_TYPES:
        raise DataError(
            responses_file, "trace_type", f"unknown trace type {trace_type!r}", f"use one of {TRACE_TYPES}"
        )
    movies = read_movie_pickle(movies_file)
    validation = _validation_clips(validation_clip_indices)
    notes: list[str] = []
    sessions: dict[str, SessionData] = {}
    with h5py.File(responses_file, "r") as handle:
        if len(handle.attrs):
            notes.append(f"{Path(responses_file).name}: root attributes {sorted(handle.attrs)} ignored")
        for name in sorted(handle):
            group = handle[name]
            if not isinstance(group, h5py.Group):
                notes.append(f"{name}: not a group (a recording field), ignored")
                continue
            session = _read_session(
                Path(responses_file),
                name,
                group,
                movies,
                trace_type=trace_type,
                norm_by_std=norm_by_std,
                scale_traces=scale_traces,
                validation=validation,
                notes=notes,
            )
            if session is not None:
                sessions[name] = session
    if not sessions:
        raise DataError(
            responses_file, None, "no session has a usable ROI", "check the file (see the notes above)"
        )
    _, _, height, width = movies["train"].shape
    info = DataInfo.describe(
        sessions,
        (movies["train"].shape[0], height, width),
        train_stimuli=(TEST_NAME,),
        test_stimuli=(TEST_NAME,),
        frame_rate_hz=float(frame_rate_hz),
        pixel_size_um=float(pixel_size_um),
        stimulus_normalisation=movies.get("normalisation"),
        response_normalisation=None,
        channel_names=("green", "UV") if movies["train"].shape[0] == 2 else None,
    )
    return Dataset(sessions=sessions, data_info=info, notes=notes)


def read_movie_pickle(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The movie pickle, checked: float32 ``train``/``test`` and ``random_sequences`` (108, S)."""
    path = Path(path)
    content = load_array_pickle(path, float_dtype=np.float32)
    if not isinstance(content, dict):
        raise DataError(
            path, None, f"expected a dict, found {type(content).__name__}", "use the published file"
        )
    for key in ("train", "test", "random_sequences"):
        if key not in content:
            raise DataError(path, key, "missing", f"use the published movie file (keys: {sorted(content)})")
    train = _as_float32(content["train"])
    test = _as_float32(content["test"])
    if train.ndim != 4 or train.shape[1] != N_TRAIN_CLIPS * FRAMES_PER_CLIP:
        raise DataError(
            path,
            "train",
            f"shape {train.shape}, expected (2, {N_TRAIN_CLIPS * FRAMES_PER_CLIP}, H, W)",
            "use the published movie file",
        )
    expected_test = (train.shape[0], TEST_CLIPS_PER_REPEAT * FRAMES_PER_CLIP, *train.shape[2:])
    if test.shape != expected_test:
        raise DataError(
            path, "test", f"shape {test.shape}, expected {expected_test}", "use the published file"
        )
    sequences = np.asarray(content["random_sequences"])
    if sequences.ndim == 1:
        sequences = sequences[:, None]
    if sequences.ndim != 2 or sequences.shape[0] != N_TRAIN_CLIPS:
        raise DataError(
            path,
            "random_sequences",
            f"shape {sequences.shape}, expected ({N_TRAIN_CLIPS}, number of sequences)",
            "use the published movie file",
        )
    movies: dict[str, Any] = {"train": train, "test": test, "random_sequences": sequences.astype(np.int64)}
    stats = content.get("movie_stats")
    if isinstance(stats, dict) and isinstance(stats.get("dichromatic"), dict):
        mean = np.asarray(stats["dichromatic"].get("mean", np.nan), dtype=np.float64).reshape(-1)
        std = np.asarray(stats["dichromatic"].get("sd", np.nan), dtype=np.float64).reshape(-1)
        if mean.size == 1 and std.size == 1 and np.isfinite(mean[0]) and np.isfinite(std[0]):
            channels = train.shape[0]
            movies["normalisation"] = {"mean": [float(mean[0])] * channels, "std": [float(std[0])] * channels}
    return movies


def _as_float32(array: Any) -> np.ndarray:
    array = np.asarray(array)
    return array if array.dtype == np.float32 else array.astype(np.float32)


def _validation_clips(indices: Sequence[int] | None) -> frozenset[int]:
    if indices is None:
        return frozenset()
    values = [int(i) for i in indices]
    bad = [i for i in values if not 0 <= i < N_TRAIN_CLIPS]
    if bad or len(set(values)) != len(values):
        raise DataError(
            None,
            "validation_clip_indices",
            f"{values} must be distinct clip numbers of the movie file in [0, {N_TRAIN_CLIPS - 1}]",
            "fix the list in the data_io config",
        )
    return frozenset(values)


def _attribute(value: Any) -> Any:
    """Attributes as plain Python: 1-element arrays unwrapped, bytes decoded."""
    if isinstance(value, np.ndarray):
        if value.size != 1:
            return value
        value = value.reshape(-1)[0]
    if isinstance(value, bytes | np.bytes_):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _eye(name: str, attributes: Mapping[str, Any], notes: list[str]) -> str:
    eye = str(attributes.get("eye", "right")).strip().lower()
    if name in FORCED_RIGHT_EYE and eye != "right":
        notes.append(f"{name}: eye {eye!r} overridden to 'right' (known mislabel in the published file)")
        return "right"
    if eye not in ("left", "right"):
        notes.append(f"{name}: eye {eye!r} is neither left nor right; treated as right")
        return "right"
    return eye


def _read_trace(file: Path, name: str, group: h5py.Group, trace_type: str) -> tuple[str, np.ndarray]:
    if trace_type == "detrended":
        _, raw = _read_trace(file, name, group, "raw")
        _, smoothed = _read_trace(file, name, group, "smoothed")
        raw -= smoothed
        return "natural_raw_traces - natural_smoothed_traces", raw
    for pattern in _TRACE_KEYS[trace_type]:
        key = pattern.format(s="natural")
        if key in group:
            return key, np.asarray(group[key][()], dtype=np.float32)
    wanted = " or ".join(p.format(s="natural") for p in _TRACE_KEYS[trace_type])
    raise DataError(
        file,
        f"{name}/{wanted}",
        "missing",
        f"choose a trace_type whose traces the file holds ({TRACE_TYPES})",
    )


def _read_times(file: Path, name: str, group: h5py.Group, shape: tuple[int, int]) -> np.ndarray:
    """Per-ROI sample times (n, T) in seconds, from ``natural_traces_times`` or ``t0 + k·dt``."""
    if "natural_traces_times" in group:
        times = np.asarray(group["natural_traces_times"][()], dtype=np.float64)
    elif "natural_traces_t0" in group and "natural_traces_dt" in group:
        t0 = np.asarray(group["natural_traces_t0"][()], dtype=np.float64).reshape(-1, 1)
        dt = np.asarray(group["natural_traces_dt"][()], dtype=np.float64).reshape(-1, 1)
        times = t0 + dt * np.arange(shape[1])
    else:
        raise DataError(
            file,
            f"{name}/natural_traces_times",
            "missing (and no natural_traces_t0/natural_traces_dt either)",
            "use the published responses file",
        )
    if times.ndim == 1:
        times = times[None, :]
    times = np.broadcast_to(times, shape) if times.shape[0] == 1 else times
    if times.shape != shape:
        raise DataError(
            file,
            f"{name}/natural_traces_times",
            f"shape {times.shape}, traces are {shape}",
            "use the published file",
        )
    return times


def frame_times(triggers: np.ndarray) -> np.ndarray:
    """The 30 Hz frame times of the natural movie: 150 per trigger, from t to t + 4.9666667 s."""
    offsets = np.linspace(0.0, CLIP_DURATION_S, FRAMES_PER_CLIP)
    return (np.asarray(triggers, dtype=np.float64)[:, None] + offsets).reshape(-1)


def upsample_traces(traces: np.ndarray, times: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Each ROI's trace linearly interpolated at ``targets`` against its own sample times."""
    out = np.empty((traces.shape[0], targets.size), dtype=np.float32)
    for row in range(traces.shape[0]):
        out[row] = np.interp(targets, times[row], traces[row])
    return out


def _read_session(
    file: Path,
    name: str,
    group: h5py.Group,
    movies: Mapping[str, Any],
    *,
    trace_type: str,
    norm_by_std: bool,
    scale_traces: float,
    validation: frozenset[int],
    notes: list[str],
) -> SessionData | None:
    attributes = {key: _attribute(value) for key, value in group.attrs.items()}
    eye = _eye(name, attributes, notes)
    sequence = _session_sequence(file, name, attributes, movies["random_sequences"])
    trace_key, traces = _read_trace(file, name, group, trace_type)
    if traces.ndim != 2:
        raise DataError(
            file, f"{name}/{trace_key}", f"shape {traces.shape}, expected (ROIs, samples)", "fix the file"
        )
    n = traces.shape[0]
    times = _read_times(file, name, group, traces.shape)
    triggers = _read_triggers(file, name, group)
    targets = frame_times(triggers)
    late = int(np.sum(times[:, -1] < targets[-1]))
    if late:
        notes.append(f"{name}: {late} ROI(s) stop recording before the last frame; their last value is held")
    responses = upsample_traces(traces, times, targets)
    del traces, times

    metadata = _read_metadata(file, name, group, n, notes)
    keep = _usable_rows(responses, name, metadata["neuron_ids"], notes)
    if not keep.any():
        notes.append(f"{name}: dropped, no ROI with finite, varying responses")
        return None
    if not keep.all():
        responses = responses[keep]
        metadata = {key: value[keep] for key, value in metadata.items()}
    if norm_by_std:
        responses /= responses.std(axis=1, dtype=np.float64, keepdims=True).astype(np.float32)
    if scale_traces != 1.0:
        responses *= np.float32(scale_traces)

    trials = np.stack(
        [
            responses[:, start * FRAMES_PER_CLIP : (start + TEST_CLIPS_PER_REPEAT) * FRAMES_PER_CLIP]
            for start in TEST_BLOCK_STARTS
        ]
    )
    train_responses = np.concatenate(
        [responses[:, first * FRAMES_PER_CLIP : stop * FRAMES_PER_CLIP] for first, stop in TRAIN_CLIP_BLOCKS],
        axis=1,
    )
    del responses
    mirror = eye == "left"
    clip_frames = np.arange(FRAMES_PER_CLIP, dtype=np.int64)
    index = (sequence[:, None] * FRAMES_PER_CLIP + clip_frames).reshape(-1)
    val_positions = sorted(int(p) for p in np.flatnonzero(np.isin(sequence, sorted(validation))))
    return SessionData(
        name=name,
        train_movie=Movie(frames=movies["train"], index=index, mirror=mirror),
        train_responses=train_responses,
        tests={
            TEST_NAME: TestSet(
                movie=Movie(frames=movies["test"], mirror=mirror),
                responses=trials.mean(axis=0, dtype=np.float32),
                trials=trials,
            )
        },
        neuron_metadata=metadata,
        val_clip_indices=val_positions if validation else None,
    )


def _session_sequence(
    file: Path, name: str, attributes: Mapping[str, Any], sequences: np.ndarray
) -> np.ndarray:
    if "scan_sequence_idx" not in attributes:
        raise DataError(
            file,
            f"{name}.attrs['scan_sequence_idx']",
            "missing: the session's clip order is unknown",
            "fix the file",
        )
    column = int(attributes["scan_sequence_idx"])
    if not 0 <= column < sequences.shape[1]:
        raise DataError(
            file,
            f"{name}.attrs['scan_sequence_idx']",
            f"{column} is out of range: the movie file has {sequences.shape[1]} random sequence(s)",
            "use the movie file published with these responses",
        )
    sequence = sequences[:, column]
    if not np.array_equal(np.sort(sequence), np.arange(N_TRAIN_CLIPS)):
        raise DataError(
            None,
            f"random_sequences[:, {column}]",
            f"not a permutation of the clip numbers 0–{N_TRAIN_CLIPS - 1}",
            "use the published movie file",
        )
    return sequence


def _read_triggers(file: Path, name: str, group: h5py.Group) -> np.ndarray:
    key = "natural_trigger_times"
    if key not in group:
        raise DataError(file, f"{name}/{key}", "missing", "use the published responses file")
    triggers = np.asarray(group[key][()], dtype=np.float64)
    triggers = triggers[0] if triggers.ndim == 2 else triggers.reshape(-1)  # rows are identical
    if triggers.size != N_TRIGGERS:
        raise DataError(
            file,
            f"{name}/{key}",
            f"{triggers.size} triggers, expected {N_TRIGGERS} (one per movie clip)",
            "drop this session from the file, or use the published file",
        )
    return triggers


def _per_roi(
    file: Path, name: str, group: h5py.Group, key: str, n: int, notes: list[str]
) -> np.ndarray | None:
    """A per-ROI array, or None (with a note) when it is absent or not of length n."""
    if key not in group:
        return None
    value = np.asarray(group[key][()])
    if value.ndim >= 1 and value.shape[0] == n:
        return value.reshape(n) if value.size == n else value
    if value.size == n:
        return value.reshape(n)
    notes.append(f"{name}/{key}: shape {value.shape} does not match its {n} ROIs; not used")
    return None


def _read_metadata(
    file: Path, name: str, group: h5py.Group, n: int, notes: list[str]
) -> dict[str, np.ndarray]:
    ids = _per_roi(file, name, group, "roi_ids", n, notes)
    ids = np.arange(1, n + 1, dtype=np.int64) if ids is None else ids.astype(np.int64)
    metadata: dict[str, np.ndarray] = {"neuron_ids": ids}
    for label, key in _METADATA_KEYS.items():
        value = _per_roi(file, name, group, key, n, notes)
        if value is not None:
            metadata[label] = value.astype(np.float32) if value.dtype.kind == "f" else value.astype(np.int64)
    if "roi_mask" in group:
        metadata["roi_coords"] = roi_coordinates(np.asarray(group["roi_mask"][()]), ids)
    return metadata


def roi_coordinates(roi_mask: np.ndarray, roi_ids: np.ndarray) -> np.ndarray:
    """ROI centroids (y, x) in the recording field, scaled to [-1, 1] (centre 0); NaN if absent.

    ``roi_mask`` marks ROI k's pixels with -k (background 1), at 2 µm per pixel.
    """
    height, width = roi_mask.shape
    half = np.array([(height - 1) / 2, (width - 1) / 2])
    coords = np.full((len(roi_ids), 2), np.nan, dtype=np.float32)
    for row, roi in enumerate(roi_ids):
        ys, xs = np.nonzero(roi_mask == -int(roi))
        if ys.size:
            coords[row] = (np.array([ys.mean(), xs.mean()]) - half) / half
    return coords


def _usable_rows(responses: np.ndarray, name: str, ids: np.ndarray, notes: list[str]) -> np.ndarray:
    finite = np.isfinite(responses).all(axis=1)
    varying = np.zeros_like(finite)
    varying[finite] = np.ptp(responses[finite], axis=1) > 0
    for label, bad in (("NaN/inf values", ~finite), ("a constant trace", finite & ~varying)):
        if bad.any():
            notes.append(f"{name}: dropped ROI(s) {ids[bad].tolist()} with {label}")
    return finite & varying
