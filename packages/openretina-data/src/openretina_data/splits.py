"""Clips, validation clips and training chunks of each session's training timeline.

Terms (the openretina 1.x names):

- `clip_length`: the timeline is cut into whole clips; frames after the last whole clip are
  dropped, and `Splits.notes` says how many.
- `num_val_clips`: clips drawn, with the run's seed, for validation (unless `val_clip_indices`
  fixes them). A validation clip is never part of any training chunk.
- `max_val_fraction`: the drawn validation clips are at most this share of a session's clips, so a
  short recording keeps most of its frames for training (20 clips of 80 frames would otherwise take
  more than half of 3,000 frames).
- `train_chunk_size`: length of one training sample. Each epoch, every run of consecutive training
  clips is covered by chunks starting every `train_chunk_size` frames after a seeded random shift;
  the chunk that would start before the run and the one that would run past its end are moved
  inside, so every training frame is in some chunk every epoch and every epoch has the same number
  of chunks (moving a chunk inside can repeat one).
- `allow_over_boundaries`: True lets a chunk cross the border between two adjacent training clips
  (never into a validation clip); False keeps every chunk inside one clip.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from openretina_data.errors import DataError
from openretina_data.records import Dataset

__all__ = ["SessionSplit", "Splits", "make_splits", "seeded_rng"]


def seeded_rng(seed: int, *words: str | int) -> np.random.Generator:
    """A generator fixed by the run's `seed` and a few words (purpose, epoch, session name), so
    that each use draws independent, reproducible numbers."""
    entropy = [int(seed) & 0xFFFFFFFF]
    for word in words:
        entropy.append(zlib.crc32(word.encode()) if isinstance(word, str) else int(word) & 0xFFFFFFFF)
    return np.random.default_rng(np.random.SeedSequence(entropy))


@dataclass(frozen=True)
class SessionSplit:
    """Where validation clips and training chunks lie on one session's training timeline."""

    session: str
    n_frames: int
    clip_length: int
    train_chunk_size: int
    val_clips: np.ndarray  # sorted clip indices
    train_runs: np.ndarray  # (R, 2) [start, end) frame ranges that training chunks stay inside
    seed: int = 0

    @property
    def n_clips(self) -> int:
        return self.n_frames // self.clip_length

    @property
    def dropped_frames(self) -> int:
        """Frames after the last whole clip, used for neither training nor validation."""
        return self.n_frames - self.n_clips * self.clip_length

    def val_starts(self) -> np.ndarray:
        """First frame of each validation clip, in order."""
        return self.val_clips.astype(np.int64) * self.clip_length

    def chunks_per_epoch(self) -> int:
        return sum(_chunk_count(int(e - s), self.train_chunk_size) for s, e in self.train_runs)

    def chunk_starts(self, epoch: int) -> np.ndarray:
        """First frame of every training chunk of `epoch`, in timeline order (seeded by the run's seed,
        the epoch and the session)."""
        k = self.train_chunk_size
        rng = seeded_rng(self.seed, "chunks", epoch, self.session)
        shifts = rng.integers(0, k, len(self.train_runs))
        starts = []
        for (start, end), shift in zip(self.train_runs.tolist(), shifts.tolist(), strict=True):
            length = end - start
            if length == k:
                starts.append(np.array([start]))
                continue
            if k == 1:  # one-frame chunks (flashed images): each frame exactly once, nothing to shift
                starts.append(np.arange(start, end))
                continue
            grid = start + shift + k * (np.arange(math.ceil(length / k) + 1) - 1)
            starts.append(np.clip(grid, start, end - k))
        return np.concatenate(starts).astype(np.int64)

    def train_mask(self) -> np.ndarray:
        """(n_frames,) True where a frame belongs to training."""
        mask = np.zeros(self.n_frames, dtype=bool)
        for start, end in self.train_runs.tolist():
            mask[start:end] = True
        return mask

    def val_mask(self) -> np.ndarray:
        """(n_frames,) True where a frame belongs to a validation clip."""
        mask = np.zeros(self.n_frames, dtype=bool)
        for start in self.val_starts().tolist():
            mask[start : start + self.clip_length] = True
        return mask


@dataclass(frozen=True)
class Splits:
    """The split of every session, and what was dropped along the way (for the run report)."""

    sessions: dict[str, SessionSplit]
    clip_length: int
    train_chunk_size: int
    seed: int
    notes: list[str] = field(default_factory=list)


def _chunk_count(run_length: int, chunk: int) -> int:
    if chunk == 1:
        return run_length
    return 1 if run_length == chunk else math.ceil(run_length / chunk) + 1


