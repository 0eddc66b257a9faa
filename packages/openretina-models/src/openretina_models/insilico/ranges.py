"""Default value ranges for optimised stimuli: what the retina was shown during training.

Models trained with openretina-cli store the training movie's per-channel minimum and maximum, in
the model's normalised units, as `data_info["stimulus_range"] = {"min": [...], "max": [...]}`.
Older models lack it; they get `±DEFAULT_RANGE` normalised units (three standard deviations of
the training movie when it was z-scored) and a note saying so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["DEFAULT_RANGE", "default_ranges"]

DEFAULT_RANGE = 3.0


def default_ranges(
    data_info: Mapping[str, Any] | None, channels: int
) -> tuple[list[float], list[float], str | None]:
    """`(low, high, note)` per channel; `note` is None when the model's own statistics were used.

    Each range is widened to contain 0 (the blank stimulus) if the stored one does not.
    """
    stored = (data_info or {}).get("stimulus_range") or {}
    low, high = stored.get("min"), stored.get("max")
    if low is None or high is None:
        note = (
            f"This model stores no training stimulus range (it predates it); using ±{DEFAULT_RANGE:g} "
            "normalised units per channel. Set the ranges explicitly to change them."
        )
        return [-DEFAULT_RANGE] * channels, [DEFAULT_RANGE] * channels, note
    lows, highs = [float(v) for v in low], [float(v) for v in high]
    if len(lows) == 1:
        lows, highs = lows * channels, highs * channels
    if len(lows) != channels or len(highs) != channels:
        raise ValueError(
            f"data_info's stimulus_range has {len(lows)} minima and {len(highs)} maxima for a "
            f"{channels}-channel model; the model's metadata is inconsistent."
        )
    note = None
    if any(v > 0 for v in lows) or any(v < 0 for v in highs):
        note = "The training stimulus range excludes 0 in some channel; widened to include it."
    return [min(v, 0.0) for v in lows], [max(v, 0.0) for v in highs], note
