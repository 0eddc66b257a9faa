"""Batches as numpy arrays, assembled by one vectorised gather per batch.

Session mixing rule: every batch holds samples of one session only. Each epoch, each session's
training chunks are shuffled and cut into batches of `batch_size` (the last, smaller batch is kept
unless `drop_last`); then the batches of all sessions are shuffled together. Sessions are therefore
interleaved across steps in proportion to their amount of training data, and a session with more
data contributes more steps. Both shuffles are seeded by (seed, epoch), so a run is reproducible.

Distributed training: with `world_size` > 1 the epoch's batch list is padded by repeating its
first batches until it divides evenly, and rank r takes every `world_size`-th batch starting at r,
so every rank runs the same number of steps.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from openretina_data.records import Dataset, SessionData
from openretina_data.splits import Splits, seeded_rng

__all__ = ["Batch", "TestBatches", "TrainBatches", "ValidationBatches", "gather_clips"]


@dataclass(frozen=True)
class Batch:
    """Samples of one session: stimulus (B, C, T, H, W) and responses (B, T, N), float32."""

    session: str
    stimulus: np.ndarray
    responses: np.ndarray
    stimulus_name: str | None = None  # test batches: which test stimulus
    trials: np.ndarray | None = None  # test batches with repeats: (B, R, T, N)
    starts: np.ndarray | None = None  # train/validation: first timeline frame of each sample (B,)


def gather_clips(session: SessionData, starts: np.ndarray, length: int) -> Batch:
    """Clips of `length` frames starting at `starts` on the session's training timeline.

    One fancy-index gather for the stimulus (`Movie.read`) and one for the responses.
    """
    starts = np.asarray(starts, dtype=np.int64)
    positions = starts[:, None] + np.arange(length, dtype=np.int64)
    stimulus = session.train_movie.read(positions)
    responses = np.ascontiguousarray(session.train_responses[:, positions].transpose(1, 2, 0))
    return Batch(session.name, stimulus, responses, starts=starts)


def _shard(items: list, rank: int, world_size: int, pad: bool) -> list:
    """This rank's share of `items`; with `pad`, every rank gets the same number."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
    if world_size == 1:
        return items
    if pad and items:
        per_rank = math.ceil(len(items) / world_size)
        padded = (items * (per_rank * world_size // len(items) + 1))[: per_rank * world_size]
        return padded[rank::world_size]
    return items[rank::world_size]


class _Batches:
    """Common shape of the iterables: a plan of items, and `assemble(item)` for each."""

    def plan(self) -> list:
        raise NotImplementedError

    def assemble(self, item) -> Batch:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Batch]:
        for item in self.plan():
            yield self.assemble(item)

    def __len__(self) -> int:
        return len(self.plan())


class TrainBatches(_Batches):
    """Training batches of one epoch at a time; see the module docstring for the mixing rule.

    Iterating runs the current epoch and then advances to the next one; `set_epoch(e)` chooses the
    epoch explicitly (as Lightning and DDP samplers do). The number of batches is the same in
    every epoch.
    """

    def __init__(
        self,
        dataset: Dataset,
        splits: Splits,
        batch_size: int = 64,
        *,
        drop_last: bool = False,
        seed: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.dataset, self.splits, self.batch_size = dataset, splits, int(batch_size)
        self.drop_last, self.rank, self.world_size = drop_last, rank, world_size
        self.seed = splits.seed if seed is None else int(seed)
        self.epoch = 0
        self.session_names = sorted(splits.sessions)
        counts = [splits.sessions[name].chunks_per_epoch() for name in self.session_names]
        per_session = [(c // batch_size if drop_last else math.ceil(c / batch_size)) for c in counts]
        total = sum(per_session)
        self._length = total // world_size if drop_last else math.ceil(total / world_size) if total else 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self._length

    def plan(self, epoch: int | None = None) -> list[tuple[str, np.ndarray]]:
        """This rank's batches of `epoch` (default: the current one) as (session, chunk starts)."""
        epoch = self.epoch if epoch is None else epoch
        batches: list[tuple[str, np.ndarray]] = []
        for name in self.session_names:
            starts = self.splits.sessions[name].chunk_starts(epoch)
            starts = starts[seeded_rng(self.seed, "order", epoch, name).permutation(len(starts))]
            stop = len(starts) - len(starts) % self.batch_size if self.drop_last else len(starts)
            batches.extend((name, starts[i : i + self.batch_size]) for i in range(0, stop, self.batch_size))
        order = seeded_rng(self.seed, "mix", epoch).permutation(len(batches))
        mixed = [batches[i] for i in order]
        if self.drop_last and self.world_size > 1:
            mixed = mixed[: len(mixed) - len(mixed) % self.world_size]
        return _shard(mixed, self.rank, self.world_size, pad=not self.drop_last)

    def assemble(self, item: tuple[str, np.ndarray]) -> Batch:
        session, starts = item
        return gather_clips(self.dataset.sessions[session], starts, self.splits.train_chunk_size)

    def __iter__(self) -> Iterator[Batch]:
        plan = self.plan()
        self.epoch += 1
        for item in plan:
            yield self.assemble(item)


class ValidationBatches(_Batches):
    """Every validation clip of every session once, in order, `batch_size` clips per batch.

    With `world_size` > 1, rank r takes every `world_size`-th batch (no padding, so no clip is
    counted twice when metrics are merged across ranks).
    """

    def __init__(
        self,
        dataset: Dataset,
        splits: Splits,
        batch_size: int = 64,
        *,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.dataset, self.splits, self.batch_size = dataset, splits, int(batch_size)
        self.rank, self.world_size = rank, world_size

    def plan(self) -> list[tuple[str, np.ndarray]]:
        items = []
        for name in sorted(self.splits.sessions):
            starts = self.splits.sessions[name].val_starts()
            step = self.batch_size
            items.extend((name, starts[i : i + step]) for i in range(0, len(starts), step))
        return _shard(items, self.rank, self.world_size, pad=False)

    def assemble(self, item: tuple[str, np.ndarray]) -> Batch:
        session, starts = item
        return gather_clips(self.dataset.sessions[session], starts, self.splits.clip_length)


class TestBatches(_Batches):
    """Each test stimulus of each session whole: batch size 1, with the repeated trials if any.

    `responses` is the trial mean (1, T, N); `trials` is (1, R, T, N) or None.
    """

    __test__ = False  # not a pytest class, despite the name

    def __init__(
        self,
        dataset: Dataset,
        *,
        stimuli: Sequence[str] | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.dataset, self.stimuli = dataset, None if stimuli is None else set(stimuli)
        self.rank, self.world_size = rank, world_size

    def plan(self) -> list[tuple[str, str]]:
        items = [
            (session, name)
            for session in sorted(self.dataset.sessions)
            for name in sorted(self.dataset.sessions[session].tests)
            if self.stimuli is None or name in self.stimuli
        ]
        return _shard(items, self.rank, self.world_size, pad=False)

    def assemble(self, item: tuple[str, str]) -> Batch:
        session, name = item
        test = self.dataset.sessions[session].tests[name]
        stimulus = test.movie.read(np.arange(len(test.movie))[None, :])
        responses = np.ascontiguousarray(test.responses.T)[None]
        trials = None if test.trials is None else np.ascontiguousarray(test.trials.transpose(0, 2, 1))[None]
        return Batch(session, stimulus, responses, stimulus_name=name, trials=trials)
