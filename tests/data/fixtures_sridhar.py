"""Writers of Sridhar et al. 2025 folders with the published structure (tiny by default).

Natural movie: response pickles, fixation files (one line per frame: image, two unused fields,
center_x, center_y, flip flag), uint8 images stored (width, height) and optional STAs. White noise:
response pickles and (height, width, frames) ``all_images.npy`` per trial and for the test.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np

NM_FOLDER = "gollisch_lab/sridhar_2025/marmoset/natural_movie"
WN_FOLDER = "gollisch_lab/sridhar_2025/marmoset/whitenoise"
DEFAULT_FIXATIONS = "complete_fixations_seed_2022and2023_s4_fixed.txt"
RETINA_02_FIXATIONS = "complete_fixations_seed2022_s4.txt"


def _responses(
    rng: np.random.Generator,
    n_cells: int,
    frames_per_trial: int,
    n_trials: int,
    test_frames: int,
    repeats: int,
) -> dict:
    return {
        "train_responses": rng.poisson(1.0, (n_cells, frames_per_trial, n_trials)).astype(np.float64),
        "test_responses": rng.poisson(1.0, (n_cells, test_frames, repeats)).astype(np.float64),
        "seeds": [2022, 2023],
        "trial_separation": {2022: list(range(0, n_trials, 2)), 2023: list(range(1, n_trials, 2))},
    }


def fixation_lines(
    rng: np.random.Generator, n_lines: int, n_images: int, image_width: int, image_height: int
) -> list[str]:
    """Lines whose 80x90 crop stays inside a (width, height) image (openretina 1.x's placement)."""
    image = rng.integers(0, n_images, n_lines)
    center_x = rng.integers(-5, image_width - 95 + 1, n_lines)
    center_y = rng.integers(-10, image_height - 90 + 1, n_lines)
    flip = rng.integers(0, 2, n_lines)
    return [
        f"{i} {4 * x} {4 * y} {x} {y} 0.0 {f}"
        for i, x, y, f in zip(
            image.tolist(), center_x.tolist(), center_y.tolist(), flip.tolist(), strict=True
        )
    ]


def write_sridhar_nm_fixture(
    directory: str | Path,
    *,
    sessions: Sequence[str] = ("01", "02"),
    n_cells: int = 6,
    frames_per_trial: int = 100,
    n_trials: int = 20,
    test_frames: int = 60,
    repeats: int = 3,
    n_images: int = 6,
    image_width: int = 350,
    image_height: int = 300,
    stas: bool = False,
    seed: int = 0,
) -> Path:
    """Write ``gollisch_lab/sridhar_2025/marmoset/natural_movie/`` and return that folder.

    The test movie takes the first ``test_frames`` fixation lines (the published files have 5100:
    pass ``test_frames`` to the reader as ``test_frames``)."""
    root = Path(directory) / NM_FOLDER
    rng = np.random.default_rng(seed)
    for folder in ("responses", "fixations", "stimuli_padded_4"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        image = rng.integers(0, 256, (image_width, image_height), dtype=np.uint8)
        np.save(root / "stimuli_padded_4" / f"{i:05d}_img_{10088 + i}.npy", image)
    n_lines = test_frames + n_trials * frames_per_trial
    for name in (DEFAULT_FIXATIONS, RETINA_02_FIXATIONS):
        lines = fixation_lines(rng, n_lines, n_images, image_width, image_height)
        (root / "fixations" / name).write_text("\n".join(lines) + "\n")
    for session in sessions:
        data = _responses(rng, n_cells, frames_per_trial, n_trials, test_frames, repeats)
        with (root / "responses" / f"cell_responses_{session}_fixation_movie.pkl").open("wb") as handle:
            pickle.dump(data, handle, protocol=4)
        if stas:
            write_stas(root, session, n_cells, rng)
    return root


def write_sridhar_wn_fixture(
    directory: str | Path,
    *,
    sessions: Sequence[str] = ("01", "04"),
    n_cells: int = 5,
    frames_per_trial: int = 40,
    n_trials: int = 5,
    test_frames: int = 30,
    repeats: int = 3,
    stas: bool = False,
    seed: int = 0,
) -> Path:
    """Write ``gollisch_lab/sridhar_2025/marmoset/whitenoise/`` and return that folder (retinas
    01-03 saw stimulus set 1, retina 04 set 2)."""
    root = Path(directory) / WN_FOLDER
    rng = np.random.default_rng(seed)
    (root / "responses").mkdir(parents=True, exist_ok=True)
    for k in (1, 2):
        for trial in range(n_trials):
            folder = root / f"non_repeating_stimuli_{k}" / f"trial_{trial:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            np.save(
                folder / "all_images.npy",
                rng.integers(0, 2, (150, 200, frames_per_trial), dtype=np.uint8) * 255,
            )
        folder = root / f"repeating_stimuli_{k}"
        folder.mkdir(parents=True, exist_ok=True)
        np.save(
            folder / "all_images.npy", rng.integers(0, 2, (150, 200, test_frames + 5), dtype=np.uint8) * 255
        )
    for session in sessions:
        data = _responses(rng, n_cells, frames_per_trial, n_trials, test_frames, repeats)
        del data["seeds"], data["trial_separation"]
        with (root / "responses" / f"cell_responses_{session}_wn.pkl").open("wb") as handle:
            pickle.dump(data, handle, protocol=4)
        if stas:
            write_stas(root, session, n_cells, rng)
    return root


def write_stas(root: Path, session: str, n_cells: int, rng: np.random.Generator) -> None:
    """``stas/cell_data_<NN>_WN_stas_cell_<c>.npy`` (time, 150, 200): cell c peaks at row 40 + 5c,
    column 60 + 7c."""
    (root / "stas").mkdir(parents=True, exist_ok=True)
    for cell in range(n_cells):
        sta = rng.normal(0.0, 0.01, (5, 150, 200)).astype(np.float32)
        sta[:, 40 + 5 * cell, 60 + 7 * cell] = [0.0, 1.0, -1.0, 0.5, 0.0]
        np.save(root / "stas" / f"cell_data_{session}_WN_stas_cell_{cell}.npy", sta)
