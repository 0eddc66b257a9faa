"""A simulated retina with known ground truth: the built-in dataset of `openretina train`.

Each neuron is a linear-nonlinear-Poisson (LNP) cell:

- spatial receptive field: a difference of Gaussians (centre and antagonistic surround) at a known
  position;
- temporal filter: biphasic and causal, about 0.5 s long at 30 Hz (transient cells have a strong
  second lobe, sustained cells a weak one);
- colour: a preference for one channel (green or UV for two channels), or for all;
- polarity: ON (+) or OFF (-); the cell type label says e.g. "OFF transient";
- nonlinearity: a softplus of the filtered movie, scaled to a mean of a few spikes per frame;
- spikes: Poisson counts per frame.

The movies are naturalistic: 1/f spatial noise, correlated over time (AR(1)) and between colour
channels. Training stimuli are shared by all sessions; the test movie is shown `test_trials` times,
stored as (trials, neurons, T). The true rates, filters and positions go to
`DIR/ground_truth/ground_truth.h5` (a sub-folder, so the reader does not take it for a session),
together with the ceiling: per neuron, the correlation of the true rate with the observed trial mean,
which no model can beat on average.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from openretina_data.errors import DataError
from openretina_data.synthetic import cell_models
from openretina_data.synthetic._atomic import atomic_directory

__all__ = ["TEST_STIMULUS", "GroundTruth", "read_ground_truth", "write_retina_dataset"]

TEST_STIMULUS = "natural_test"
"""Name of the test stimulus of the simulated retina (`data_io.test_names=[natural_test]`)."""

GROUND_TRUTH_FILE = Path("ground_truth") / "ground_truth.h5"
_CELL_TYPES = ("ON sustained", "ON transient", "OFF sustained", "OFF transient")
_POLARITIES = ("mixed", "on", "off")
_DEFAULT_FILTER_MS = 500.0  # span of the default filters (tau1 of 22-30 ms)


def write_retina_dataset(
    path: str | os.PathLike[str],
    seed: int = 0,
    num_sessions: int = 2,
    neurons_per_session: int = 32,
    num_colors: int = 2,
    height: int = 18,
    width: int = 16,
    train_frames: int = 9000,
    num_stimuli: int = 4,
    clip_length: int = 75,
    test_frames: int = 450,
    test_trials: int = 8,
    frame_rate_hz: float = 30.0,
    filter_frames: int = 15,
    mean_rate: float = 2.5,
    overwrite: bool = False,
    filter_ms: float | None = None,
    centre_sigma: tuple[float, float] = (1.3, 2.0),
    surround_strength: tuple[float, float] = (0.3, 0.6),
    polarity: str = "mixed",
    cell_classes: Sequence[str] = (),
    pixel_size_um: float | None = None,
    motion: float = 0.0,
) -> Path:
    """Write a simulated-retina dataset in the 1.x HDF5 layout into the new (or empty) `path`.

    Training stimuli `natural_0..{num_stimuli-1}` share about `train_frames`: each gets a whole
    number of clips of `clip_length` frames (at least one). The test stimulus is `natural_test`.
    Deterministic per `seed`. Returns the folder.

    Options that vary the cells (the defaults give the built-in retina): `filter_ms`, the span of
    the temporal filters in milliseconds (null: about 500 ms; `filter_frames` must cover it),
    `centre_sigma`, the range of centre widths in pixels (below 0.5: smaller than a pixel),
    `surround_strength`, the range of surround weights ((0, 0): no surround), and `polarity`:
    `mixed`, `on` or `off`. Fewer spikes (`mean_rate`) means a lower signal-to-noise ratio.

    Off by default, for checking characterisation tools against known answers (see
    `openretina_data.synthetic.cell_models`): `cell_classes`, some of `direction`, `orientation`
    and `subunit`, mixed in equal numbers with the usual `linear` cells, with their selectivity
    and receptive-field geometry in the ground truth; `pixel_size_um`, written to every session
    file (with `frame_rate_hz`); `motion`, the speed in pixels per frame of a drifting texture
    mixed into every movie (0: none).
    """
    if polarity not in _POLARITIES:
        raise DataError(path, None, f"polarity is {polarity!r}", f"use one of {', '.join(_POLARITIES)}")
    low, high = (float(v) for v in centre_sigma)
    if not 0 < low <= high or (filter_ms is not None and filter_ms <= 0):
        raise DataError(
            path,
            None,
            f"centre_sigma {tuple(centre_sigma)} and filter_ms {filter_ms} cannot make receptive fields",
            "use 0 < centre_sigma[0] <= centre_sigma[1] (pixels) and a positive filter_ms",
        )
    cell_classes = cell_models.check_options(path, cell_classes, pixel_size_um, motion)
    cell_options = {
        "filter_ms": filter_ms,
        "centre_sigma": (low, high),
        "surround_strength": tuple(float(v) for v in surround_strength),
        "polarity": polarity,
    }
    if min(num_stimuli, clip_length, num_sessions, neurons_per_session, test_trials) < 1 or (
        test_frames < filter_frames
    ):
        raise DataError(
            path,
            None,
            f"cannot simulate {num_sessions} sessions x {neurons_per_session} neurons, {num_stimuli} "
            f"stimuli of clips of {clip_length} frames, {test_frames} test frames x {test_trials} trials "
            f"(filters span {filter_frames} frames)",
            "use positive sizes and a test movie at least as long as the filters",
        )
    clips_per_stimulus = max(1, round(train_frames / (num_stimuli * clip_length)))
    train_frames = clips_per_stimulus * clip_length * num_stimuli
    rng = np.random.default_rng(seed)
    movie = _natural_movie(rng, num_colors, train_frames + test_frames, height, width, frame_rate_hz)
    if motion > 0:
        movie = cell_models.add_motion(rng, movie, motion)
    if cell_classes:
        movie = cell_models.display_bounds(movie)
    train, test = movie[:, :train_frames], movie[:, train_frames:]
    bounds = np.linspace(0, train_frames, num_stimuli + 1).astype(int)
    train_parts = [train[:, a:b] for a, b in itertools.pairwise(bounds.tolist())]
    with atomic_directory(path, overwrite=overwrite) as staging:
        (staging / "stimuli").mkdir()
        for i, part in enumerate(train_parts):
            np.save(staging / "stimuli" / f"natural_{i}.npy", np.ascontiguousarray(part))
        np.save(staging / "stimuli" / f"{TEST_STIMULUS}.npy", np.ascontiguousarray(test))
        (staging / GROUND_TRUTH_FILE.parent).mkdir()
        with h5py.File(staging / GROUND_TRUTH_FILE, "w") as truth:
            truth.attrs.update(
                {
                    "seed": seed,
                    "frame_rate_hz": frame_rate_hz,
                    "test_stimulus": TEST_STIMULUS,
                    "mean_rate": mean_rate,
                }
            )
            if cell_classes:
                truth.attrs.update(cell_models.truth_attributes(pixel_size_um))
            for s in range(num_sessions):
                population, drive_of = (
                    (
                        partial(cell_models.population, classes=cell_classes, calibration=train),
                        cell_models.drive,
                    )
                    if cell_classes
                    else (_population, _drive)
                )
                cells = population(
                    rng,
                    neurons_per_session,
                    num_colors,
                    height,
                    width,
                    frame_rate_hz,
                    filter_frames,
                    **cell_options,
                )
                drives = [drive_of(part, cells) for part in train_parts]
                test_drive = drive_of(test, cells)
                scale = np.concatenate(drives, axis=1).std(axis=1, keepdims=True) + 1e-12
                rate_of = _rate_function(
                    cells, np.concatenate(drives, axis=1) / scale, mean_rate, bool(cell_classes)
                )
                session = f"session_{s}"
                with h5py.File(staging / f"{session}.h5", "w") as handle:
                    handle.attrs["frame_rate_hz"] = frame_rate_hz
                    if pixel_size_um is not None:
                        handle.attrs["pixel_size_um"] = float(pixel_size_um)
                    if num_colors == 2:  # the mouse retina's two cone opsins
                        handle.attrs["channel_names"] = ["green", "UV"]
                    for i, drive in enumerate(drives):
                        counts = rng.poisson(rate_of(drive / scale)).astype(np.float32)
                        handle.create_dataset(f"responses_natural_{i}", data=counts)
                    test_rate = rate_of(test_drive / scale)
                    trials = rng.poisson(test_rate, size=(test_trials, *test_rate.shape)).astype(np.float32)
                    handle.create_dataset(f"responses_{TEST_STIMULUS}", data=trials)
                    info = handle.create_group("session_info")
                    _write_session_info(info, cells)
                    if cell_classes:
                        info.create_dataset(
                            "cell_class", data=np.array(cells["kind"], dtype=h5py.string_dtype())
                        )
                ceiling = _correlation(test_rate, trials.mean(axis=0))
                group = truth.create_group(session)
                group.create_dataset(f"rates_{TEST_STIMULUS}", data=test_rate.astype(np.float32))
                group.create_dataset("ceiling_correlation", data=ceiling)
                for key in ("spatial_rf", "temporal_filter", "colour_weights", "position", "polarity"):
                    group.create_dataset(key, data=cells[key])
                group.create_dataset(
                    "cell_type", data=np.array(cells["cell_type"], dtype=h5py.string_dtype())
                )
                group.attrs["mean_ceiling"] = float(np.nanmean(ceiling))
                if cell_classes:
                    train_z = np.concatenate(drives, axis=1) / scale
                    known = cell_models.ground_truth(
                        cells, scale, train_z, mean_rate, pixel_size_um, frame_rate_hz
                    )
                    for key, value in known.items():
                        if key not in group:
                            group.create_dataset(key, data=value)
    return Path(path).expanduser()


def _natural_movie(
    rng: np.random.Generator, colors: int, frames: int, height: int, width: int, frame_rate_hz: float
) -> np.ndarray:
    """(C, T, H, W) float32, zero mean and unit std per channel: 1/f spatial noise, AR(1) in time
    with ~0.1 s correlation time, channels correlated (r = 0.6) as natural scenes are."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    radius = np.sqrt(fy**2 + fx**2)
    amplitude = 1.0 / np.maximum(radius, 1.0 / max(height, width))
    shared = rng.standard_normal((frames, height, width))
    channels = []
    for _ in range(colors):
        own = rng.standard_normal((frames, height, width))
        white = 0.6 * shared + 0.8 * own
        spatial = np.fft.irfft2(np.fft.rfft2(white) * amplitude, s=(height, width))
        channels.append(spatial)
    movie = np.stack(channels)  # (C, T, H, W)
    rho = float(np.exp(-1.0 / (0.1 * frame_rate_hz)))
    smooth = np.empty_like(movie)
    smooth[:, 0] = movie[:, 0]
    innovation = np.sqrt(1 - rho**2)
    for t in range(1, frames):
        smooth[:, t] = rho * smooth[:, t - 1] + innovation * movie[:, t]
    smooth -= smooth.mean(axis=(1, 2, 3), keepdims=True)
    smooth /= smooth.std(axis=(1, 2, 3), keepdims=True)
    return smooth.astype(np.float32)


