"""Cells that the linear-nonlinear cells of the simulated retina cannot stand for, with their truth.

`write_retina_dataset(cell_classes=[...])` mixes them into the population, so that a tool which
characterises model neurons (direction selectivity, receptive-field fits, functional types) can be
checked against known answers. Off by default: without `cell_classes` the retina is the old one.

- **direction** (`direction`): a space-time-oriented receptive field: the centre (and its
  surround) moves along the preferred direction over the lags of the (biphasic) temporal filter,
  at a known speed, so the filter's lobes lie at different places along that direction;
- **orientation** (`orientation`): an elongated centre (and surround) at a known angle;
- **subunit** (`subunit`): the centre pools rectified subunits (small Gaussians, each filtered in
  time, then passed only above a threshold of half a std, as bipolar-cell output synapses do), plus
  a linear surround: the spatial nonlinearity of real ganglion cells that an LN model cannot fit
  (about 30% of the pooled centre's variance on the training movie is not linear in the input);
- **linear** cells are the retina's usual ON/OFF, sustained/transient, colour-preferring cells.

Conventions (those of `openretina_models.insilico` too): x is the column, y the row; positions in
pixels are index coordinates (0 = the centre of the first column/row) and in µm are measured
from the left/top edge, (pixels + 0.5) times `pixel_size_um`; directions and angles are in
degrees counter-clockwise from +x with 90° pointing to smaller row indices (up in an image shown
with row 0 at the top).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from openretina_data.errors import DataError

__all__ = ["CELL_CLASSES", "true_rates"]

CELL_CLASSES = ("linear", "direction", "orientation", "subunit")
_KINETIC_TYPES = ("ON sustained", "ON transient", "OFF sustained", "OFF transient")
_DEFAULT_FILTER_MS = 500.0
_SURROUND_WIDTH = 2.5  # surround sigma / centre sigma, as for the linear cells
_SUBUNIT_SIGMA = 0.5  # pixels
_SUBUNIT_SPACING = 1.0  # pixels between subunit centres (a square grid)
# A subunit passes its drive above this many of its stds on the training movie. At 0 (plain
# half-wave rectification) a linear function of the subunit inputs explains 84% of the pooled
# centre's variance on the training movie, and an LN model fit the cells nearly as well as linear
# ones; at 0.5, 70%. (At 1, 55%, but the dense-noise receptive fields then come out narrower than
# the pooling, by more than 20% for some cells.)
_SUBUNIT_THRESHOLD = 0.5
# The share of a Gaussian drive above the threshold: the rectified subunit's linear gain.
_SUBUNIT_GAIN = 0.5 * math.erfc(_SUBUNIT_THRESHOLD / math.sqrt(2.0))
# The movies stand for what a display shows, bounded by its black and white: clipped at this many
# stds (then z-scored again, so the bounds sit near ±2.1). Unbounded Gaussian movies reach ±5 std,
# and an in-silico stimulus at "full contrast" (the training range) would then drive the cells far
# beyond anything they were trained on.
_DISPLAY_LIMIT = 2.0
_DS_SPEED = (0.1, 0.6)  # pixels per frame that the centre moves over the filter's lags
_OS_ELONGATION = (1.4, 1.8)  # major/minor sigma = elongation**2
_TRUTH_BAR = {"width_px": 3.0, "speed_px_per_frame": 0.5, "contrast": 2.0}
# Keys that let `true_rates` run the cells again on any movie.
_MODEL_KEYS = (
    "spacetime_rf",
    "colour_weights",
    "polarity",
    "temporal_filter",
    "subunit_fields",
    "subunit_weights",
    "subunit_std",
    "subunit_offset",
    "drive_scale",
    "gain",
    "threshold",
    "rate_scale",
)


def check_options(
    path: str | os.PathLike[str], classes: Sequence[str], pixel_size_um: float | None, motion: float
) -> tuple[str, ...]:
    """The requested classes, in order and without repeats; a DataError for anything unusable."""
    if isinstance(classes, str):
        classes = [part.strip() for part in classes.split(",") if part.strip()]
    unknown = [name for name in classes if name not in CELL_CLASSES]
    if unknown:
        raise DataError(
            path,
            None,
            f"cell_classes has {', '.join(map(repr, unknown))}",
            f"use some of {', '.join(CELL_CLASSES)} (e.g. cell_classes=[direction,orientation,subunit])",
        )
    if pixel_size_um is not None and not float(pixel_size_um) > 0:
        raise DataError(path, None, f"pixel_size_um is {pixel_size_um}", "use a positive size in µm, or null")
    if not float(motion) >= 0:
        raise DataError(
            path, None, f"motion is {motion}", "use a speed >= 0 in pixels per frame (0: no motion)"
        )
    return tuple(dict.fromkeys(classes))


def add_motion(rng: np.random.Generator, movie: np.ndarray, speed: float) -> np.ndarray:
    """Mix a drifting 1/f texture into `movie` (C, T, H, W), half the variance each.

    The texture moves rigidly at about `speed` pixels per frame, in a direction that changes at
    random times (about every 0.5 s at 30 Hz), like scenes sweeping over the retina; the result is
    again zero mean and unit std per channel. Motion drives direction-selective cells, which the
    still, flickering noise alone drives only weakly.
    """
    colors, frames, height, width = movie.shape
    size = int(2 ** np.ceil(np.log2(2 * max(height, width))))
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    amplitude = 1.0 / np.maximum(np.sqrt(fy**2 + fx**2), 1.0 / size)
    shared = rng.standard_normal((size, size))
    spectra = [
        np.fft.fft2(0.6 * shared + 0.8 * rng.standard_normal((size, size))) * amplitude for _ in range(colors)
    ]
    velocity = np.empty((frames, 2))
    t = 0
    while t < frames:
        length = max(1, int(rng.exponential(15.0)))
        angle = rng.uniform(0, 2 * np.pi)
        step = speed * rng.uniform(0.5, 1.5)
        velocity[t : t + length] = step * np.array([-np.sin(angle), np.cos(angle)])  # (row, col)
        t += length
    offset = np.cumsum(velocity, axis=0)
    texture = np.empty_like(movie)
    for k in range(frames):
        phase = np.exp(-2j * np.pi * (fy * offset[k, 0] + fx * offset[k, 1]))
        for c in range(colors):
            texture[c, k] = np.fft.ifft2(spectra[c] * phase).real[:height, :width]
    texture -= texture.mean(axis=(1, 2, 3), keepdims=True)
    texture /= texture.std(axis=(1, 2, 3), keepdims=True)
    mixed = np.sqrt(0.5) * movie + np.sqrt(0.5) * texture
    mixed -= mixed.mean(axis=(1, 2, 3), keepdims=True)
    mixed /= mixed.std(axis=(1, 2, 3), keepdims=True)
    return mixed.astype(np.float32)


def display_bounds(movie: np.ndarray) -> np.ndarray:
    """`movie` (C, T, H, W), zero mean and unit std per channel, clipped to a display's black and
    white (`_DISPLAY_LIMIT` stds) and z-scored again."""
    clipped = np.clip(movie, -_DISPLAY_LIMIT, _DISPLAY_LIMIT)
    clipped = clipped - clipped.mean(axis=(1, 2, 3), keepdims=True)
    return (clipped / clipped.std(axis=(1, 2, 3), keepdims=True)).astype(np.float32)


def population(
    rng: np.random.Generator,
    n: int,
    colors: int,
    height: int,
    width: int,
    frame_rate_hz: float,
    filter_frames: int,
    *,
    classes: Sequence[str],
    calibration: np.ndarray,
    filter_ms: float | None = None,
    centre_sigma: tuple[float, float] = (1.3, 2.0),
    surround_strength: tuple[float, float] = (0.3, 0.6),
    polarity: str = "mixed",
) -> dict[str, Any]:
    """`n` cells, the classes `linear` + `classes` in (near) equal numbers, in random order.

    `calibration` (C, T, H, W) is the training movie: each subunit's output is scaled by its std
    on it, and the pooled subunit output made zero-mean on it, so the rectification sits where it
    bites. Direction-selective cells are transient (type "ON DS"/"OFF DS"): their biphasic filter's
    two lobes sit at different places along the preferred direction, so a stimulus moving that way
    meets the excitatory lobe where the inhibitory one has just been; moving the other way, they
    cancel. Direction- and orientation-selective cells fire sparsely, as real ones do: their
    threshold is 1 (orientation) or 1.5 (direction) std higher and direction cells' gain steeper.
    """
    kinds = ("linear", *(name for name in classes if name != "linear"))
    kind = np.array(kinds)[rng.permutation(np.arange(n) % len(kinds))]
    types = rng.integers(0, len(_KINETIC_TYPES), n)
    if polarity != "mixed":
        types = types % 2 + (0 if polarity == "on" else 2)
    types = np.where(kind == "direction", types - types % 2 + 1, types)  # DS cells are transient
    sign = np.where(types < 2, 1.0, -1.0)
    transient = types % 2 == 1
    margin = 3.0
    position = np.stack(
        [rng.uniform(margin, height - 1 - margin, n), rng.uniform(margin, width - 1 - margin, n)], axis=1
    )
    sigma = rng.uniform(*centre_sigma, n)
    surround = rng.uniform(*surround_strength, n)
    temporal = _temporal_filters(rng, n, frame_rate_hz, filter_frames, filter_ms, transient)
    preference = rng.integers(0, colors + 1, n)
    colour = np.full((n, colors), 0.3)
    colour[np.arange(n)[preference < colors], preference[preference < colors]] = 1.0
    colour[preference == colors] = 0.7
    names = ["green", "uv"] if colors == 2 else [f"channel_{c}" for c in range(colors)]
    direction = rng.uniform(0.0, 360.0, n)
    speed = np.where(kind == "direction", rng.uniform(*_DS_SPEED, n), 0.0)
    elongation = np.where(kind == "orientation", rng.uniform(*_OS_ELONGATION, n), 1.0)
    rf_angle = rng.uniform(0.0, 180.0, n)
    major, minor = sigma * elongation, sigma / elongation

    yy, xx = np.mgrid[0:height, 0:width].astype(float)
    lags = np.arange(filter_frames)
    peak = np.abs(temporal).argmax(axis=1)
    spacetime = np.zeros((n, filter_frames, height, width))
    max_subunits = int(np.ceil(4 * centre_sigma[1] / _SUBUNIT_SPACING + 1) ** 2)
    fields = np.zeros((n, max_subunits, height, width))
    weights = np.zeros((n, max_subunits))
    for k in range(n):
        unit = np.array([-np.sin(np.radians(direction[k])), np.cos(np.radians(direction[k]))])  # (row, col)
        if kind[k] == "subunit":
            fields[k], weights[k] = _subunits(yy, xx, position[k], sigma[k], max_subunits)
            ring = _gaussian(yy, xx, position[k], _SURROUND_WIDTH * sigma[k], _SURROUND_WIDTH * sigma[k], 0.0)
            spacetime[k] = -surround[k] * temporal[k][:, None, None] * (ring / ring.sum())[None]
            continue
        for lag in lags:
            centre_at = position[k] + speed[k] * (lag - peak[k]) * unit
            spacetime[k, lag] = temporal[k, lag] * _difference_of_gaussians(
                yy, xx, centre_at, major[k], minor[k], rf_angle[k], surround[k]
            )
        spacetime[k] /= np.linalg.norm(spacetime[k])
    cells: dict[str, Any] = {
        "kind": kind,
        "spacetime_rf": spacetime.astype(np.float32),
        "temporal_filter": temporal.astype(np.float32),
        "colour_weights": colour.astype(np.float32),
        "position": position.astype(np.float32),
        "polarity": sign.astype(np.float32),
        "cell_type": [
            ("ON DS" if s > 0 else "OFF DS") if c == "direction" else _KINETIC_TYPES[t]
            for c, s, t in zip(kind, sign, types, strict=True)
        ],
        "cell_type_code": types.astype(np.int64),
        "colour_preference": [names[p] if p < colors else "all" for p in preference],
        "gain": rng.uniform(1.5, 2.5, n) + (kind == "direction"),
        "threshold": rng.uniform(-0.5, 0.5, n)
        + np.isin(kind, ("direction", "orientation"))
        + 0.5 * (kind == "direction"),
        "subunit_fields": fields.astype(np.float32),
        "subunit_weights": weights.astype(np.float32),
        "subunit_std": np.ones((n, max_subunits), np.float32),
        "subunit_offset": np.zeros(n, np.float32),
        "sigma_px": sigma,
        "sigma_major_px": major,
        "sigma_minor_px": minor,
        "rf_angle_deg": np.where(kind == "orientation", rf_angle, np.nan),
        "surround_strength": surround,
        "surround_sigma_px": _SURROUND_WIDTH * sigma,
        "ds_speed_px_per_frame": speed,
        "design_direction_deg": np.where(kind == "direction", direction, np.nan),
    }
    _calibrate_subunits(cells, calibration)
    cells["spatial_rf"] = _spatial_maps(cells, peak)
    return cells


def _spatial_maps(cells: dict[str, Any], peak: np.ndarray) -> np.ndarray:
    """(N, H, W) unit-norm spatial receptive fields at the temporal filter's peak lag; for subunit
    cells the linearised centre (each subunit's gain `_SUBUNIT_GAIN` per std) plus the surround."""
    rf = cells["spacetime_rf"]
    rows = np.arange(len(rf))
    maps = rf[rows, peak] / cells["temporal_filter"][rows, peak][:, None, None]
    linear_centre = np.einsum(
        "ns,nshw->nhw",
        _SUBUNIT_GAIN * cells["subunit_weights"] / cells["subunit_std"],
        cells["subunit_fields"],
    )
    maps = maps + linear_centre
    norms = np.linalg.norm(maps.reshape(len(rf), -1), axis=1)
    return (maps / norms[:, None, None]).astype(np.float32)


def _temporal_filters(
    rng: np.random.Generator,
    n: int,
    frame_rate_hz: float,
    filter_frames: int,
    filter_ms: float | None,
    transient: np.ndarray,
) -> np.ndarray:
    """Biphasic causal filters (N, L) of unit norm, as the linear cells of the retina have."""
    t = (np.arange(filter_frames) + 0.5) / frame_rate_hz
    tau1 = rng.uniform(0.022, 0.03, n)[:, None]
    if filter_ms is not None:
        tau1 = tau1 * (filter_ms / _DEFAULT_FILTER_MS)
    tau2 = 1.6 * tau1
    second = np.where(transient, rng.uniform(0.8, 0.95, n), rng.uniform(0.1, 0.3, n))[:, None]
    gamma1 = (t / tau1) ** 3 * np.exp(-t / tau1)
    gamma2 = (t / tau2) ** 3 * np.exp(-t / tau2)
    temporal = gamma1 / gamma1.sum(axis=1, keepdims=True) - second * gamma2 / gamma2.sum(
        axis=1, keepdims=True
    )
    return temporal / np.linalg.norm(temporal, axis=1, keepdims=True)


def _gaussian(
    yy: np.ndarray, xx: np.ndarray, centre: np.ndarray, major: float, minor: float, angle_deg: float
) -> np.ndarray:
    """A 2-D Gaussian whose `major` axis points `angle_deg` counter-clockwise from +x (row 0 up)."""
    theta = np.radians(angle_deg)
    dx, dy = xx - centre[1], -(yy - centre[0])  # y grows upwards
    along = dx * np.cos(theta) + dy * np.sin(theta)
    across = -dx * np.sin(theta) + dy * np.cos(theta)
    return np.exp(-(along**2) / (2 * major**2) - across**2 / (2 * minor**2))


def _difference_of_gaussians(
    yy: np.ndarray,
    xx: np.ndarray,
    centre: np.ndarray,
    major: float,
    minor: float,
    angle_deg: float,
    surround: float,
) -> np.ndarray:
    inner = _gaussian(yy, xx, centre, major, minor, angle_deg)
    outer = _gaussian(yy, xx, centre, _SURROUND_WIDTH * major, _SURROUND_WIDTH * minor, angle_deg)
    return inner / inner.sum() - surround * outer / outer.sum()


def _subunits(
    yy: np.ndarray, xx: np.ndarray, centre: np.ndarray, sigma: float, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Subunit fields (S, H, W), each summing to 1, on a square grid, and their pooling weights.

    The weights are a Gaussian over the subunit positions whose width, combined with the
    subunits' own, gives the cell's centre sigma; they sum to 1.
    """
    pool = np.sqrt(max(sigma**2 - _SUBUNIT_SIGMA**2, 0.25))
    reach = int(np.ceil(2 * pool / _SUBUNIT_SPACING))
    offsets = np.arange(-reach, reach + 1) * _SUBUNIT_SPACING
    grid = np.array([(centre[0] + dy, centre[1] + dx) for dy in offsets for dx in offsets])
    distance2 = ((grid - centre) ** 2).sum(axis=1)
    keep = np.argsort(distance2)[:count]
    keep = keep[distance2[keep] <= (2 * pool) ** 2]
    fields = np.zeros((count, *yy.shape))
    weights = np.zeros(count)
    for slot, index in enumerate(keep):
        field = _gaussian(yy, xx, grid[index], _SUBUNIT_SIGMA, _SUBUNIT_SIGMA, 0.0)
        fields[slot] = field / field.sum()
        weights[slot] = np.exp(-distance2[index] / (2 * pool**2))
    return fields, weights / weights.sum()


def _project(movie: np.ndarray, maps: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """(T, N, K): each cell's colour-weighted projection of every frame onto its K maps (N, K, H, W)."""
    channels, frames = movie.shape[:2]
    n, k = maps.shape[:2]
    flat_maps = maps.reshape(n * k, -1).T.astype(np.float64)  # (HW, N*K)
    out = np.zeros((frames, n, k))
    for c in range(channels):
        out += (movie[c].reshape(frames, -1).astype(np.float64) @ flat_maps).reshape(frames, n, k) * colour[
            None, :, c, None
        ]
    return out


def _subunit_signals(movie: np.ndarray, cells: dict[str, Any], rows: np.ndarray) -> np.ndarray:
    """(T, n, S) temporally filtered, polarity-signed subunit drives of the cells `rows`."""
    projected = _project(movie, cells["subunit_fields"][rows], cells["colour_weights"][rows])
    temporal = cells["temporal_filter"][rows]
    frames = movie.shape[1]
    out = np.zeros_like(projected)
    for lag in range(temporal.shape[1]):
        out[lag:] += temporal[None, :, lag, None] * projected[: frames - lag]
    return out * cells["polarity"][rows][None, :, None]


def _calibrate_subunits(cells: dict[str, Any], movie: np.ndarray) -> None:
    rows = np.flatnonzero(cells["kind"] == "subunit")
    if rows.size == 0:
        return
    signals = _subunit_signals(movie, cells, rows)
    std = signals.std(axis=0)
    std[std == 0] = 1.0
    cells["subunit_std"][rows] = std
    pooled = _pool(signals / std, cells["subunit_weights"][rows])
    cells["subunit_offset"][rows] = pooled.mean(axis=0)
    # the surround was drawn against a unit centre; the rectified centre's linear gain per std is
    # the share of the drive above the threshold
    gain = _SUBUNIT_GAIN * (cells["subunit_weights"][rows] / std).sum(axis=1)
    cells["spacetime_rf"][rows] *= gain[:, None, None, None].astype(np.float32)


def _pool(signals: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(T, n) weighted sum of the subunit drives (T, n, S), in stds, passed above the threshold."""
    return (np.maximum(signals - _SUBUNIT_THRESHOLD, 0.0) * weights[None]).sum(axis=2)


def drive(movie: np.ndarray, cells: dict[str, Any]) -> np.ndarray:
    """Linear stage plus the rectified subunits (N, T), before the output nonlinearity."""
    frames = movie.shape[1]
    rf = cells["spacetime_rf"]  # (N, L, H, W)
    projected = _project(movie, rf, cells["colour_weights"])  # (T, N, L)
    out = np.zeros((len(rf), frames))
    for lag in range(rf.shape[1]):
        out[:, lag:] += projected[: frames - lag, :, lag].T
    out *= cells["polarity"][:, None]
    rows = np.flatnonzero(np.asarray(cells["subunit_weights"]).sum(axis=1) > 0)
    if rows.size:
        signals = _subunit_signals(movie, cells, rows) / cells["subunit_std"][rows][None]
        pooled = _pool(signals, cells["subunit_weights"][rows])
        out[rows] += (pooled - cells["subunit_offset"][rows][None]).T
    return out


def rate_scales(cells: dict[str, Any], train_drive: np.ndarray, mean_rate: float) -> np.ndarray:
    """(N,) spikes per frame per unit of softplus: every cell reaches the same high rate (the 99.9th
    percentile of its rate on the training movie; refractoriness caps real cells alike), the one at
    which the linear cells fire `mean_rate` on average (median). Sparse cells (direction- and
    orientation-selective) then fire less on average, as real ones do. Scaling every cell to the same
    mean rate instead had direction-selective cells reach 5-20 times the peak rate of linear ones (up
    to 75 spikes per frame on the test movie, 350 to a bar), which no network trained here reached.
    """
    gain, threshold = cells["gain"][:, None], cells["threshold"][:, None]
    unit = np.logaddexp(0.0, gain * (train_drive - threshold))
    peak = np.percentile(unit, 99.9, axis=1)
    linear = np.asarray(cells["kind"]) == "linear"
    reference = linear if linear.any() else np.ones(len(unit), bool)
    top = mean_rate * float(np.median(peak[reference] / unit[reference].mean(axis=1)))
    return top / peak


def _rates(cells: dict[str, Any], movie: np.ndarray) -> np.ndarray:
    """True rates (N, T) in spikes per frame, from the stored parameters."""
    z = drive(movie, cells) / cells["drive_scale"][:, None]
    gain, threshold = cells["gain"][:, None], cells["threshold"][:, None]
    return cells["rate_scale"][:, None] * np.logaddexp(0.0, gain * (z - threshold))


def ground_truth(
    cells: dict[str, Any],
    drive_scale: np.ndarray,
    train_drive: np.ndarray,
    mean_rate: float,
    pixel_size_um: float | None,
    frame_rate_hz: float,
) -> dict[str, np.ndarray]:
    """What is known of each cell, for `ground_truth.h5`: the parameters that re-run it, the
    receptive-field geometry and the selectivity of its true rates to moving bars."""
    cells["drive_scale"] = np.asarray(drive_scale, np.float64).reshape(-1)
    cells["rate_scale"] = rate_scales(cells, train_drive, mean_rate)
    channels = cells["colour_weights"].shape[1]
    height, width = cells["spacetime_rf"].shape[2:]
    response = bar_responses(lambda movie: _rates(cells, movie), channels, height, width, frame_rate_hz)
    selectivity = direction_selectivity(response, np.arange(8) * 45.0)
    pixel = np.nan if pixel_size_um is None else float(pixel_size_um)
    kind = cells["kind"]
    truth = {key: np.asarray(cells[key]) for key in _MODEL_KEYS}
    truth.update(
        {
            "cell_class": np.array(kind, dtype=h5py.string_dtype()),
            "kinetics": np.array(
                ["transient" if code % 2 else "sustained" for code in cells["cell_type_code"]],
                dtype=h5py.string_dtype(),
            ),
            "rf_x_px": cells["position"][:, 1],
            "rf_y_px": cells["position"][:, 0],
            "rf_x_um": (cells["position"][:, 1] + 0.5) * pixel,
            "rf_y_um": (cells["position"][:, 0] + 0.5) * pixel,
            "sigma_px": np.sqrt(cells["sigma_major_px"] * cells["sigma_minor_px"]),
            "sigma_major_px": cells["sigma_major_px"],
            "sigma_minor_px": cells["sigma_minor_px"],
            "rf_angle_deg": cells["rf_angle_deg"],
            "surround_strength": cells["surround_strength"],
            "surround_sigma_px": cells["surround_sigma_px"],
            "ds_speed_px_per_frame": cells["ds_speed_px_per_frame"],
            "design_direction_deg": cells["design_direction_deg"],
            "bar_responses": response,
            "subunit": kind == "subunit",
            "direction_selective": kind == "direction",
            "orientation_selective": kind == "orientation",
            **selectivity,
        }
    )
    return {key: np.asarray(value) for key, value in truth.items()}


def truth_attributes(pixel_size_um: float | None) -> dict[str, Any]:
    """File attributes that say how the selectivity truth was measured."""
    attrs: dict[str, Any] = {f"truth_bar_{key}": value for key, value in _TRUTH_BAR.items()}
    attrs["truth_bar_directions_deg"] = np.arange(8) * 45.0
    if pixel_size_um is not None:
        attrs["pixel_size_um"] = float(pixel_size_um)
    return attrs


def moving_bar(
    channels: int,
    height: int,
    width: int,
    direction_deg: float,
    width_px: float,
    speed_px_per_frame: float,
    contrast: float,
    lead_frames: int = 0,
) -> np.ndarray:
    """(C, T, H, W) a bright bar of `width_px`, as long as the frame, crossing it at constant speed.

    The bar starts just outside the frame on one side and ends just outside it on the other; pixels
    covered in part get that share of the contrast. `lead_frames` of grey come first.
    """
    theta = np.radians(direction_deg)
    unit = np.array([-np.sin(theta), np.cos(theta)])  # (row, col) per unit of travel
    yy, xx = np.mgrid[0:height, 0:width].astype(float)
    along = (yy - (height - 1) / 2) * unit[0] + (xx - (width - 1) / 2) * unit[1]
    reach = np.abs(along).max() + width_px / 2 + 1
    steps = int(np.ceil(2 * reach / speed_px_per_frame)) + 1
    centres = -reach + speed_px_per_frame * np.arange(steps)
    cover = np.clip(width_px / 2 + 0.5 - np.abs(along[None] - centres[:, None, None]), 0.0, 1.0)
    movie = np.zeros((channels, lead_frames + steps, height, width), np.float32)
    movie[:, lead_frames:] = contrast * cover[None]
    return movie


def bar_responses(
    rates_of: Callable[[np.ndarray], np.ndarray],
    channels: int,
    height: int,
    width: int,
    frame_rate_hz: float,
) -> np.ndarray:
    """(N, 8) mean rate above the grey baseline while a bar crosses the frame, per direction."""
    lead = round(frame_rate_hz)  # one second of grey lets the filters settle
    responses = []
    for direction in np.arange(8) * 45.0:
        movie = moving_bar(
            channels,
            height,
            width,
            direction,
            _TRUTH_BAR["width_px"],
            _TRUTH_BAR["speed_px_per_frame"],
            _TRUTH_BAR["contrast"],
            lead_frames=lead,
        )
        rates = rates_of(movie)
        baseline = rates[:, lead - 1 : lead]
        responses.append(np.maximum(rates[:, lead:] - baseline, 0.0).mean(axis=1))
    return np.stack(responses, axis=1)


def direction_selectivity(responses: np.ndarray, directions_deg: np.ndarray) -> dict[str, np.ndarray]:
    """Vector-sum direction and orientation indices of (N, D) responses (0 = none, 1 = one direction)."""
    angles = np.radians(directions_deg)
    total = responses.sum(axis=1)
    total = np.where(total > 0, total, np.nan)
    first = (responses * np.exp(1j * angles)).sum(axis=1) / total
    second = (responses * np.exp(2j * angles)).sum(axis=1) / total
    return {
        "true_dsi": np.abs(first),
        "preferred_direction_deg": np.degrees(np.angle(first)) % 360.0,
        "true_osi": np.abs(second),
        "preferred_orientation_deg": (np.degrees(np.angle(second)) / 2.0) % 180.0,
    }


def true_rates(path: str | os.PathLike[str], session: str, movie: np.ndarray) -> np.ndarray:
    """The true rates (N, T) in spikes per frame of `session`'s cells to `movie` (C, T, H, W).

    `movie` is in the units of the dataset's stimuli (zero mean, unit std per channel), the same
    height, width and channels. Works on retinas written with `cell_classes`, whose truth keeps
    every parameter; the first frames (the filter length) see grey before the movie starts.
    """
    file = Path(path).expanduser()
    if file.is_dir():
        file = file / "ground_truth" / "ground_truth.h5"
    with h5py.File(file, "r") as handle:
        if session not in handle:
            raise DataError(file, session, "no such session", f"use one of {', '.join(handle)}")
        group = handle[session]
        missing = [key for key in _MODEL_KEYS if key not in group]
        if missing:
            raise DataError(
                file,
                session,
                "this retina does not keep the parameters to re-run its cells",
                "write it with cell_classes (e.g. --option cell_classes=[direction,orientation,subunit])",
            )
        cells = {key: group[key][()] for key in _MODEL_KEYS}
    shape = cells["spacetime_rf"].shape
    expected = (cells["colour_weights"].shape[1], shape[2], shape[3])
    movie = np.asarray(movie, np.float32)
    if movie.ndim != 4 or (movie.shape[0], *movie.shape[2:]) != expected:
        raise ValueError(f"movie must be (C, T, H, W) with (C, H, W) = {expected}; got {movie.shape}")
    return _rates(cells, movie)
