"""make_splits: clips, seeded validation clips, training chunks; invariants checked with hypothesis."""

from __future__ import annotations

import numpy as np
import pytest
from data_testkit import in_memory_dataset
from hypothesis import given, settings
from hypothesis import strategies as st
from openretina_data import DataError, make_splits


@st.composite
def split_settings(draw: st.DrawFn) -> dict:
    clip_length = draw(st.integers(2, 30))
    n_clips = draw(st.integers(2, 25))
    extra = draw(st.integers(0, clip_length - 1))
    return {
        "length": n_clips * clip_length + extra,
        "clip_length": clip_length,
        "num_val_clips": draw(st.integers(0, n_clips - 1)),
        "train_chunk_size": draw(st.integers(1, clip_length)),
        "allow_over_boundaries": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**31)),
        "epoch": draw(st.integers(0, 1000)),
    }


@settings(max_examples=150, deadline=None)
@given(split_settings())
def test_every_training_frame_is_in_a_chunk_and_no_validation_frame_is(cfg: dict) -> None:
    data = in_memory_dataset({"s": cfg["length"]})
    splits = make_splits(data, **{k: v for k, v in cfg.items() if k not in ("length", "epoch")})
    split = splits.sessions["s"]
    k = cfg["train_chunk_size"]
    starts = split.chunk_starts(cfg["epoch"])
    covered = np.zeros(cfg["length"], dtype=bool)
    for start in starts:
        covered[start : start + k] = True
    train, val = split.train_mask(), split.val_mask()
    assert np.array_equal(covered, train)  # every training frame, and nothing else
    assert not (train & val).any()
    assert val.sum() == cfg["num_val_clips"] * cfg["clip_length"]
    assert len(starts) == split.chunks_per_epoch()
    whole = cfg["length"] - cfg["length"] % cfg["clip_length"]
    assert not covered[whole:].any()
    if not cfg["allow_over_boundaries"]:
        assert all(s // cfg["clip_length"] == (s + k - 1) // cfg["clip_length"] for s in starts)


def test_validation_clips_follow_the_seed() -> None:
    data = in_memory_dataset({"a": 1000, "b": 1000})
    first = make_splits(data, clip_length=10, num_val_clips=5, train_chunk_size=5, seed=1)
    again = make_splits(data, clip_length=10, num_val_clips=5, train_chunk_size=5, seed=1)
    other = make_splits(data, clip_length=10, num_val_clips=5, train_chunk_size=5, seed=2)
    assert np.array_equal(first.sessions["a"].val_clips, again.sessions["a"].val_clips)
    assert not np.array_equal(first.sessions["a"].val_clips, other.sessions["a"].val_clips)
    assert not np.array_equal(first.sessions["a"].val_clips, first.sessions["b"].val_clips)


def test_chunk_starts_change_with_the_epoch_and_repeat_with_the_seed() -> None:
    split = make_splits(
        in_memory_dataset({"a": 1000}), clip_length=100, num_val_clips=2, train_chunk_size=30
    ).sessions["a"]
    assert np.array_equal(split.chunk_starts(3), split.chunk_starts(3))
    assert not all(np.array_equal(split.chunk_starts(0), split.chunk_starts(e)) for e in range(1, 5))


def test_fixed_validation_clips_from_argument_or_session() -> None:
    data = in_memory_dataset({"a": 100, "b": 100})
    splits = make_splits(data, clip_length=10, train_chunk_size=5, val_clip_indices=[7, 2])
    assert splits.sessions["a"].val_clips.tolist() == [2, 7]
    per_session = make_splits(
        data, clip_length=10, train_chunk_size=5, val_clip_indices={"a": [1], "b": [3, 4]}
    )
    assert per_session.sessions["b"].val_clips.tolist() == [3, 4]
    data.sessions["a"].val_clip_indices = [0, 9]
    assert make_splits(data, clip_length=10, train_chunk_size=5, num_val_clips=2).sessions[
        "a"
    ].val_clips.tolist() == [0, 9]


def test_dropped_trailing_frames_are_reported() -> None:
    splits = make_splits(in_memory_dataset({"a": 105}), clip_length=10, num_val_clips=1, train_chunk_size=5)
    assert splits.sessions["a"].dropped_frames == 5
    assert splits.notes == ["session a: last 5 of 105 training-movie frames dropped (not a whole clip of 10)"]


def test_a_short_session_keeps_most_clips_for_training() -> None:
    data = in_memory_dataset({"short": 370, "long": 2000})
    splits = make_splits(data, clip_length=10, num_val_clips=20, train_chunk_size=5, max_val_fraction=0.2)
    assert len(splits.sessions["short"].val_clips) == 7  # a fifth of its 37 clips, not 20
    assert len(splits.sessions["long"].val_clips) == 20  # 200 clips: the cap does not bind
    assert splits.notes == ["session short: 7 validation clips instead of 20 (at most 0.2 of its 37 clips)"]
    fixed = make_splits(
        data, clip_length=10, train_chunk_size=5, val_clip_indices=list(range(20)), max_val_fraction=0.2
    )
    assert len(fixed.sessions["short"].val_clips) == 20  # a given split is kept as published


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"clip_length": 10, "train_chunk_size": 5, "max_val_fraction": 1.0}, "max_val_fraction"),
        ({"clip_length": 200}, "clip_length"),
        ({"clip_length": 10, "train_chunk_size": 5, "num_val_clips": 10}, "num_val_clips"),
        ({"clip_length": 10, "train_chunk_size": 11}, "train_chunk_size"),
        ({"clip_length": 10, "train_chunk_size": 5, "val_clip_indices": [10]}, "val_clip_indices"),
        ({"clip_length": 10, "train_chunk_size": 5, "val_clip_indices": [1, 1]}, "val_clip_indices"),
        ({"clip_length": 0}, "clip_length"),
    ],
)
def test_bad_split_settings(options: dict, match: str) -> None:
    with pytest.raises(DataError, match=match) as caught:
        make_splits(in_memory_dataset({"a": 100}), **options)
    assert "Fix:" in str(caught.value)


def test_clip_longer_than_movie_names_the_session() -> None:
    with pytest.raises(DataError, match=r"session a: clip_length: is 200 frames .* only 100"):
        make_splits(in_memory_dataset({"a": 100}), clip_length=200)
