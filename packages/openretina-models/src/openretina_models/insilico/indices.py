"""The indices retina labs compute from responses to standard stimuli, on plain arrays.

Every function takes responses of many neurons at once (the neuron axis first) and returns one
value per neuron, so it works on a model's responses and on recorded ones alike. Responses are
firing rates (or any signal where larger means more activity); where an index needs non-negative
responses it says so, and callers pass responses relative to the neuron's baseline, rectified.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DirectionTuning",
    "direction_p_value",
    "direction_tuning",
    "mostly_excited",
    "on_off_index",
    "sweep_amplitudes",
    "transience_index",
]

_EPS = 1e-12


@dataclass
class DirectionTuning:
    """Vector-sum direction and orientation tuning, one value per neuron."""

    dsi: np.ndarray  # |Σ r e^{iθ}| / Σ r, in [0, 1]
    osi: np.ndarray  # |Σ r e^{2iθ}| / Σ r, in [0, 1]
    preferred_direction_deg: np.ndarray  # angle of Σ r e^{iθ}, in [0, 360)
    preferred_orientation_deg: np.ndarray  # half the angle of Σ r e^{2iθ}, in [0, 180)


def direction_tuning(responses: np.ndarray, directions_deg: Sequence[float]) -> DirectionTuning:
    """Tuning of `responses` `(N, D)` (non-negative, e.g. peak response above baseline, rectified) to
    motion in `directions_deg` `(D,)`. A neuron with no response has DSI and OSI 0 and NaN angles."""
    r = np.asarray(responses, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] != len(directions_deg):
        raise ValueError(f"responses must be (neurons, {len(directions_deg)} directions), got {r.shape}.")
    if (r < 0).any():
        raise ValueError(
            "Direction tuning needs non-negative responses: subtract the baseline and rectify first."
        )
    theta = np.deg2rad(np.asarray(directions_deg, dtype=np.float64))
    total = r.sum(axis=1)
    first = r @ np.exp(1j * theta)
    second = r @ np.exp(2j * theta)
    silent = total <= _EPS
    safe = np.where(silent, 1.0, total)
    dsi = np.where(silent, 0.0, np.abs(first) / safe)
    osi = np.where(silent, 0.0, np.abs(second) / safe)
    direction = np.where(silent, np.nan, np.rad2deg(np.angle(first)) % 360.0)
    orientation = np.where(silent, np.nan, (np.rad2deg(np.angle(second)) % 360.0) / 2.0)
    return DirectionTuning(dsi, osi, direction, orientation)


def mostly_excited(change: np.ndarray) -> np.ndarray:
    """Per neuron, whether a stimulus raised its response more than it lowered it: `change` `(N, T)`
    is the response minus the baseline (any further axes flattened into T), summed above and below.

    Direction and orientation selectivity describe how motion excites a cell. A neuron that moving
    bars mostly suppress (an OFF cell whose rate falls while a bright bar covers its centre) rises
    above its baseline only through its surround and its rebound after the bar, and the direction
    tuning of those small side effects says nothing about its motion preference (in a trained model
    they gave OFF sustained cells DSIs up to 0.22, where the true cells had at most 0.04). Such a
    neuron should be tuned like one the stimulus does not drive: DSI and OSI 0, no preference."""
    x = np.asarray(change, dtype=np.float64).reshape(len(change), -1)
    return np.clip(x, 0.0, None).sum(axis=1) >= np.clip(-x, 0.0, None).sum(axis=1)


def direction_p_value(
    responses: np.ndarray,
    directions_deg: Sequence[float],
    *,
    permutations: int = 1000,
    seed: int = 0,
    statistic: str = "dsi",
) -> np.ndarray:
    """Shuffle test of direction (or, with `statistic="osi"`, orientation) selectivity: the fraction of
    random relabellings of the directions whose index reaches the observed one, counted as
    `(1 + hits) / (1 + permutations)`. The same permutations serve every neuron."""
    r = np.asarray(responses, dtype=np.float64)
    observed = getattr(direction_tuning(r, directions_deg), statistic)
    rng = np.random.default_rng(seed)
    order = np.argsort(rng.random((permutations, r.shape[1])), axis=1)  # (P, D)
    theta = np.deg2rad(np.asarray(directions_deg, dtype=np.float64))
    harmonic = 1.0 if statistic == "dsi" else 2.0
    phases = np.exp(1j * harmonic * theta)[order]  # (P, D): each permutation's directions
    total = np.maximum(r.sum(axis=1), _EPS)
    shuffled = np.abs(r @ phases.T) / total[:, None]  # (N, P)
    hits = (shuffled >= observed[:, None] - 1e-12).sum(axis=1)
    return (1.0 + hits) / (1.0 + permutations)


def on_off_index(on: np.ndarray, off: np.ndarray) -> np.ndarray:
    """(on - off) / (on + off) from non-negative responses to light increments and decrements:
    +1 pure ON, -1 pure OFF, 0 ON-OFF; NaN when the neuron responds to neither."""
    on_r, off_r = np.asarray(on, dtype=np.float64), np.asarray(off, dtype=np.float64)
    if (on_r < 0).any() or (off_r < 0).any():
        raise ValueError("The ON-OFF index needs non-negative responses: subtract the baseline and rectify.")
    total = on_r + off_r
    return np.where(total > _EPS, (on_r - off_r) / np.where(total > _EPS, total, 1.0), np.nan)


def transience_index(traces: np.ndarray, baseline: np.ndarray | float = 0.0) -> np.ndarray:
    """1 - sustained / peak over a step window `(N, T)`: the peak response above baseline against the
    mean response above baseline over the window's second half. 0 for a sustained response that
    stays at its peak, near 1 for one that returns to baseline; NaN without a response."""
    x = np.asarray(traces, dtype=np.float64) - np.asarray(baseline, dtype=np.float64).reshape(-1, 1)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"traces must be (neurons, at least 2 frames), got {x.shape}.")
    peak = x.max(axis=1)
    late = x[:, x.shape[1] // 2 :].mean(axis=1)
    ok = peak > _EPS
    return np.where(ok, np.clip(1.0 - late / np.where(ok, peak, 1.0), 0.0, 1.0), np.nan)


def sweep_amplitudes(traces: np.ndarray, bins: int) -> np.ndarray:
    """How strongly each neuron follows a sweep: the standard deviation of its trace `(N, T)` in each of
    `bins` equal pieces of time `(N, bins)`."""
    x = np.asarray(traces, dtype=np.float64)
    edges = np.linspace(0, x.shape[1], bins + 1).round().astype(int)
    if np.diff(edges).min() < 2:
        raise ValueError(f"A sweep of {x.shape[1]} frames is too short for {bins} bins of 2 frames or more.")
    return np.stack([x[:, a:b].std(axis=1) for a, b in itertools.pairwise(edges)], axis=1)


def grid_preference(magnitude: np.ndarray, values: Sequence[float], axis: int) -> np.ndarray:
    """The value along `axis` of `magnitude` `(N, ...)` where each neuron's response is largest."""
    m = np.asarray(magnitude, dtype=np.float64)
    other = tuple(i for i in range(1, m.ndim) if i != axis)
    profile = m.max(axis=other) if other else m
    return np.asarray(values, dtype=np.float64)[np.argmax(profile, axis=1)]


def circular_difference_deg(a: np.ndarray, b: np.ndarray, period: float = 360.0) -> np.ndarray:
    """The smallest absolute angle between `a` and `b` (degrees), for a given period."""
    d = (np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) % period
    return np.minimum(d, period - d)


def conditions_grid(
    conditions: Sequence[Mapping[str, object]], keys: Sequence[str]
) -> tuple[list[list[float]], np.ndarray]:
    """The distinct values of each key in `conditions` (sorted) and, per condition, its index in that grid."""
    axes = [sorted({float(c[k]) for c in conditions}) for k in keys]  # type: ignore[arg-type]
    index = np.array(
        [[axes[j].index(float(c[k])) for j, k in enumerate(keys)] for c in conditions],  # type: ignore[arg-type]
        dtype=np.int64,
    )
    return axes, index


def nan_if(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = np.asarray(values, dtype=np.float64).copy()
    out[mask] = math.nan
    return out
