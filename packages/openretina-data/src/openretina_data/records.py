"""The records every reader produces, so that splitting, batching and checks are shared.

A `Movie` points into frames without copying them: sessions that saw the same movie share one
array, and streaming readers hand in `NpyFrames` or HDF5 datasets instead of arrays. Reading a batch
is one vectorised gather (`Movie.read`).
"""

from __future__ import annotations

import mmap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from openretina_data.npy_frames import NpyFrames

__all__ = [
    "ConcatenatedFrames",
    "DataInfo",
    "Dataset",
    "FrameSource",
    "Movie",
    "SessionData",
    "TestSet",
    "measure_stimulus_range",
    "per_neuron",
]


class FrameSource(Protocol):
    """What `Movie.frames` may be besides an in-memory array: anything shaped (C, T, H, W) that can
    be sliced along time (`np.memmap`, `h5py.Dataset`, `ConcatenatedFrames`)."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def dtype(self) -> np.dtype: ...

    def __getitem__(self, key: Any) -> np.ndarray: ...


class ConcatenatedFrames:
    """Several (C, T_i, H, W) sources read as one (C, sum T_i, H, W) timeline, without copying.

    Streaming mode uses this for a session's training movie (its training stimuli back to back).
    Each part may use only the first `length` frames of its source.
    """

    def __init__(self, parts: Sequence[tuple[FrameSource, int]]) -> None:
        if not parts:
            raise ValueError("ConcatenatedFrames needs at least one part")
        self.parts = [(source, int(length)) for source, length in parts]
        first = self.parts[0][0].shape
        self._lengths = np.array([length for _, length in self.parts], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(self._lengths)])
        self.shape = (first[0], int(self._starts[-1]), first[2], first[3])
        self.dtype = np.result_type(*[source.dtype for source, _ in self.parts])
        self.ndim = 4

    def __len__(self) -> int:
        return self.shape[0]

    def take(self, positions: np.ndarray) -> np.ndarray:
        """Frames at sorted unique `positions`, as an array (C, K, H, W)."""
        c, _, h, w = self.shape
        out = np.empty((c, len(positions), h, w), dtype=self.dtype)
        part_of = np.searchsorted(self._starts, positions, side="right") - 1
        for part in np.unique(part_of):
            mask = part_of == part
            source, _ = self.parts[part]
            local = positions[mask] - self._starts[part]
            out[:, mask] = read_sorted(source, local)
        return out

    def __getitem__(self, key: Any) -> np.ndarray:
        if not (isinstance(key, tuple) and len(key) == 2 and key[0] == slice(None)):
            raise TypeError("ConcatenatedFrames supports frames[:, time] only")
        time = key[1]
        if isinstance(time, slice):
            positions = np.arange(*time.indices(self.shape[1]))
        else:
            positions = np.asarray(time, dtype=np.int64)
        return self.take(positions)


def _release_pages(source: np.memmap, first: int, last: int) -> None:
    """Tell the kernel we are done with the pages of frames [first, last] of a memory map, so a
    streaming epoch does not grow the resident set to the whole file."""
    mm = getattr(source, "_mmap", None)
    if mm is None or not hasattr(mm, "madvise") or source.ndim != 4:
        return
    try:
        base = source.offset if hasattr(source, "offset") else 0
        frame_bytes = source.strides[1]
        start = base + first * frame_bytes
        end = base + (last + 1) * frame_bytes + source.strides[0] * (source.shape[0] - 1)
        start -= start % mmap.PAGESIZE
        mm.madvise(mmap.MADV_DONTNEED, start, min(end, len(mm)) - start)
    except (ValueError, OSError, AttributeError):  # advice only; never fail a read over it
        return


def read_sorted(source: FrameSource | np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Frames at sorted unique time `positions` of a (C, T, H, W) source, as an array (C, K, H, W).

    Reads contiguous runs as slices (what HDF5 and disks are fast at) and never the whole source.
    """
    positions = np.asarray(positions, dtype=np.int64)
    if isinstance(source, ConcatenatedFrames | NpyFrames):
        return source.take(positions)
    if isinstance(source, np.memmap):
        out = np.asarray(source[:, positions])
        if len(positions):
            _release_pages(source, int(positions[0]), int(positions[-1]))
        return out
    if isinstance(source, np.ndarray):
        return source[:, positions]
    c, _, h, w = source.shape
    out = np.empty((c, len(positions), h, w), dtype=source.dtype)
    if len(positions) == 0:
        return out
    breaks = np.flatnonzero(np.diff(positions) != 1) + 1
    run_starts = np.concatenate([[0], breaks])
    run_ends = np.concatenate([breaks, [len(positions)]])
    for a, b in zip(run_starts.tolist(), run_ends.tolist(), strict=True):
        out[:, a:b] = source[:, int(positions[a]) : int(positions[b - 1]) + 1]
    return out


