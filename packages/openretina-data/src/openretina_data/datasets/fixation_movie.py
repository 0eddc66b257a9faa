"""A movie rebuilt from natural images and gaze positions, reduced to the model's resolution.

Each frame shows one image shifted by the fixation on a (screen_height, screen_width) screen: the
screen pixel (row, col) shows image pixel (row + y - screen_height // 2, col + x - screen_width //
2), black outside the image (Karamanlis et al. 2024; the same placement as openretina 1.x's port of
the lab's returnFixMovie.m). The screen is then reduced to (height, width) by averaging blocks of
(screen_height / height) x (screen_width / width) pixels.

The full-resolution screen is never drawn: with a summed-area table of the image, every block sum
of every frame is four table look-ups, gathered for all frames of one image at once. Images are read
one at a time and the frames are written block by block, so memory holds one image, its table and
one block of output frames, never the whole movie.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from openretina_data.errors import DataError

FRAMES_PER_GATHER = 1024  # bounds the float64 look-up temporaries (frames x (height+1) x (width+1))


@dataclass(frozen=True)
class Screen:
    """The stimulus screen and the resolution it is reduced to."""

    height: int = 600
    width: int = 800
    out_height: int = 60
    out_width: int = 80

    def factors(self, path: Path) -> tuple[int, int]:
        fy, ry = divmod(self.height, self.out_height)
        fx, rx = divmod(self.width, self.out_width)
        if ry or rx or fy < 1 or fx < 1:
            raise DataError(
                path,
                "movie_height/movie_width",
                f"{self.out_height}x{self.out_width} does not divide the {self.height}x{self.width} screen",
                "choose a size that divides it, e.g. 60x80, 120x160 or 30x40",
            )
        return fy, fx


def check_fixations(
    fixations: np.ndarray, n_images: int, image_shape: tuple[int, int], screen: Screen, path: Path, key: str
) -> np.ndarray:
    """(frames, 3) int64 [0-based image index, x, y]; a DataError on indices out of range or a
    fixation that moves the image off the screen."""
    values = np.rint(np.asarray(fixations, dtype=np.float64)).astype(np.int64)
    flat = values.reshape(-1, 3)
    index, x, y = flat[:, 0], flat[:, 1], flat[:, 2]
    bad = np.flatnonzero((index < 1) | (index > n_images))
    if bad.size:
        raise DataError(
            path,
            key,
            f"{bad.size} image indices outside 1..{n_images} (first: {int(index[bad[0]])} at frame "
            f"{_where(int(bad[0]), values.shape)})",
            "use the published file (column 1 holds 1-based indices into the image array)",
        )
    height, width = image_shape
    dy, dx = y - screen.height // 2, x - screen.width // 2
    off = np.flatnonzero((dy <= -screen.height) | (dy >= height) | (dx <= -screen.width) | (dx >= width))
    if off.size:
        first = int(off[0])
        raise DataError(
            path,
            key,
            f"{off.size} fixations move the {height}x{width} image entirely off the "
            f"{screen.height}x{screen.width} screen (first: x={int(x[first])}, y={int(y[first])} at frame "
            f"{_where(first, values.shape)})",
            "check data_io.screen_height/screen_width (the published screen is 600x800), "
            "or use the published file",
        )
    flat[:, 0] -= 1
    return values


def _where(flat_index: int, shape: tuple[int, ...]) -> str:
    """'f' or 'f of block b' for the flat row ``flat_index`` of (frames, 3) or (blocks, frames, 3)."""
    if len(shape) == 2:
        return str(flat_index)
    block, frame = divmod(flat_index, shape[1])
    return f"{frame} of block {block}"


def summed_area_table(image_yx: np.ndarray) -> np.ndarray:
    """(H + 1, W + 1) float64 table: entry (r, c) is the sum of image[:r, :c]."""
    table = np.zeros((image_yx.shape[0] + 1, image_yx.shape[1] + 1), dtype=np.float64)
    np.cumsum(image_yx, axis=0, dtype=np.float64, out=table[1:, 1:])
    np.cumsum(table[1:, 1:], axis=1, out=table[1:, 1:])
    return table


def reduce_frames(
    table: np.ndarray, dy: np.ndarray, dx: np.ndarray, screen: Screen, fy: int, fx: int
) -> np.ndarray:
    """Block means (F, out_height, out_width) float32 of the frames showing one image at shifts dy, dx."""
    height, width = table.shape[0] - 1, table.shape[1] - 1
    rows = np.clip(np.arange(screen.out_height + 1) * fy + dy[:, None], 0, height)  # (F, h + 1)
    cols = np.clip(np.arange(screen.out_width + 1) * fx + dx[:, None], 0, width)  # (F, w + 1)
    corners = table[rows[:, :, None], cols[:, None, :]]  # (F, h + 1, w + 1): one gather
    sums = corners[:, 1:, 1:] - corners[:, :-1, 1:] - corners[:, 1:, :-1] + corners[:, :-1, :-1]
    return (sums / (fy * fx)).astype(np.float32)


def fixation_blocks(
    images: Any,
    fixations: np.ndarray,
    screen: Screen,
    path: Path,
    read_image: Callable[[Any, int], np.ndarray],
) -> Iterator[np.ndarray]:
    """The movie of ``fixations`` (blocks, frames, 3) or (frames, 3), checked, as one (frames, h, w)
    float32 array per block, in order. ``read_image(images, k)`` returns image k as (height, width)."""
    fy, fx = screen.factors(path)
    blocks = fixations if fixations.ndim == 3 else fixations[None]
    for block in blocks:
        out = np.empty((len(block), screen.out_height, screen.out_width), dtype=np.float32)
        index = block[:, 0]
        dy = block[:, 2] - screen.height // 2
        dx = block[:, 1] - screen.width // 2
        for image in np.unique(index):
            table = summed_area_table(read_image(images, int(image)))
            frames = np.flatnonzero(index == image)
            for start in range(0, len(frames), FRAMES_PER_GATHER):
                part = frames[start : start + FRAMES_PER_GATHER]
                out[part] = reduce_frames(table, dy[part], dx[part], screen, fy, fx)
        yield out
