"""Helpers of the openretina_data tests: write tiny layouts of the 1.x HDF5 format."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from openretina_data import DataInfo, Dataset, Movie, SessionData, TestSet


def write_layout(
    root: Path,
    sessions: Mapping[str, Mapping[str, Any]],
    stimuli: Mapping[str, np.ndarray] | None = None,
    attrs: Mapping[str, Mapping[str, Any]] | None = None,
    suffix: str = ".h5",
) -> Path:
    """Write a 1.x layout: `sessions` maps a session name to {hdf5 key: array}; keys with a "/"
    create groups (e.g. "session_info/celltypes")."""
    root.mkdir(parents=True, exist_ok=True)
    if stimuli:
        (root / "stimuli").mkdir(exist_ok=True)
        for name, movie in stimuli.items():
            np.save(root / "stimuli" / f"{name}.npy", movie)
    for name, content in sessions.items():
        with h5py.File(root / f"{name}{suffix}", "w") as handle:
            for key, value in content.items():
                handle.create_dataset(key, data=value)
            for key, value in (attrs or {}).get(name, {}).items():
                handle.attrs[key] = value
    return root


def movie(frames: int, channels: int = 2, height: int = 4, width: int = 3, seed: int = 0) -> np.ndarray:
    """A small movie whose every frame is distinct (frame t of channel c starts at 1000c + t)."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((channels, frames, height, width)).astype(np.float32)
    base[:, :, 0, 0] = np.arange(frames)[None, :] + 1000 * np.arange(channels)[:, None]
    return base


def responses(neurons: int, frames: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).poisson(2.0, (neurons, frames)).astype(np.float32)


def in_memory_dataset(lengths: dict[str, int], neurons: int = 2, test_frames: int = 0) -> Dataset:
    """A Dataset built directly from records (no files): one session per entry of `lengths`.

    Each training frame's value at pixel (0, 0) of channel 0 is its own timeline position, so a test
    can tell from a batch which frames it holds. Test movies, when asked for, are `Poisoned`: any
    read of them fails.
    """
    sessions = {}
    for name, length in lengths.items():
        frames = np.zeros((1, length, 1, 1), dtype=np.float32)
        frames[0, :, 0, 0] = np.arange(length)
        train_responses = np.tile(np.arange(length, dtype=np.float32), (neurons, 1))
        tests = {}
        if test_frames:
            tests["test"] = TestSet(
                Movie(Poisoned((1, test_frames, 1, 1))), np.zeros((neurons, test_frames), np.float32)
            )
        sessions[name] = SessionData(
            name, Movie(frames), train_responses, tests, {"neuron_ids": np.arange(neurons)}
        )
    return Dataset(sessions, DataInfo.describe(sessions, (1, 1, 1)))


class Poisoned:
    """A frame source that fails when read: proves that some code never touches it."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape
        self.dtype = np.dtype(np.float32)
        self.ndim = len(shape)

    def __getitem__(self, key):
        raise AssertionError("test data was read")