def _contiguous_base(frames: Any) -> tuple[np.ndarray | None, int]:
    """(array, first frame) when `frames` is an in-memory C-contiguous (C, T, H, W) array or a
    time slice of one (how the in-memory reader shares one array); (None, 0) otherwise."""
    if not isinstance(frames, np.ndarray) or isinstance(frames, np.memmap):
        return None, 0
    if frames.flags.c_contiguous:
        return frames, 0
    base = frames.base
    if (
        isinstance(base, np.ndarray)
        and not isinstance(base, np.memmap)
        and base.flags.c_contiguous
        and base.ndim == 4
        and base.dtype == frames.dtype
        and base.shape[0] == frames.shape[0]
        and base.shape[2:] == frames.shape[2:]
        and base.strides == frames.strides
    ):
        offset = frames.__array_interface__["data"][0] - base.__array_interface__["data"][0]
        start, remainder = divmod(offset, base.strides[1])
        if remainder == 0 and start >= 0 and start + frames.shape[1] <= base.shape[1]:
            return base, int(start)
    return None, 0


def _gather(source: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """source[:, positions] laid out as (B, C, L, H, W): one `np.take` of (H*W) rows of the
    C-contiguous `source` (C, T, H, W), written straight into the output."""
    c, t, h, w = source.shape
    b, length = positions.shape
    rows = positions[:, None, :] + (np.arange(c, dtype=np.int64) * t)[None, :, None]  # (B, C, L)
    out = np.empty((b, c, length, h, w), dtype=source.dtype)
    np.take(source.reshape(c * t, h * w), rows.reshape(-1), axis=0, out=out.reshape(-1, h * w), mode="clip")
    return out


def _broadcastable(value: float | np.ndarray, neutral: float) -> np.ndarray | None:
    """`value` shaped to broadcast over (B, C, L, H, W), or None when it changes nothing."""
    array = np.asarray(value, dtype=np.float32)
    if array.ndim == 0:
        return None if float(array) == neutral else array
    return array.reshape(1, -1, 1, 1, 1)


@dataclass(frozen=True)
class Movie:
    """Frames one session saw, as a view on (possibly shared) frames.

    `frames` is (C, T_base, H, W): float32, or an integer/float type with `offset`/`scale`
    (value = (raw - offset) / scale, applied per batch). `index` picks and orders frames along
    T_base (None: all, in order); `mirror` flips the width axis.
    """

    frames: np.ndarray | FrameSource
    index: np.ndarray | None = None
    mirror: bool = False
    offset: float | np.ndarray = 0.0
    scale: float | np.ndarray = 1.0

    def __len__(self) -> int:
        return int(self.frames.shape[1]) if self.index is None else len(self.index)

    @property
    def channels(self) -> int:
        return int(self.frames.shape[0])

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one frame."""
        c, _, h, w = self.frames.shape
        return int(c), int(h), int(w)

    def read(self, positions: np.ndarray) -> np.ndarray:
        """Frames at `positions` (B, L) of this movie as float32 (B, C, L, H, W), C-contiguous.

        In-memory frames: one `np.take` of whole (H, W) frames straight into the output layout.
        Streamed frames: the sorted unique frames are read once (one block), then gathered the same
        way. Mirroring and offset/scale are applied in place afterwards.
        """
        positions = np.asarray(positions, dtype=np.int64)
        if positions.ndim != 2:
            raise ValueError(f"positions must be (batch, length), got shape {positions.shape}")
        if positions.size and (positions.min() < 0 or positions.max() >= len(self)):
            raise IndexError(f"frame positions must lie in 0..{len(self) - 1}")
        base_positions = positions if self.index is None else self.index[positions]
        source, start = _contiguous_base(self.frames)
        if source is None:
            unique, inverse = np.unique(base_positions, return_inverse=True)
            block = np.ascontiguousarray(read_sorted(self.frames, unique))
            if (
                len(positions) == 1
                and len(unique) == positions.shape[1]
                and np.all(np.diff(base_positions) > 0)
            ):
                return self._finish(block[None])  # one increasing run (a whole test movie): no gather
            source, start = block, 0
            base_positions = inverse.reshape(positions.shape)
        gathered = _gather(source, base_positions + start)
        return self._finish(gathered)

    def _finish(self, gathered: np.ndarray) -> np.ndarray:
        """float32 with mirror, offset and scale applied, reusing `gathered` when it is float32."""
        offset = _broadcastable(self.offset, neutral=0.0)
        scale = _broadcastable(self.scale, neutral=1.0)
        if gathered.dtype == np.float32:
            out = gathered
            if self.mirror:
                np.copyto(out, out[..., ::-1])
        else:
            out = np.empty(gathered.shape, dtype=np.float32)
            np.copyto(out, gathered[..., ::-1] if self.mirror else gathered, casting="unsafe")
        if offset is not None:
            np.subtract(out, offset, out=out)
        if scale is not None:
            np.divide(out, scale, out=out)
        return out

    def read_all(self) -> np.ndarray:
        """The whole movie as float32 (C, T, H, W) (for test movies and inspection)."""
        return self.read(np.arange(len(self))[None, :])[0]

    def shows_same_frames_as(self, other: Movie) -> bool:
        """True when both are the same view of the same frames (as sessions that share a stimulus
        are), so their `read_all()` are equal; decided without reading any frame."""
        return (
            self.frames is other.frames
            and self.mirror == other.mirror
            and _same_index(self.index, other.index)
            and np.array_equal(self.offset, other.offset)
            and np.array_equal(self.scale, other.scale)
        )

    def __post_init__(self) -> None:
        if len(self.frames.shape) != 4:
            raise ValueError(f"Movie frames must be (C, T, H, W), got shape {tuple(self.frames.shape)}")
        if self.index is not None:
            object.__setattr__(self, "index", np.asarray(self.index, dtype=np.int64))


def _same_index(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is b
    return a is b or np.array_equal(a, b)


@dataclass
class TestSet:
    """One test stimulus of one session: the movie, the target responses and the repeats."""

    __test__ = False  # not a pytest class, despite the name

    movie: Movie
    responses: np.ndarray  # (N, T) float32; the trial mean when trials exist
    trials: np.ndarray | None = None  # (R, N, T) float32 repeated presentations


@dataclass
class SessionData:
    """One recording session: its training timeline, its test stimuli and per-neuron metadata."""

    name: str
    train_movie: Movie  # training timeline (training + validation frames)
    train_responses: np.ndarray  # (N, T) float32, frame-aligned with train_movie
    tests: dict[str, TestSet]
    neuron_metadata: dict[str, np.ndarray]  # always has "neuron_ids"; each entry (N, ...)
    val_clip_indices: list[int] | None = None  # fixed validation clips (published splits)

    @property
    def n_neurons(self) -> int:
        return int(self.train_responses.shape[0])


def per_neuron(
    responses: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    block_bytes: int = 16 * 1024**2,
) -> np.ndarray:
    """`statistic` of (N, T) responses computed over blocks of neurons, so that its temporary
    copies stay small (about `block_bytes`) however long the recording."""
    rows = max(1, block_bytes // max(1, responses.shape[1] * responses.itemsize))
    if rows >= responses.shape[0]:
        return statistic(responses)
    return np.concatenate([statistic(responses[i : i + rows]) for i in range(0, responses.shape[0], rows)])


def measure_stimulus_range(
    sessions: Iterable[SessionData], chunk_frames: int = 512
) -> dict[str, list[float]]:
    """Per-channel minimum and maximum over the training movies (normalised, as batches see them).

    Sessions that saw the same frames (`Movie.shows_same_frames_as`) are read once.
    """
    movies: list[Movie] = []
    for session in sessions:
        if not any(session.train_movie.shows_same_frames_as(seen) for seen in movies):
            movies.append(session.train_movie)
    if not movies:
        raise ValueError("measure_stimulus_range needs at least one session.")
    low = np.full(movies[0].channels, np.inf, dtype=np.float64)
    high = np.full(movies[0].channels, -np.inf, dtype=np.float64)
    for movie in movies:
        for start in range(0, len(movie), chunk_frames):
            positions = np.arange(start, min(start + chunk_frames, len(movie)))[None]
            block = movie.read(positions)[0]  # (C, L, H, W)
            low = np.minimum(low, np.nanmin(block, axis=(1, 2, 3)))
            high = np.maximum(high, np.nanmax(block, axis=(1, 2, 3)))
    return {"min": low.tolist(), "max": high.tolist()}


def _jsonable(value: Any) -> Any:
    """Plain Python (lists, str, float, int, None) for JSON from arrays and numpy scalars."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "SO":
            return [_jsonable(v) for v in value.tolist()]
        return value.tolist()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class DataInfo:
    """What a trained model must remember about its data (input shape, normalisation, sessions).

    `to_dict()` is JSON-serialisable and is what checkpoints store.
    """

    input_shape: tuple[int, int, int]
    sessions: dict[str, dict[str, Any]]
    train_stimuli: tuple[str, ...] = ()
    test_stimuli: tuple[str, ...] = ()
    frame_rate_hz: float | None = None
    pixel_size_um: float | None = None
    stimulus_normalisation: dict[str, list[float]] | None = None
    response_normalisation: dict[str, Any] | None = None
    # Per-channel {"min": [...], "max": [...]} of the training movies in normalised units: what the
    # retina was shown, the default range of optimised stimuli (see `with_stimulus_range`).
    stimulus_range: dict[str, list[float]] | None = None
    # What each input channel shows (e.g. ("green", "UV")), for figures; None when the data do not say.
    channel_names: tuple[str, ...] | None = None

    @classmethod
    def describe(
        cls,
        sessions: Mapping[str, SessionData],
        input_shape: Sequence[int],
        **fields: Any,
    ) -> DataInfo:
        """A DataInfo whose per-session part is taken from `sessions`."""
        described = {
            name: {
                "n_neurons": session.n_neurons,
                "neuron_ids": _jsonable(np.asarray(session.neuron_metadata["neuron_ids"])),
                "metadata": {
                    key: _jsonable(np.asarray(value))
                    for key, value in session.neuron_metadata.items()
                    if key != "neuron_ids"
                },
            }
            for name, session in sessions.items()
        }
        c, h, w = (int(v) for v in input_shape)
        return cls(input_shape=(c, h, w), sessions=described, **fields)

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_shape": list(self.input_shape),
            "frame_rate_hz": self.frame_rate_hz,
            "pixel_size_um": self.pixel_size_um,
            "stimulus_normalisation": _jsonable(self.stimulus_normalisation),
            "response_normalisation": _jsonable(self.response_normalisation),
            "stimulus_range": _jsonable(self.stimulus_range),
            "sessions": _jsonable(self.sessions),
            "train_stimuli": list(self.train_stimuli),
            "test_stimuli": list(self.test_stimuli),
            "channel_names": None if self.channel_names is None else list(self.channel_names),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataInfo:
        c, h, w = (int(v) for v in data["input_shape"])
        return cls(
            input_shape=(c, h, w),
            sessions={name: dict(info) for name, info in data["sessions"].items()},
            train_stimuli=tuple(data.get("train_stimuli", ())),
            test_stimuli=tuple(data.get("test_stimuli", ())),
            frame_rate_hz=data.get("frame_rate_hz"),
            pixel_size_um=data.get("pixel_size_um"),
            stimulus_normalisation=data.get("stimulus_normalisation"),
            response_normalisation=data.get("response_normalisation"),
            stimulus_range=data.get("stimulus_range"),
            channel_names=None if data.get("channel_names") is None else tuple(data["channel_names"]),
        )

    def with_stimulus_range(self, sessions: Mapping[str, SessionData]) -> DataInfo:
        """This DataInfo with `stimulus_range` measured on the training movies of `sessions`.

        Training stores it with the model, so that in-silico experiments keep their stimuli within
        what the model was fitted on. Reads each distinct movie once, in chunks.
        """
        return replace(self, stimulus_range=measure_stimulus_range(sessions.values()))


@dataclass
class Dataset:
    """Every session of one dataset, what a model must know about it, and what was adjusted."""

    sessions: dict[str, SessionData]
    data_info: DataInfo
    notes: list[str] = field(default_factory=list)  # everything dropped or adjusted, in words

    @property
    def n_neurons(self) -> dict[str, int]:
        """Neurons per session, as models' `create_model(n_neurons=...)` wants them."""
        return {name: session.n_neurons for name, session in self.sessions.items()}

    def mean_activity(self) -> dict[str, np.ndarray]:
        """Per-neuron mean response over each session's training timeline (for readout biases)."""
        return {
            name: per_neuron(session.train_responses, lambda block: np.nanmean(block, axis=1)).astype(
                np.float32
            )
            for name, session in self.sessions.items()
        }

    def replace_sessions(self, sessions: dict[str, SessionData], notes: Sequence[str] = ()) -> Dataset:
        """A new Dataset with `sessions` (e.g. after dropping neurons) and a matching DataInfo."""
        info = self.data_info
        response_norm = info.response_normalisation
        if response_norm is not None:
            response_norm = {name: value for name, value in response_norm.items() if name in sessions}
        data_info = DataInfo.describe(
            sessions,
            info.input_shape,
            train_stimuli=info.train_stimuli,
            test_stimuli=info.test_stimuli,
            frame_rate_hz=info.frame_rate_hz,
            pixel_size_um=info.pixel_size_um,
            stimulus_normalisation=info.stimulus_normalisation,
            response_normalisation=response_norm,
            stimulus_range=info.stimulus_range,
        )
        return Dataset(sessions=sessions, data_info=data_info, notes=[*self.notes, *notes])