def _population(
    rng: np.random.Generator,
    n: int,
    colors: int,
    height: int,
    width: int,
    frame_rate_hz: float,
    filter_frames: int,
    filter_ms: float | None = None,
    centre_sigma: tuple[float, float] = (1.3, 2.0),
    surround_strength: tuple[float, float] = (0.3, 0.6),
    polarity: str = "mixed",
) -> dict[str, Any]:
    """Receptive fields and labels of `n` cells (the options as in write_retina_dataset)."""
    types = rng.integers(0, len(_CELL_TYPES), n)
    if polarity != "mixed":  # same draws, so the other properties match the mixed population's
        types = types % 2 + (0 if polarity == "on" else 2)
    polarity = np.where(types < 2, 1.0, -1.0)
    transient = types % 2 == 1
    margin = 2.5
    position = np.stack(
        [rng.uniform(margin, height - 1 - margin, n), rng.uniform(margin, width - 1 - margin, n)], axis=1
    )
    yy, xx = np.mgrid[0:height, 0:width]
    sigma = rng.uniform(*centre_sigma, n)
    spatial = np.empty((n, height, width))
    for k in range(n):
        d2 = (yy - position[k, 0]) ** 2 + (xx - position[k, 1]) ** 2
        centre = np.exp(-d2 / (2 * sigma[k] ** 2))
        surround = np.exp(-d2 / (2 * (2.5 * sigma[k]) ** 2))
        rf = centre / centre.sum() - rng.uniform(*surround_strength) * surround / surround.sum()
        spatial[k] = rf / np.linalg.norm(rf)
    t = (np.arange(filter_frames) + 0.5) / frame_rate_hz  # seconds since the frame
    tau1 = rng.uniform(0.022, 0.03, n)[:, None]
    if filter_ms is not None:  # the same shapes, stretched in time
        tau1 = tau1 * (filter_ms / _DEFAULT_FILTER_MS)
    tau2 = 1.6 * tau1
    second = np.where(transient, rng.uniform(0.8, 0.95, n), rng.uniform(0.1, 0.3, n))[:, None]
    gamma1 = (t / tau1) ** 3 * np.exp(-t / tau1)
    gamma2 = (t / tau2) ** 3 * np.exp(-t / tau2)
    temporal = gamma1 / gamma1.sum(axis=1, keepdims=True) - second * gamma2 / gamma2.sum(
        axis=1, keepdims=True
    )
    temporal /= np.linalg.norm(temporal, axis=1, keepdims=True)
    preference = rng.integers(0, colors + 1, n)  # == colors: no preference
    colour = np.full((n, colors), 0.3)
    colour[np.arange(n)[preference < colors], preference[preference < colors]] = 1.0
    colour[preference == colors] = 0.7
    names = ["green", "uv"] if colors == 2 else [f"channel_{c}" for c in range(colors)]
    return {
        "spatial_rf": spatial.astype(np.float32),
        "temporal_filter": temporal.astype(np.float32),
        "colour_weights": colour.astype(np.float32),
        "position": position.astype(np.float32),
        "polarity": polarity.astype(np.float32),
        "cell_type": [_CELL_TYPES[i] for i in types],
        "cell_type_code": types.astype(np.int64),
        "colour_preference": [names[p] if p < colors else "all" for p in preference],
        "gain": rng.uniform(1.5, 2.5, n),
        "threshold": rng.uniform(-0.5, 0.5, n),
    }