def make_splits(
    dataset: Dataset,
    clip_length: int = 75,
    num_val_clips: int = 20,
    train_chunk_size: int = 50,
    allow_over_boundaries: bool = True,
    val_clip_indices: Sequence[int] | Mapping[str, Sequence[int]] | None = None,
    seed: int = 0,
    max_val_fraction: float | None = None,
) -> Splits:
    """Cut every session's training timeline into clips, validation clips and training runs.

    Validation clips come from, in order: `val_clip_indices` (one list for all sessions, or one
    per session), the session's own `val_clip_indices` (published splits), or a draw of
    `num_val_clips` clips seeded by `seed` and the session name, but no more than `max_val_fraction`
    of the session's clips (at least one; None: no limit). Fixed clips are taken as given.

    Raises:
        DataError: clip_length longer than a session's timeline, more validation clips than
            clips, invalid indices, or train_chunk_size longer than clip_length.
    """
    for option, value in (("clip_length", clip_length), ("train_chunk_size", train_chunk_size)):
        if int(value) < 1:
            raise DataError(None, option, f"is {value}", f"set {option} to a positive number of frames")
    if train_chunk_size > clip_length:
        raise DataError(
            None,
            "train_chunk_size",
            f"is {train_chunk_size}, longer than clip_length {clip_length}, so a training chunk "
            "could not fit between two validation clips",
            f"set train_chunk_size <= {clip_length} or raise clip_length",
        )
    if num_val_clips < 0:
        raise DataError(None, "num_val_clips", f"is {num_val_clips}", "use 0 or more validation clips")
    if max_val_fraction is not None and not 0.0 < max_val_fraction < 1.0:
        raise DataError(
            None,
            "max_val_fraction",
            f"is {max_val_fraction}",
            "use a share of the clips between 0 and 1 (e.g. 0.2), or null for no limit",
        )
    sessions: dict[str, SessionSplit] = {}
    notes: list[str] = []
    for name, session in dataset.sessions.items():
        n_frames = len(session.train_movie)
        if clip_length > n_frames:
            raise DataError(
                f"session {name}",
                "clip_length",
                f"is {clip_length} frames but the session's training movie has only {n_frames}",
                f"set clip_length <= {n_frames}",
            )
        n_clips = n_frames // clip_length
        fixed = _fixed_val_clips(val_clip_indices, name, session.val_clip_indices)
        wanted = num_val_clips
        if fixed is None and max_val_fraction is not None:
            wanted = min(num_val_clips, max(1, math.floor(max_val_fraction * n_clips)))
            if wanted < num_val_clips:
                notes.append(
                    f"session {name}: {wanted} validation clips instead of {num_val_clips} "
                    f"(at most {max_val_fraction:g} of its {n_clips} clips)"
                )
        val = _validation_clips(name, n_clips, wanted, fixed, seed)
        is_train = np.ones(n_clips, dtype=bool)
        is_train[val] = False
        runs = _training_runs(is_train, clip_length, allow_over_boundaries)
        split = SessionSplit(name, n_frames, clip_length, train_chunk_size, val, runs, seed)
        sessions[name] = split
        if split.dropped_frames:
            notes.append(
                f"session {name}: last {split.dropped_frames} of {n_frames} training-movie frames dropped "
                f"(not a whole clip of {clip_length})"
            )
    return Splits(sessions, clip_length, train_chunk_size, seed, notes)


def _fixed_val_clips(
    given: Sequence[int] | Mapping[str, Sequence[int]] | None,
    session: str,
    own: Sequence[int] | None,
) -> Sequence[int] | None:
    if isinstance(given, Mapping):
        return given.get(session, own)
    return own if given is None else given


def _validation_clips(
    session: str, n_clips: int, num_val_clips: int, fixed: Sequence[int] | None, seed: int
) -> np.ndarray:
    if fixed is not None:
        clips = np.asarray(list(fixed), dtype=np.int64)
        bad = clips[(clips < 0) | (clips >= n_clips)]
        if bad.size or len(np.unique(clips)) != len(clips) or len(clips) >= n_clips:
            raise DataError(
                f"session {session}",
                "val_clip_indices",
                f"{clips.tolist()} is not a set of distinct clip indices in 0..{n_clips - 1} that leaves "
                "a clip for training",
                f"give distinct indices below {n_clips}, fewer than {n_clips}",
            )
        return np.sort(clips)
    if num_val_clips >= n_clips:
        raise DataError(
            f"session {session}",
            "num_val_clips",
            f"is {num_val_clips} but the session has only {n_clips} clips",
            f"set num_val_clips < {n_clips} (or shorten clip_length)",
        )
    rng = seeded_rng(seed, "validation", session)
    return np.sort(rng.choice(n_clips, size=num_val_clips, replace=False)).astype(np.int64)


def _training_runs(is_train: np.ndarray, clip_length: int, allow_over_boundaries: bool) -> np.ndarray:
    """[start, end) frame ranges of training clips: maximal runs of adjacent ones, or single clips."""
    clips = np.flatnonzero(is_train)
    if not allow_over_boundaries:
        return np.stack([clips * clip_length, (clips + 1) * clip_length], axis=1).astype(np.int64)
    breaks = np.flatnonzero(np.diff(clips) != 1) + 1
    firsts = clips[np.concatenate([[0], breaks])]
    lasts = clips[np.concatenate([breaks - 1, [len(clips) - 1]])]
    return np.stack([firsts * clip_length, (lasts + 1) * clip_length], axis=1).astype(np.int64)
