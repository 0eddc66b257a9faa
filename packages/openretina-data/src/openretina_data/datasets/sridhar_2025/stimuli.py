"""The Sridhar et al. 2025 stimuli at model resolution: natural movies rebuilt from images and
per-retina fixations, and white noise cropped from its per-trial arrays.

Natural movie: line ``i`` of a fixation file shows image ``index`` (the position of
``stimuli_padded_4/*_img_*.npy`` in name order; each image is stored (width, height)) through a
``window_height x window_width`` window centred on (center_x, center_y) + ``padding``, mirrored
top-down when the line's flip flag is ``0``, then cropped by (top, bottom, left, right) pixels: 80x90
with the published numbers, the placement of openretina 1.x. Only the cropped pixels are gathered,
for all frames of one image at once, so a frame costs one fancy-index read and memory holds one
image and one block of output frames.

White noise: ``all_images.npy`` (height, width, frames) of each trial is cropped the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from openretina_data.errors import DataError

FRAMES_PER_BLOCK = 2048


@dataclass(frozen=True)
class Crop:
    """The window cut around each fixation and the crop of it the model sees (openretina 1.x's)."""

    window_height: int = 150
    window_width: int = 200
    padding: int = 50
    top: int = 35
    bottom: int = 35
    left: int = 55
    right: int = 55

    @property
    def height(self) -> int:
        return self.window_height - self.top - self.bottom

    @property
    def width(self) -> int:
        return self.window_width - self.left - self.right

    def check(self, where: object) -> None:
        if (
            min(self.top, self.bottom, self.left, self.right, self.padding) < 0
            or self.height < 1
            or self.width < 1
        ):
            raise DataError(
                str(where),
                "crop",
                f"{self} leaves no pixel (or has negative sizes)",
                "use the published crop: window 150x200, crop [35, 35, 55, 55]",
            )


@dataclass(frozen=True)
class Fixations:
    """One fixation file: per line the image position, gaze centre and flip flag."""

    path: Path
    image: np.ndarray  # (L,) int64
    center_x: np.ndarray  # (L,) int64
    center_y: np.ndarray  # (L,) int64
    mirrored: np.ndarray  # (L,) bool: the flip flag is "0"

    def __len__(self) -> int:
        return len(self.image)


def read_fixations(path: Path) -> Fixations:
    """Parse a whitespace-separated fixation file (fields 1, 4, 5: image, center_x, center_y; the
    first character of the last field: flip flag)."""
    if not path.is_file():
        raise DataError(
            path, None, "the fixation file is missing", "download the whole natural_movie folder again"
        )
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    try:
        image = np.array([int(float(row[0])) for row in rows], dtype=np.int64)
        center_x = np.array([int(float(row[3])) for row in rows], dtype=np.int64)
        center_y = np.array([int(float(row[4])) for row in rows], dtype=np.int64)
        mirrored = np.array([row[-1][0] == "0" for row in rows], dtype=bool)
    except (IndexError, ValueError) as error:
        line = next(i for i, row in enumerate(rows) if not _parses(row))
        raise DataError(
            path,
            f"line {line + 1}",
            f"not '<image> <x> <y> <center_x> <center_y> ... <flip>' ({error})",
            "use the published fixation file",
        ) from error
    return Fixations(path, image, center_x, center_y, mirrored)


def _parses(row: list[str]) -> bool:
    try:
        int(float(row[0])), int(float(row[3])), int(float(row[4]))
    except (IndexError, ValueError):
        return False
    return True


def image_files(folder: Path, marker: str = "_img_") -> list[Path]:
    """The natural images in name order (their position is the index fixation files use)."""
    if not folder.is_dir():
        raise DataError(
            folder, None, "the image folder is missing", "download the whole natural_movie folder again"
        )
    files = sorted(p for p in folder.iterdir() if marker in p.name and p.suffix == ".npy")
    if not files:
        raise DataError(
            folder, None, f"no *{marker}*.npy image here", "download the whole natural_movie folder again"
        )
    return files


def check_fixation_lines(
    fixations: Fixations, lines: np.ndarray, n_images: int, image_shape: tuple[int, int], crop: Crop
) -> None:
    """A DataError naming the first line whose image index is out of range or whose crop leaves the
    (width, height) image."""
    index = fixations.image[lines]
    bad = np.flatnonzero((index < 0) | (index >= n_images))
    if bad.size:
        line = int(lines[bad[0]])
        raise DataError(
            fixations.path,
            "image index (field 1)",
            f"{bad.size} lines name an image outside 0..{n_images - 1} "
            f"(first: {int(index[bad[0]])} on line {line + 1})",
            "use the fixation file published with these images "
            "(stimuli_padded_4 holds the 4x downsampled images)",
        )
    width, height = image_shape
    x0, y0 = _origins(fixations, lines, crop)
    rows_low = y0 + np.where(fixations.mirrored[lines], crop.bottom, crop.top)
    off = np.flatnonzero(
        (x0 < 0) | (x0 + crop.width > width) | (rows_low < 0) | (rows_low + crop.height > height)
    )
    if off.size:
        line = int(lines[off[0]])
        raise DataError(
            fixations.path,
            "center_x/center_y (fields 4-5)",
            f"{off.size} fixations put the {crop.height}x{crop.width} crop outside the "
            f"{height}x{width} image (first: center ({int(fixations.center_x[line])}, "
            f"{int(fixations.center_y[line])}) on line {line + 1})",
            "use the fixation file of the 4x downsampled images (*_s4*.txt) with stimuli_padded_4",
        )


def _origins(fixations: Fixations, lines: np.ndarray, crop: Crop) -> tuple[np.ndarray, np.ndarray]:
    """Image x of the crop's first column and image y of the window's first row, per line."""
    x0 = fixations.center_x[lines] + crop.padding - crop.window_width // 2 + crop.left
    y0 = fixations.center_y[lines] + crop.padding - crop.window_height // 2
    return x0, y0


def natural_movie_frames(
    fixations: Fixations, lines: np.ndarray, images: list[Path], crop: Crop, dtype: np.dtype
) -> np.ndarray:
    """Frames (len(lines), crop.height, crop.width) of the fixation ``lines`` (already checked)."""
    out = np.empty((len(lines), crop.height, crop.width), dtype=dtype)
    x0, y0 = _origins(fixations, lines, crop)
    rows = crop.top + np.arange(crop.height)
    window_rows = np.where(fixations.mirrored[lines, None], crop.window_height - 1 - rows, rows)  # (F, h)
    ys = y0[:, None] + window_rows  # (F, h)
    xs = x0[:, None] + np.arange(crop.width)  # (F, w)
    index = fixations.image[lines]
    for image in np.unique(index):
        frames = np.flatnonzero(index == image)
        values = np.load(images[int(image)])  # (width, height)
        out[frames] = values[xs[frames][:, None, :], ys[frames][:, :, None]]
    return out


def natural_movie_blocks(
    fixations: Fixations, lines: np.ndarray, images: list[Path], crop: Crop, dtype: np.dtype
):
    """:func:`natural_movie_frames` in blocks of at most FRAMES_PER_BLOCK frames."""
    for start in range(0, len(lines), FRAMES_PER_BLOCK):
        yield natural_movie_frames(fixations, lines[start : start + FRAMES_PER_BLOCK], images, crop, dtype)


def white_noise_blocks(path: Path, n_frames: int, crop: Crop, dtype: np.dtype, key: str = "all_images.npy"):
    """The first ``n_frames`` frames of a white-noise ``all_images.npy`` (height, width, frames),
    cropped, as (F, crop.height, crop.width) blocks."""
    frames = open_white_noise(path, n_frames, crop)
    rows = slice(crop.top, crop.top + crop.height)
    cols = slice(crop.left, crop.left + crop.width)
    for start in range(0, n_frames, FRAMES_PER_BLOCK):
        stop = min(start + FRAMES_PER_BLOCK, n_frames)
        yield np.ascontiguousarray(np.moveaxis(frames[rows, cols, start:stop], 2, 0), dtype=dtype)


def open_white_noise(path: Path, n_frames: int, crop: Crop) -> np.ndarray:
    """The memory-mapped (height, width, frames) array, checked against the responses and the crop."""
    if not path.is_file():
        raise DataError(
            path, None, "the white-noise stimulus is missing", "download the whole whitenoise folder again"
        )
    frames = np.load(path, mmap_mode="r")
    if frames.ndim != 3 or frames.shape[0] < crop.window_height or frames.shape[1] < crop.window_width:
        raise DataError(
            path,
            "all_images",
            f"shape {frames.shape}, expected "
            f"(height >= {crop.window_height}, width >= {crop.window_width}, frames)",
            "use the published white-noise files",
        )
    if frames.shape[2] < n_frames:
        raise DataError(
            path,
            "all_images",
            f"{frames.shape[2]} frames for {n_frames} response time bins",
            "use the stimulus folder published with these responses (data_io.white_noise_folders)",
        )
    return frames


def stored_dtype(sample: np.ndarray) -> np.dtype:
    """uint8 stays uint8 (applied per batch); everything else is cached as float32."""
    return np.dtype(np.uint8) if sample.dtype == np.uint8 else np.dtype(np.float32)
