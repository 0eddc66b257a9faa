"""Read the openretina 1.x generic HDF5 layout (plus repeated test trials) into a `Dataset`.

Layout (see docs/data.md)::

    DIR/stimuli/<name>.npy      (C, T, H, W) movies shared by every session
    DIR/<session>.h5|.hdf5      responses_<name> (N, T), or (trials, N, T) for test stimuli
                                stimulus_<name> (C, T, H, W): a session's own movie (takes precedence)
                                session_info/<key> (N, ...): per-neuron metadata
                                attributes: frame_rate_hz, pixel_size_um, stimulus_mean/_std,
                                            response_mean/_std, neuron_ids (all optional)

Every training movie is held once: in memory as one float32 array that all sessions index into, or
streamed from the .npy files (positioned reads, see npy_frames.py) and the HDF5 files. Files are
opened read-only.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from openretina_data.errors import DataError
from openretina_data.npy_frames import NpyFrames, read_exact, read_npy_header
from openretina_data.records import (
    ConcatenatedFrames,
    DataInfo,
    Dataset,
    Movie,
    SessionData,
    TestSet,
)

__all__ = ["AUTO_IN_MEMORY_MAX_BYTES", "load_hdf5_dataset"]

AUTO_IN_MEMORY_MAX_BYTES = 2 * 1024**3
"""`in_memory="auto"` holds stimuli in memory up to this float32 size (and half the free RAM)."""

_NUMERIC_KINDS = "biuf"
_SESSION_SUFFIXES = (".h5", ".hdf5")
_SHAPE_OPTIONS = ("color_channels", "video_height", "video_width")
_RESPONSES = "responses_"
_STIMULUS = "stimulus_"
_READ_CHUNK_BYTES = 2 * 1024**2
_CREATE_HINT = "(`openretina create-data DIR` writes an example)"


@dataclass
class _Source:
    """One distinct stimulus movie: a shared .npy file or a session's own HDF5 dataset."""

    key: tuple[str, ...]
    label: str  # where it lives, for messages: "stimuli/x.npy" or "session.h5: stimulus_x"
    shape: tuple[int, ...]
    dtype: np.dtype
    npy_path: Path | None = None
    dataset: h5py.Dataset | None = None


@dataclass
class _Response:
    name: str
    key: str
    source: _Source
    dataset: h5py.Dataset  # (N, T) or (R, N, T); read when the session is built
    frames: int  # frames used, of the responses and of the stimulus

    @property
    def n_neurons(self) -> int:
        return int(self.dataset.shape[-2])


@dataclass
class _Session:
    name: str
    path: Path
    file: h5py.File
    responses: dict[str, _Response] = field(default_factory=dict)
    metadata: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)


