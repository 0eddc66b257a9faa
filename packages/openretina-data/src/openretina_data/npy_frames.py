"""Streaming frames from a .npy movie with positioned reads (no memory map).

A memory map would be simpler, but every page it touches, and the pages the kernel reads around
them, count toward the process' resident memory until unmapped; over a training epoch that grows
towards the file size. Positioned reads (`os.preadv`) copy exactly the frames a batch needs and
leave caching to the kernel's page cache, outside the process, so streaming memory stays bounded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["NpyFrames", "read_npy_header"]


def read_npy_header(path: Path) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran_order, dtype, data offset) of a .npy file, without reading its data."""
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
        return shape, fortran, dtype, handle.tell()


def read_exact(fd: int, target: np.ndarray, offset: int) -> None:
    """Fill the contiguous array `target` with bytes of `fd` from `offset`."""
    view = memoryview(target).cast("B")
    done = 0
    while done < len(view):
        count = os.preadv(fd, [view[done:]], offset + done)
        if count <= 0:
            raise OSError(f"unexpected end of file at byte {offset + done}")
        done += count


class NpyFrames:
    """A (C, T, H, W) C-ordered .npy movie, read frames at a time (`frames[:, positions]`)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        shape, fortran, dtype, self.offset = read_npy_header(self.path)
        if fortran or len(shape) != 4:
            raise ValueError(f"{self.path} must hold a C-ordered (C, T, H, W) array")
        self.shape: tuple[int, int, int, int] = tuple(int(v) for v in shape)  # type: ignore[assignment]
        self.dtype = np.dtype(dtype)
        self.ndim = 4
        self._fd: int | None = None

    def _descriptor(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        return self._fd

    def take(self, positions: np.ndarray) -> np.ndarray:
        """Frames at sorted unique `positions`, as an array (C, K, H, W); one read per run of
        consecutive frames and channel."""
        positions = np.asarray(positions, dtype=np.int64)
        c, t, h, w = self.shape
        out = np.empty((c, len(positions), h, w), dtype=self.dtype)
        if len(positions) == 0:
            return out
        if positions[0] < 0 or positions[-1] >= t:
            raise IndexError(f"frame positions must lie in 0..{t - 1}")
        frame_bytes = h * w * self.dtype.itemsize
        breaks = np.flatnonzero(np.diff(positions) != 1) + 1
        starts = np.concatenate([[0], breaks]).tolist()
        ends = np.concatenate([breaks, [len(positions)]]).tolist()
        fd = self._descriptor()
        for channel in range(c):
            channel_offset = self.offset + channel * t * frame_bytes
            for a, b in zip(starts, ends, strict=True):
                read_exact(fd, out[channel, a:b], channel_offset + int(positions[a]) * frame_bytes)
        return out

    def __getitem__(self, key: Any) -> np.ndarray:
        if not (isinstance(key, tuple) and len(key) == 2 and key[0] == slice(None)):
            raise TypeError("NpyFrames supports frames[:, time] only")
        time = key[1]
        if isinstance(time, slice):
            return self.take(np.arange(*time.indices(self.shape[1])))
        return self.take(np.asarray(time, dtype=np.int64))

    def __getstate__(self) -> dict[str, Any]:  # file descriptors do not travel to other processes
        return {**self.__dict__, "_fd": None}

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)  # type: ignore[arg-type]
            self._fd = None

    def __repr__(self) -> str:
        return f"NpyFrames({str(self.path)!r}, shape={self.shape}, dtype={self.dtype})"