def _drive(movie: np.ndarray, cells: dict[str, Any]) -> np.ndarray:
    """Linear stage (N, T): space-colour projection, then causal filtering along time."""
    projected = np.einsum(
        "cthw,nhw,nc->nt", movie, cells["spatial_rf"], cells["colour_weights"], optimize=True
    )
    projected *= cells["polarity"][:, None]
    frames = movie.shape[1]
    out = np.empty_like(projected)
    for k in range(len(projected)):
        out[k] = np.convolve(projected[k], cells["temporal_filter"][k])[:frames]  # past frames only
    return out


def _rate_function(cells: dict[str, Any], train_drive: np.ndarray, mean_rate: float, shared_peak: bool):
    """Softplus nonlinearity per cell, scaled so the training mean rate is `mean_rate`; with
    `shared_peak` (the characterisation cells), so that every cell reaches the same high rate
    (`cell_models.rate_scales`)."""
    gain, threshold = cells["gain"][:, None], cells["threshold"][:, None]

    def softplus(z: np.ndarray) -> np.ndarray:
        return np.logaddexp(0.0, gain * (z - threshold))

    if shared_peak:
        scale = cell_models.rate_scales(cells, train_drive, mean_rate)[:, None]
    else:
        scale = mean_rate / softplus(train_drive).mean(axis=1, keepdims=True)
    return lambda z: scale * softplus(z)


