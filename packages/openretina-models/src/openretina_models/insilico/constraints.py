"""What keeps optimised stimuli plausible: applied to every stimulus after every optimiser step.

Each constraint acts on each stimulus of a batch `(B, C, T, H, W)` separately. `apply_constraints`
runs the filters (smoothing, blur) first and the projections (L2 norm, value range) last, so the
norm and the range hold exactly afterwards: shrinking towards zero keeps a stimulus inside a range
that contains zero, and clamping only shrinks the norm further. That is why ranges must contain 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

__all__ = [
    "Constraint",
    "L2Norm",
    "SpatialBlur",
    "TemporalSmoothing",
    "ValueRange",
    "apply_constraints",
]


class Constraint:
    """Changes stimuli `(B, C, T, H, W)` in place; `order` places filters before projections."""

    order = 0

    def __call__(self, stimuli: torch.Tensor) -> None:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """JSON-friendly settings, for the record of an optimisation."""
        raise NotImplementedError


def apply_constraints(stimuli: torch.Tensor, constraints: Sequence[Constraint]) -> None:
    """Apply `constraints` in place: filters first, then the L2 norm, then the value range."""
    with torch.no_grad():
        for constraint in sorted(constraints, key=lambda c: c.order):
            constraint(stimuli)


def _gaussian(sigma: float, what: str) -> torch.Tensor:
    if not sigma > 0:
        raise ValueError(f"The {what} sigma must be positive, got {sigma}.")
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    # A sigma so small that 2 sigma^2 underflows is no filter at all: keep the centre, not 0/0.
    kernel = torch.where(x == 0, 1.0, torch.exp(-(x**2) / (2 * sigma**2)))
    return kernel / kernel.sum()


def _filter_axis(stimuli: torch.Tensor, kernel: torch.Tensor, axis: int) -> None:
    """Convolve every stimulus along `axis` (2: time, 3: height, 4: width), replicating the edges."""
    moved = stimuli.movedim(axis, -1)
    shape = moved.shape
    rows = moved.reshape(-1, 1, shape[-1])
    radius = len(kernel) // 2
    padded = F.pad(rows, (radius, radius), mode="replicate")
    smoothed = F.conv1d(padded, kernel.to(stimuli)[None, None])
    stimuli.copy_(smoothed.reshape(shape).movedim(-1, axis))


class TemporalSmoothing(Constraint):
    """A Gaussian filter along time (`sigma` in frames): removes flicker the retina cannot follow."""

    def __init__(self, sigma_frames: float) -> None:
        self.sigma = float(sigma_frames)
        self.kernel = _gaussian(self.sigma, "temporal smoothing")

    def __call__(self, stimuli: torch.Tensor) -> None:
        _filter_axis(stimuli, self.kernel, 2)

    def describe(self) -> dict[str, Any]:
        return {"temporal_smoothing_sigma_frames": self.sigma}


class SpatialBlur(Constraint):
    """A Gaussian filter over height and width (`sigma` in pixels)."""

    def __init__(self, sigma_pixels: float) -> None:
        self.sigma = float(sigma_pixels)
        self.kernel = _gaussian(self.sigma, "spatial blur")

    def __call__(self, stimuli: torch.Tensor) -> None:
        _filter_axis(stimuli, self.kernel, 3)
        _filter_axis(stimuli, self.kernel, 4)

    def describe(self) -> dict[str, Any]:
        return {"spatial_blur_sigma_pixels": self.sigma}


class L2Norm(Constraint):
    """Each stimulus' L2 norm (over channels, time and space jointly) is at most `max_norm`."""

    order = 1

    def __init__(self, max_norm: float) -> None:
        if not max_norm > 0:
            raise ValueError(f"The norm must be positive, got {max_norm}; use e.g. --norm 10.")
        self.max_norm = float(max_norm)

    def __call__(self, stimuli: torch.Tensor) -> None:
        norms = stimuli.flatten(1).norm(dim=1)
        factor = torch.clamp(self.max_norm / norms.clamp_min(1e-12), max=1.0)
        stimuli.mul_(factor.view(-1, 1, 1, 1, 1))

    def describe(self) -> dict[str, Any]:
        return {"max_norm": self.max_norm}


class ValueRange(Constraint):
    """Each channel's values stay within `[low[c], high[c]]` (a single number applies to all).

    Each range must contain 0 (the blank stimulus), so that the norm constraint cannot push a
    stimulus out of it.
    """

    order = 2

    def __init__(self, low: float | Sequence[float], high: float | Sequence[float]) -> None:
        lows = [float(v) for v in (low if isinstance(low, Sequence) else [low])]
        highs = [float(v) for v in (high if isinstance(high, Sequence) else [high])]
        if len(lows) != len(highs) and 1 not in (len(lows), len(highs)):
            raise ValueError(
                f"{len(lows)} lower bounds but {len(highs)} upper bounds; give one pair per channel."
            )
        count = max(len(lows), len(highs))
        lows, highs = lows * (count // len(lows)), highs * (count // len(highs))
        for channel, (a, b) in enumerate(zip(lows, highs, strict=True)):
            if not (math.isfinite(a) and math.isfinite(b)):
                raise ValueError(f"The range of channel {channel} ({a}, {b}) must be finite numbers.")
            if a > b:
                raise ValueError(f"The range of channel {channel} has min {a} > max {b}; swap them.")
            if not a <= 0 <= b:
                raise ValueError(
                    f"The range of channel {channel} ({a}, {b}) excludes 0, the blank stimulus; "
                    "use a range with min <= 0 <= max (in the model's normalised units)."
                )
        self.low, self.high = lows, highs

    def check_channels(self, channels: int) -> None:
        if len(self.low) not in (1, channels):
            raise ValueError(
                f"{len(self.low)} ranges for a {channels}-channel stimulus; give 1 or {channels}."
            )

    def __call__(self, stimuli: torch.Tensor) -> None:
        self.check_channels(stimuli.shape[1])
        shape = (1, -1, 1, 1, 1)
        low = torch.tensor(self.low, dtype=stimuli.dtype, device=stimuli.device).view(shape)
        high = torch.tensor(self.high, dtype=stimuli.dtype, device=stimuli.device).view(shape)
        torch.clamp(stimuli, low, high, out=stimuli)

    def describe(self) -> dict[str, Any]:
        return {"range_min": list(self.low), "range_max": list(self.high)}
