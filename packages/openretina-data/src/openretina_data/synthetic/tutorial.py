"""The dataset the openretina 1.x tutorial trains on, with responses a model can actually learn.

Same layout and shapes as 1.x's `openretina create-data`: stimuli `random_noise_0..K-1` of shape
(C, clip_length * (70 + i), 16, 8), standard-normal float64; sessions `session_0.hdf5, ...` with
10-29 neurons, `responses_random_noise_i` (N, T_i) and `session_info/celltypes`. Unlike 1.x each
neuron is a causal function of the movie (a local spatial sum, colour-weighted, filtered by a
biphasic temporal kernel, rectified, plus noise), so training has something to find. Seeded.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from openretina_data.synthetic._atomic import atomic_directory

__all__ = ["write_tutorial_dataset"]

_KERNEL_FRAMES = 10


def write_tutorial_dataset(
    path: str | os.PathLike[str],
    num_colors: int = 3,
    num_stimuli: int = 4,
    num_sessions: int = 2,
    clip_length: int = 75,
    seed: int = 0,
    height: int = 16,
    width: int = 8,
    overwrite: bool = False,
    stimulus_dtype: str = "float64",
) -> Path:
    """Write the 1.x tutorial dataset into the new (or empty) folder `path` and return it.

    Stimulus i has `clip_length * (70 + i)` frames. `stimulus_dtype` defaults to float64 as in 1.x.
    The folder appears complete or not at all; an existing non-empty folder is replaced only with
    `overwrite=True`.
    """
    rng = np.random.default_rng(seed)
    lengths = [clip_length * (70 + i) for i in range(num_stimuli)]
    with atomic_directory(path, overwrite=overwrite) as staging:
        (staging / "stimuli").mkdir()
        movies = []
        for i, frames in enumerate(lengths):
            movie = rng.standard_normal((num_colors, frames, height, width)).astype(stimulus_dtype)
            np.save(staging / "stimuli" / f"random_noise_{i}.npy", movie)
            movies.append(movie)
        for s in range(num_sessions):
            _write_session(staging / f"session_{s}.hdf5", movies, rng)
    return Path(path).expanduser()


def _write_session(file: Path, movies: list[np.ndarray], rng: np.random.Generator) -> None:
    colors, _, height, width = movies[0].shape
    n = int(rng.integers(10, 30))
    ys = rng.integers(0, height, n)
    xs = rng.integers(0, width, n)
    colour_weights = rng.dirichlet(np.ones(colors), n).astype(np.float64)  # (N, C)
    sign = rng.choice([-1.0, 1.0], n)
    lag = np.arange(_KERNEL_FRAMES)
    tau = rng.uniform(1.0, 2.0, n)[:, None]
    kernels = (lag / tau) * np.exp(-lag / tau) - 0.5 * (lag / (2 * tau)) * np.exp(-lag / (2 * tau))
    kernels /= np.linalg.norm(kernels, axis=1, keepdims=True)
    gain = rng.uniform(1.0, 2.0, n)[:, None]
    with h5py.File(file, "w") as handle:
        for i, movie in enumerate(movies):
            drive = np.empty((n, movie.shape[1]))
            for k in range(n):
                local = movie[:, :, max(ys[k] - 1, 0) : ys[k] + 2, max(xs[k] - 1, 0) : xs[k] + 2]
                trace = np.einsum("cthw,c->t", local, colour_weights[k]) / np.sqrt(local[0, 0].size)
                drive[k] = np.convolve(trace, kernels[k])[: movie.shape[1]]  # causal: past frames only
            rate = np.logaddexp(0.0, gain * sign[:, None] * drive)  # softplus
            noisy = rate + 0.2 * rng.standard_normal(rate.shape)
            handle.create_dataset(f"responses_random_noise_{i}", data=noisy.astype(np.float32))
        handle.create_group("session_info").create_dataset("celltypes", data=rng.integers(1, 33, n))