def load_hdf5_dataset(
    data_dir: str | os.PathLike[str],
    test_names: Sequence[str] | str = (),
    color_channels: int | None = None,
    video_height: int | None = None,
    video_width: int | None = None,
    stimulus_names: Sequence[str] | None = None,
    in_memory: bool | str = "auto",
    check_stimuli_responses_match: bool = True,
    frame_rate_hz: float | None = None,
) -> Dataset:
    """Open a folder in the openretina 1.x HDF5 layout as a `Dataset`.

    Args:
        data_dir: folder holding `<session>.h5|.hdf5` files and `stimuli/<name>.npy`.
        test_names: stimuli that form the test set; every other stimulus is concatenated, in sorted
            name order, into each session's training timeline.
        color_channels, video_height, video_width: expected C, H, W of every movie (None: take
            them from the data; all movies must still agree).
        stimulus_names: use only these stimuli (plus `test_names`); None: all.
        in_memory: True holds every training movie once as float32 in RAM (test movies are
            read from disk when evaluated); False streams frames from
            the .npy and HDF5 files per batch (bounded memory); "auto" picks RAM for small data.
        check_stimuli_responses_match: when False, a response and its stimulus of different lengths
            are both cut to the shorter (and the cut is reported in `Dataset.notes`).
        frame_rate_hz: overrides the `frame_rate_hz` attribute of the files.

    Raises:
        DataError: naming the file, the key, what is wrong and how to fix it.
    """
    root = Path(data_dir).expanduser()
    test_list = [test_names] if isinstance(test_names, str) else [str(n) for n in test_names or ()]
    selected = None if stimulus_names is None else {str(n) for n in stimulus_names} | set(test_list)
    configured = (color_channels, video_height, video_width)
    expected: dict[str, Any] = dict(zip(_SHAPE_OPTIONS, configured, strict=True))
    paths = _session_files(root)
    notes: list[str] = []
    sources: dict[tuple[str, ...], _Source] = {}
    sessions: list[_Session] = []
    try:
        for path in paths:
            session = _scan_session(
                path, root, set(test_list), selected, sources, expected, check_stimuli_responses_match, notes
            )
            if session is not None:
                sessions.append(session)
        _check_names(root, sessions, test_list, selected)
        attrs = _shared_attributes(sessions, frame_rate_hz, notes)
        use_memory = _decide_in_memory(in_memory, sources.values(), notes)
        if use_memory:
            frames = _frames_in_memory(sources, sessions, set(test_list), notes)
        else:
            frames = _frames_streaming(sources)
        shared: dict[tuple, ConcatenatedFrames] = {}
        built = {s.name: _build_session(s, set(test_list), frames, attrs, shared) for s in sessions}
    except BaseException:
        for session in sessions:
            session.file.close()
        raise
    for session in sessions:  # keep open only the files whose own movies are streamed
        streams_own_movies = any(key[:2] == ("session", session.name) for key in sources)
        if use_memory or not streams_own_movies:
            session.file.close()
    c, _, h, w = next(iter(sources.values())).shape
    train_stimuli = sorted({n for s in sessions for n in s.responses if n not in test_list})
    data_info = DataInfo.describe(
        built,
        (c, h, w),
        train_stimuli=tuple(train_stimuli),
        test_stimuli=tuple(test_list),
        frame_rate_hz=attrs["frame_rate_hz"],
        pixel_size_um=attrs["pixel_size_um"],
        stimulus_normalisation=attrs["stimulus_normalisation"],
        response_normalisation=attrs["response_normalisation"],
        channel_names=_channel_names(sessions, c),
    )
    return Dataset(sessions=built, data_info=data_info, notes=notes)


def _channel_names(sessions: list[_Session], channels: int) -> tuple[str, ...] | None:
    """The files' `channel_names` attribute (one name per colour channel, e.g. green, UV), if any
    session states it with one name per channel."""
    for session in sessions:
        names = session.attrs.get("channel_names")
        if names is not None:
            values = [v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(names)]
            if len(values) == channels:
                return tuple(values)
    return None


# ----------------------------------------------------------------------------------------------
# finding and scanning the files


@dataclass(frozen=True)
class StimulusSurvey:
    """What the session files hold for one stimulus, read from array shapes only (no data)."""

    name: str
    sessions: tuple[str, ...]  # sessions with a responses_<name>
    frames: int  # the longest response, in frames
    trials: int | None  # the most repeated trials of any session; None when none has a trials axis

    @property
    def has_trials(self) -> bool:
        return self.trials is not None


def survey_stimuli(data_dir: str | os.PathLike[str]) -> list[StimulusSurvey]:
    """Every stimulus some session of `data_dir` has responses to, sorted by name.

    A stimulus whose responses are (trials, neurons, T) in some session was shown repeatedly: that
    is how a test stimulus can be recognised in a directory nobody described (``check-data``).
    """
    root = Path(data_dir).expanduser()
    found: dict[str, dict[str, Any]] = {}
    for path in _session_files(root):
        with _open(path) as file:
            for key, item in file.items():
                if not key.startswith(_RESPONSES) or not isinstance(item, h5py.Dataset):
                    continue
                entry = found.setdefault(
                    key[len(_RESPONSES) :], {"sessions": [], "frames": 0, "trials": None}
                )
                entry["sessions"].append(path.stem)
                entry["frames"] = max(entry["frames"], int(item.shape[-1]) if item.ndim else 0)
                if item.ndim == 3:
                    entry["trials"] = max(entry["trials"] or 0, int(item.shape[0]))
    return [
        StimulusSurvey(name, tuple(entry["sessions"]), entry["frames"], entry["trials"])
        for name, entry in sorted(found.items())
    ]