def _write_session_info(group: h5py.Group, cells: dict[str, Any]) -> None:
    group.create_dataset("celltypes", data=cells["cell_type_code"])
    group.create_dataset("cell_type", data=np.array(cells["cell_type"], dtype=h5py.string_dtype()))
    group.create_dataset(
        "colour_preference", data=np.array(cells["colour_preference"], dtype=h5py.string_dtype())
    )
    group.create_dataset("position", data=cells["position"])


def _correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))).astype(np.float32)


@dataclass
class GroundTruth:
    """What the simulation knows: per session, true test rates (N, T), receptive fields and the ceiling."""

    test_stimulus: str
    frame_rate_hz: float
    seed: int
    sessions: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def ceiling(self, session: str) -> np.ndarray:
        """Per-neuron correlation of the true rate with the observed test trial mean."""
        return self.sessions[session]["ceiling_correlation"]


def read_ground_truth(path: str | os.PathLike[str]) -> GroundTruth:
    """The ground truth of a simulated retina: `path` is the dataset folder or the file itself."""
    file = Path(path).expanduser()
    if file.is_dir():
        file = file / GROUND_TRUTH_FILE
    if not file.is_file():
        raise DataError(
            file,
            None,
            "no ground truth here",
            "pass a folder written by write_retina_dataset (--kind retina)",
        )
    with h5py.File(file, "r") as handle:
        truth = GroundTruth(
            test_stimulus=str(handle.attrs["test_stimulus"]),
            frame_rate_hz=float(handle.attrs["frame_rate_hz"]),
            seed=int(handle.attrs["seed"]),
        )
        for name, group in handle.items():
            values = {}
            for key, dataset in group.items():
                data = dataset[()]
                values[key] = data.astype(str) if data.dtype.kind in "SO" else data
            truth.sessions[name] = values
    return truth
