"""Train / validation / test batches: shapes, the mixing rule, seeded shuffling, DDP shards."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from data_testkit import in_memory_dataset
from hypothesis import given, settings
from hypothesis import strategies as st
from openretina_data import TestBatches, TrainBatches, ValidationBatches, make_splits


def _setup(lengths=None, **split_options):
    data = in_memory_dataset(lengths or {"a": 400, "b": 200}, neurons=3, test_frames=30)
    options = {"clip_length": 20, "num_val_clips": 3, "train_chunk_size": 10, "seed": 5} | split_options
    return data, make_splits(data, **options)


def test_train_batch_shapes_and_content() -> None:
    data, splits = _setup()
    batches = list(TrainBatches(data, splits, batch_size=8))
    assert {b.session for b in batches} == {"a", "b"}
    for batch in batches:
        assert batch.stimulus.shape[1:] == (1, 10, 1, 1)
        assert batch.responses.shape[1:] == (10, 3)
        assert batch.stimulus.dtype == batch.responses.dtype == np.float32
        assert len(batch.stimulus) == len(batch.responses) <= 8
        expected = batch.starts[:, None] + np.arange(10)  # the frame value is its timeline position
        np.testing.assert_array_equal(batch.stimulus[:, 0, :, 0, 0], expected)
        np.testing.assert_array_equal(batch.responses[:, :, 1], expected)


def test_sessions_mix_in_proportion_to_their_data() -> None:
    data, splits = _setup({"a": 800, "b": 200})
    loader = TrainBatches(data, splits, batch_size=4)
    counts = Counter(b.session for b in loader)
    chunks = {n: s.chunks_per_epoch() for n, s in splits.sessions.items()}
    assert counts == {n: -(-c // 4) for n, c in chunks.items()}
    sessions = [item[0] for item in loader.plan(1)]
    assert sessions != sorted(sessions)  # interleaved, not one session after the other


def test_shuffling_is_seeded_per_epoch() -> None:
    data, splits = _setup()

    def plan(seed: int, epoch: int) -> list:
        return [(s, starts.tolist()) for s, starts in TrainBatches(data, splits, 8, seed=seed).plan(epoch)]

    assert plan(1, 0) == plan(1, 0)
    assert plan(1, 0) != plan(1, 1)
    assert plan(1, 0) != plan(2, 0)


def test_iteration_advances_the_epoch_and_set_epoch_rewinds() -> None:
    data, splits = _setup()
    loader = TrainBatches(data, splits, 8)
    first = [b.starts.tolist() for b in loader]
    second = [b.starts.tolist() for b in loader]
    assert first != second
    loader.set_epoch(0)
    assert [b.starts.tolist() for b in loader] == first
    assert len(loader) == len(first) == len(second)


def test_drop_last_keeps_only_full_batches() -> None:
    data, splits = _setup()
    batches = list(TrainBatches(data, splits, 7, drop_last=True))
    assert all(len(b.starts) == 7 for b in batches)
    assert len(batches) == len(TrainBatches(data, splits, 7, drop_last=True))


@settings(max_examples=25, deadline=None)
@given(world_size=st.integers(1, 4), batch_size=st.integers(1, 16), epoch=st.integers(0, 50))
def test_ranks_get_equal_counts_and_together_cover_the_epoch(
    world_size: int, batch_size: int, epoch: int
) -> None:
    data, splits = _setup()
    single = TrainBatches(data, splits, batch_size).plan(epoch)
    shards = [
        TrainBatches(data, splits, batch_size, rank=r, world_size=world_size) for r in range(world_size)
    ]
    plans = [s.plan(epoch) for s in shards]
    assert len({len(p) for p in plans}) == 1
    assert all(len(p) == len(s) for p, s in zip(plans, shards, strict=True))
    seen = {(s, tuple(x.tolist())) for p in plans for s, x in p}
    assert seen == {(s, tuple(x.tolist())) for s, x in single}


@settings(max_examples=30, deadline=None)
@given(
    clip_length=st.integers(5, 40),
    num_val_clips=st.integers(0, 4),
    chunk_fraction=st.floats(0.1, 1.0),
    allow_over_boundaries=st.booleans(),
    batch_size=st.integers(1, 20),
    seed=st.integers(0, 1000),
    epoch=st.integers(0, 20),
)
def test_training_never_reads_test_data_or_validation_frames(
    clip_length: int,
    num_val_clips: int,
    chunk_fraction: float,
    allow_over_boundaries: bool,
    batch_size: int,
    seed: int,
    epoch: int,
) -> None:
    data, splits = _setup(  # the test movies of in_memory_dataset fail when read
        clip_length=clip_length,
        num_val_clips=num_val_clips,
        train_chunk_size=max(1, int(chunk_fraction * clip_length)),
        allow_over_boundaries=allow_over_boundaries,
        seed=seed,
    )
    loader = TrainBatches(data, splits, batch_size)
    loader.set_epoch(epoch)
    seen = {name: np.zeros(len(s.train_movie), dtype=bool) for name, s in data.sessions.items()}
    for batch in loader:
        frames = batch.stimulus[:, 0, :, 0, 0].astype(int)  # each frame's value is its position
        assert not splits.sessions[batch.session].val_mask()[frames].any()
        seen[batch.session][frames] = True
    for name, split in splits.sessions.items():
        assert np.array_equal(seen[name], split.train_mask())  # every training frame, every epoch
    list(ValidationBatches(data, splits, 8))
    with pytest.raises(AssertionError, match="test data was read"):
        list(TestBatches(data))


def test_validation_batches_cover_each_validation_clip_once() -> None:
    data, splits = _setup()
    batches = list(ValidationBatches(data, splits, batch_size=2))
    for name, split in splits.sessions.items():
        starts = np.concatenate([b.starts for b in batches if b.session == name])
        assert starts.tolist() == split.val_starts().tolist()
    assert all(b.stimulus.shape[2] == 20 and b.responses.shape[1] == 20 for b in batches)
    shards = [list(ValidationBatches(data, splits, 2, rank=r, world_size=2)) for r in range(2)]
    assert sum(len(s) for s in shards) == len(batches)


def test_test_batches_hold_whole_movies_and_trials(small_layout) -> None:
    from openretina_data import load_hdf5_dataset

    data = load_hdf5_dataset(small_layout, test_names=["test"])
    batches = {b.session: b for b in TestBatches(data)}
    assert batches["a"].stimulus.shape == (1, 2, 30, 4, 3)
    assert batches["a"].responses.shape == (1, 30, 3)
    assert batches["a"].trials is None
    assert batches["b"].trials.shape == (1, 4, 30, 5)
    assert batches["b"].stimulus_name == "test"
    np.testing.assert_allclose(batches["b"].responses[0], batches["b"].trials[0].mean(axis=0), rtol=1e-6)