def _session_files(root: Path) -> list[Path]:
    if not root.exists():
        raise DataError(
            root,
            "data_dir",
            "the folder does not exist",
            f"pass the folder holding the session .h5/.hdf5 files and stimuli/ {_CREATE_HINT}",
        )
    if not root.is_dir():
        raise DataError(
            root,
            "data_dir",
            "is a file, not a folder",
            f"pass the folder holding the session .h5/.hdf5 files and stimuli/ {_CREATE_HINT}",
        )
    paths = sorted(p for p in root.iterdir() if p.suffix in _SESSION_SUFFIXES and p.is_file())
    if not paths:
        raise DataError(
            root,
            None,
            "no session files (*.h5, *.hdf5) in this folder",
            f"put one HDF5 file per recording session here {_CREATE_HINT}",
        )
    stems: dict[str, Path] = {}
    for path in paths:
        if path.stem in stems:
            raise DataError(
                path,
                None,
                f"two files for session '{path.stem}' ({stems[path.stem].name} and {path.name})",
                "keep one file per session",
            )
        stems[path.stem] = path
    return paths


def _open(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise DataError(
            path,
            None,
            f"cannot be read as HDF5, it is not an HDF5 file or it is truncated ({error})",
            "re-copy or re-export the file, or move it out of the data folder",
        ) from error


def _read_into(path: Path, response: _Response, target: np.ndarray, start: int = 0) -> None:
    """Read the used frames of a response into `target[..., start:start + frames]` (float32, no
    temporary copy), turning a damaged file into a DataError."""
    dataset = response.dataset
    leading = (slice(None),) * (dataset.ndim - 1)
    try:
        dataset.read_direct(
            target,
            source_sel=(*leading, slice(0, response.frames)),
            dest_sel=(*leading, slice(start, start + response.frames)),
        )
    except (OSError, ValueError, TypeError) as error:
        raise DataError(
            path,
            response.key,
            f"cannot be read ({error}); the file may be truncated",
            "re-copy or re-export the file",
        ) from error


def _numeric(path: Path | str, key: str | None, dtype: np.dtype) -> None:
    if dtype.kind not in _NUMERIC_KINDS:
        raise DataError(
            path,
            key,
            f"has non-numeric dtype {dtype}",
            "store numbers (float32 is best; integers and float64 work too)",
        )


def _scan_session(
    path: Path,
    root: Path,
    test_names: set[str],
    selected: set[str] | None,
    sources: dict[tuple[str, ...], _Source],
    expected: dict[str, Any],
    check_lengths: bool,
    notes: list[str],
) -> _Session | None:
    file = _open(path)
    try:
        session = _Session(name=path.stem, path=path, file=file, attrs=dict(file.attrs))
        keys = [k for k in file if k.startswith(_RESPONSES)]
        if not keys:
            raise DataError(
                path,
                None,
                "has no responses_<stimulus> datasets",
                "store each stimulus' responses as responses_<stimulus> (neurons, T), or move the file "
                "out of the data folder",
            )
        n_neurons: tuple[str, int] | None = None
        for key in sorted(keys):
            name = key[len(_RESPONSES) :]
            if selected is not None and name not in selected:
                continue
            response = _scan_response(
                session, key, name, name in test_names, root, sources, expected, check_lengths, notes
            )
            n = response.n_neurons
            if n_neurons is not None and n != n_neurons[1]:
                raise DataError(
                    path,
                    key,
                    f"has {n} neurons but {n_neurons[0]} has {n_neurons[1]}",
                    "every responses_<stimulus> of a session must list the same neurons in the same order",
                )
            n_neurons = (key, n)
            session.responses[name] = response
        if not session.responses:
            notes.append(f"{path.name}: skipped, it has none of the selected stimuli")
            file.close()
            return None
        if all(name in test_names for name in session.responses):
            raise DataError(
                path,
                None,
                f"has responses only for test stimuli ({', '.join(sorted(session.responses))}), "
                "so nothing to train on",
                "add responses to a training stimulus, or move the file out of the data folder",
            )
        assert n_neurons is not None
        session.metadata = _metadata(path, file, n_neurons[1], notes)
        return session
    except BaseException:
        file.close()
        raise


def _scan_response(
    session: _Session,
    key: str,
    name: str,
    is_test: bool,
    root: Path,
    sources: dict[tuple[str, ...], _Source],
    expected: dict[str, Any],
    check_lengths: bool,
    notes: list[str],
) -> _Response:
    path, file = session.path, session.file
    dataset = file[key]
    if not isinstance(dataset, h5py.Dataset):
        raise DataError(path, key, "is a group, not an array", f"store {key} as an array (neurons, T)")
    _numeric(path, key, dataset.dtype)
    allowed = (2, 3) if is_test else (2,)
    if dataset.ndim not in allowed:
        if dataset.ndim == 3:
            fix = f"add '{name}' to test_names, or store the trial mean (neurons, T)"
        else:
            fix = "store responses as (neurons, T)" + (", or (trials, neurons, T)" if is_test else "")
        raise DataError(path, key, f"has {dataset.ndim} axes, shape {dataset.shape}", fix)
    source = _find_source(session, name, key, root, sources, expected)
    t_response, t_stimulus = dataset.shape[-1], source.shape[1]
    frames = t_response
    if t_response != t_stimulus:
        if check_lengths:
            raise DataError(
                path,
                key,
                f"has {t_response} frames but its stimulus {source.label} has {t_stimulus}",
                "make the responses frame-aligned with the stimulus, or set "
                "check_stimuli_responses_match=false to use the first frames of both",
            )
        frames = min(t_response, t_stimulus)
        notes.append(
            f"{path.name}: {key} has {t_response} frames and {source.label} {t_stimulus}; "
            f"using the first {frames} of both"
        )
    return _Response(name=name, key=key, source=source, dataset=dataset, frames=frames)


def _find_source(
    session: _Session,
    name: str,
    response_key: str,
    root: Path,
    sources: dict[tuple[str, ...], _Source],
    expected: dict[str, Any],
) -> _Source:
    """The movie a response belongs to: the session's own stimulus_<name>, else stimuli/<name>.npy."""
    own = _STIMULUS + name
    if own in session.file:
        key: tuple[str, ...] = ("session", session.name, name)
        dataset = session.file[own]
        if not isinstance(dataset, h5py.Dataset):
            raise DataError(session.path, own, "is a group, not an array", "store it as (C, T, H, W)")
        source = _Source(key, f"{session.path.name}: {own}", dataset.shape, dataset.dtype, dataset=dataset)
        _check_movie(session.path, own, source, expected)
        sources[key] = source
        return source
    key = ("shared", name)
    if key in sources:
        return sources[key]
    npy = root / "stimuli" / f"{name}.npy"
    if not npy.is_file():
        raise DataError(
            session.path,
            response_key,
            f"its stimulus exists nowhere: no stimuli/{name}.npy in {root} and no {own} in this file",
            f"add stimuli/{name}.npy (C, T, H, W) or a {own} dataset, or remove {response_key}",
        )
    try:
        header = np.load(npy, mmap_mode="r")
    except (ValueError, OSError, EOFError) as error:
        raise DataError(
            npy,
            None,
            f"cannot be read as a .npy array ({error})",
            "save the movie with numpy.save as a numeric (C, T, H, W) array",
        ) from error
    source = _Source(key, f"stimuli/{name}.npy", header.shape, header.dtype, npy_path=npy)
    del header
    _check_movie(npy, None, source, expected)
    sources[key] = source
    return source


def _check_movie(path: Path, key: str | None, source: _Source, expected: dict[str, Any]) -> None:
    """Numeric, (C, T, H, W), and C/H/W as configured (or else as the first movie seen)."""
    _numeric(path, key, source.dtype)
    if len(source.shape) != 4:
        raise DataError(
            path,
            key,
            f"has {len(source.shape)} axes, shape {source.shape}",
            "store movies as (color channels, frames, height, width)",
        )
    c, _, h, w = source.shape
    first = expected.get("_first")
    for option, value in zip(_SHAPE_OPTIONS, (c, h, w), strict=True):
        wanted = expected.get(option)
        if wanted is not None and int(wanted) != value:
            raise DataError(
                path,
                key,
                f"has shape {source.shape} (C, T, H, W), so {option}={value}, but data_io.{option} is "
                f"{wanted}",
                f"set data_io.{option}={value} if the data is right, or re-export the movie",
            )
        if first is not None and first[1][option] != value:
            raise DataError(
                path,
                key,
                f"has shape {source.shape} (C, T, H, W), so {option}={value}, but {first[0]} has "
                f"{option}={first[1][option]}",
                "give every movie the same channels, height and width",
            )
    if first is None:
        expected["_first"] = (source.label, dict(zip(_SHAPE_OPTIONS, (c, h, w), strict=True)))


def _metadata(path: Path, file: h5py.File, n: int, notes: list[str]) -> dict[str, np.ndarray]:
    metadata: dict[str, np.ndarray] = {}
    group = file.get("session_info")
    if isinstance(group, h5py.Group):
        for key, item in group.items():
            if not isinstance(item, h5py.Dataset) or item.ndim == 0 or item.shape[0] != n:
                shape = getattr(item, "shape", "a group")
                notes.append(f"{path.name}: session_info/{key} skipped: shape {shape} is not ({n}, ...)")
                continue
            metadata[key] = _decode(item[()])
    elif group is not None:
        notes.append(f"{path.name}: session_info skipped: it is not a group")
    if "neuron_ids" not in metadata:
        ids = file.attrs.get("neuron_ids")
        metadata["neuron_ids"] = np.arange(n) if ids is None else _decode(np.asarray(ids))
    if len(metadata["neuron_ids"]) != n:
        raise DataError(
            path,
            "neuron_ids",
            f"lists {len(metadata['neuron_ids'])} ids for {n} neurons",
            "give one id per neuron, in the order of the responses",
        )
    return {"neuron_ids": metadata.pop("neuron_ids"), **metadata}


def _decode(values: np.ndarray) -> np.ndarray:
    """Byte strings (how h5py returns text) as str."""
    values = np.asarray(values)
    if values.dtype.kind in "SO":
        return np.array(
            [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v for v in values.ravel()],
            dtype=object,
        ).reshape(values.shape)
    return values


def _check_names(
    root: Path, sessions: list[_Session], test_names: list[str], selected: set[str] | None
) -> None:
    present = sorted({name for s in sessions for name in s.responses})
    for option, names in (("test_names", test_names), ("stimulus_names", sorted(selected or ()))):
        for name in names:
            if name not in present:
                raise DataError(
                    root,
                    option,
                    f"'{name}' is not a stimulus of any session (they have: {', '.join(present)})",
                    f"list only stimuli that some session has a responses_<name> for in {option}",
                )


# ----------------------------------------------------------------------------------------------
# attributes that describe the whole dataset


def _shared_attributes(
    sessions: list[_Session], frame_rate_override: float | None, notes: list[str]
) -> dict[str, Any]:
    """Dataset-wide attributes; every session that states one must agree with the others."""

    def agreed(attr: str) -> Any:
        seen: tuple[str, Any] | None = None
        for session in sessions:
            if attr not in session.attrs:
                continue
            value = np.asarray(session.attrs[attr], dtype=np.float64)
            if seen is not None and (
                value.shape != seen[1].shape or not np.allclose(value, seen[1], equal_nan=True)
            ):
                raise DataError(
                    session.path,
                    attr,
                    f"is {value.tolist()} but {seen[0]} says {seen[1].tolist()}",
                    "store one value for the whole dataset",
                )
            seen = (session.path.name, value)
        return None if seen is None else seen[1]

    rate = agreed("frame_rate_hz")
    if frame_rate_override is not None:
        if rate is not None and float(rate) != float(frame_rate_override):
            notes.append(
                f"frame_rate_hz {float(frame_rate_override)} from the config overrides {float(rate)}"
            )
        rate = frame_rate_override
    pixel = agreed("pixel_size_um")
    mean, std = agreed("stimulus_mean"), agreed("stimulus_std")
    stimulus_norm = None
    if mean is not None or std is not None:
        mean = np.zeros(1) if mean is None else np.atleast_1d(mean)
        std = np.ones(1) if std is None else np.atleast_1d(std)
        if np.any(std <= 0):
            raise DataError(sessions[0].path, "stimulus_std", "must be positive", "store the std per channel")
        stimulus_norm = {"mean": mean.tolist(), "std": std.tolist()}
    response_norm = {}
    for session in sessions:
        if "response_mean" in session.attrs or "response_std" in session.attrs:
            response_norm[session.name] = {
                "mean": np.atleast_1d(session.attrs.get("response_mean", 0.0)).astype(float).tolist(),
                "std": np.atleast_1d(session.attrs.get("response_std", 1.0)).astype(float).tolist(),
            }
    return {
        "frame_rate_hz": None if rate is None else float(rate),
        "pixel_size_um": None if pixel is None else float(pixel),
        "stimulus_normalisation": stimulus_norm,
        "response_normalisation": response_norm or None,
    }


# ----------------------------------------------------------------------------------------------
# holding the movies: in memory (one float32 array) or streamed


def _float32_bytes(source: _Source) -> int:
    return int(np.prod(source.shape)) * 4


def _decide_in_memory(in_memory: bool | str, sources: Iterable[_Source], notes: list[str]) -> bool:
    total = sum(_float32_bytes(s) for s in sources)
    if isinstance(in_memory, str) and in_memory.lower() in ("true", "false"):
        in_memory = in_memory.lower() == "true"
    if in_memory == "auto":
        limit = AUTO_IN_MEMORY_MAX_BYTES
        with contextlib.suppress(ValueError, OSError, AttributeError):
            limit = min(limit, os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2)
        in_memory = total <= limit
    if not isinstance(in_memory, bool):
        raise DataError(None, "in_memory", f"is {in_memory!r}", 'use true, false or "auto"')
    if not in_memory:
        notes.append(f"stimuli: {total / 1024**2:.1f} MiB as float32, streamed from disk per batch")
    return in_memory


def _frames_in_memory(
    sources: dict[tuple[str, ...], _Source],
    sessions: list[_Session],
    test_names: set[str],
    notes: list[str],
) -> dict[tuple[str, ...], tuple[Any, int]]:
    """Every training movie once, in one float32 (C, T_total, H, W) array; (array, start) per movie.

    Movies are laid out in the order the first session's training timeline uses them, so that in
    the usual case (all sessions saw the same movies) each timeline is a view, not an index. Test
    movies from stimuli/*.npy are not held: they are read from disk when evaluated, so training
    needs memory for training data only (and never touches test movies).
    """
    order: list[tuple[str, ...]] = []
    later: list[tuple[str, ...]] = []
    for session in sessions:
        for name in sorted(session.responses):
            key = session.responses[name].source.key
            is_test_file = name in test_names and sources[key].npy_path is not None
            target = later if is_test_file else order
            if key not in target:
                target.append(key)
    first = sources[order[0]]
    c, _, h, w = first.shape
    total = sum(sources[key].shape[1] for key in order)
    storage = np.empty((c, total, h, w), dtype=np.float32)
    placed: dict[tuple[str, ...], tuple[Any, int]] = {}
    start = 0
    for key in order:
        source = sources[key]
        target = storage[:, start : start + source.shape[1]]
        if source.npy_path is not None:
            _load_npy_into(source.npy_path, target)
        else:
            assert source.dataset is not None
            _load_h5_into(source, target)
        placed[key] = (storage, start)
        start += source.shape[1]
    for key in later:
        placed[key] = (NpyFrames(sources[key].npy_path), 0)  # type: ignore[arg-type]
    held = storage.nbytes / 1024**2
    streamed = sum(_float32_bytes(sources[key]) for key in later) / 1024**2
    notes.append(
        f"stimuli: {held:.1f} MiB held in memory as float32"
        + (f"; test movies ({streamed:.1f} MiB) are read from disk when evaluated" if later else "")
    )
    return placed


def _load_npy_into(path: Path, target: np.ndarray) -> None:
    """Read a .npy movie into `target` (a float32 view) without a second full-size copy: float32
    data is read in place, other types through a small buffer."""
    shape, fortran, dtype, offset = read_npy_header(path)
    if fortran:  # rare; copy through a memory map in pieces
        movie = np.load(path, mmap_mode="r")
        step = max(1, _READ_CHUNK_BYTES // max(1, movie[:, :1].nbytes))
        for a in range(0, target.shape[1], step):
            target[:, a : a + step] = movie[:, a : a + step]
        return
    channels, frames = int(shape[0]), int(shape[1])
    per_frame = int(np.prod(shape[2:]))
    step = max(1, _READ_CHUNK_BYTES // (per_frame * dtype.itemsize))
    buffer = None if dtype == target.dtype else np.empty(step * per_frame, dtype=dtype)
    fd = os.open(path, os.O_RDONLY)
    try:
        for channel in range(channels):
            out = target[channel]  # contiguous (T, H, W)
            channel_offset = offset + channel * frames * per_frame * dtype.itemsize
            for a in range(0, frames, step):
                b = min(frames, a + step)
                position = channel_offset + a * per_frame * dtype.itemsize
                if buffer is None:
                    read_exact(fd, out[a:b], position)
                else:
                    chunk = buffer[: (b - a) * per_frame]
                    read_exact(fd, chunk, position)
                    out[a:b] = chunk.reshape(b - a, *out.shape[1:])
    except OSError as error:
        raise DataError(path, None, f"cannot be read ({error})", "re-copy or re-save the movie") from error
    finally:
        os.close(fd)


def _load_h5_into(source: _Source, target: np.ndarray) -> None:
    assert source.dataset is not None
    dataset = source.dataset
    step = max(1, _READ_CHUNK_BYTES // (4 * int(np.prod(dataset.shape)) // max(1, dataset.shape[1])))
    try:
        for a in range(0, dataset.shape[1], step):
            b = min(dataset.shape[1], a + step)
            target[:, a:b] = dataset[:, a:b]
    except OSError as error:
        raise DataError(
            dataset.file.filename, dataset.name.lstrip("/"), f"cannot be read ({error})", "re-copy the file"
        ) from error


def _frames_streaming(
    sources: dict[tuple[str, ...], _Source],
) -> dict[tuple[str, ...], tuple[Any, int]]:
    placed: dict[tuple[str, ...], tuple[Any, int]] = {}
    for key, source in sources.items():
        if source.npy_path is not None:
            placed[key] = (NpyFrames(source.npy_path), 0)
        else:
            placed[key] = (source.dataset, 0)
    return placed


def _timeline(
    segments: list[tuple[tuple[str, ...], int]],
    frames: dict[tuple[str, ...], tuple[Any, int]],
    shared: dict[tuple, ConcatenatedFrames],
) -> tuple[Any, np.ndarray | None]:
    """(frames, index) of a Movie that plays `segments` (movie key, frames used) back to back.

    In memory: a view on the one array when the segments lie there in order, else an index into
    it. Streamed: the source itself, or a `ConcatenatedFrames` shared by every session that plays
    the same segments.
    """
    first, _ = frames[segments[0][0]]
    if isinstance(first, np.ndarray):
        starts = [frames[key][1] for key, _ in segments]
        lengths = [length for _, length in segments]
        contiguous = all(starts[i + 1] == starts[i] + lengths[i] for i in range(len(segments) - 1))
        if contiguous:
            return first[:, starts[0] : starts[0] + sum(lengths)], None
        index = np.concatenate([np.arange(s, s + n) for s, n in zip(starts, lengths, strict=True)])
        return first, index
    if len(segments) == 1:
        source, length = frames[segments[0][0]][0], segments[0][1]
        return source, (None if length == source.shape[1] else np.arange(length))
    cache_key = tuple(segments)
    if cache_key not in shared:
        shared[cache_key] = ConcatenatedFrames([(frames[key][0], length) for key, length in segments])
    return shared[cache_key], None


def _squeeze(values: list[float]) -> float | np.ndarray:
    return float(values[0]) if len(values) == 1 else np.asarray(values, dtype=np.float32)


def _build_session(
    session: _Session,
    test_names: set[str],
    frames: dict[tuple[str, ...], tuple[Any, int]],
    attrs: dict[str, Any],
    shared: dict[tuple, ConcatenatedFrames],
) -> SessionData:
    norm = attrs["stimulus_normalisation"]
    offset: float | np.ndarray = 0.0 if norm is None else _squeeze(norm["mean"])
    scale: float | np.ndarray = 1.0 if norm is None else _squeeze(norm["std"])
    train_names = sorted(n for n in session.responses if n not in test_names)
    segments = [(session.responses[n].source.key, session.responses[n].frames) for n in train_names]
    train_movie = Movie(*_timeline(segments, frames, shared), offset=offset, scale=scale)
    n = session.responses[train_names[0]].n_neurons
    train_responses = np.empty((n, len(train_movie)), dtype=np.float32)
    start = 0
    for name in train_names:  # read straight into the session's timeline, converting on the way
        response = session.responses[name]
        _read_into(session.path, response, train_responses, start)
        start += response.frames
    tests: dict[str, TestSet] = {}
    for name in sorted(n for n in session.responses if n in test_names):
        response = session.responses[name]
        segment = [(response.source.key, response.frames)]
        movie = Movie(*_timeline(segment, frames, shared), offset=offset, scale=scale)
        data = np.empty((*response.dataset.shape[:-1], response.frames), dtype=np.float32)
        _read_into(session.path, response, data)
        if data.ndim == 3:
            tests[name] = TestSet(movie, data.mean(axis=0, dtype=np.float32), data)
        else:
            tests[name] = TestSet(movie, data)
    return SessionData(
        name=session.name,
        train_movie=train_movie,
        train_responses=train_responses,
        tests=tests,
        neuron_metadata=session.metadata,
    )
