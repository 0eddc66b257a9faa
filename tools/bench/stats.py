"""Summary statistics for paired, interleaved benchmark runs.

Runs alternate A B A B …; pair i is (ours[i], peer[i]), taken back to back so both saw the same
machine state. Every figure we publish is a median over pairs with its min–max — never one run.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Summary:
    """Median and range of one metric over repeated runs (NaN when nothing was measured)."""

    median: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def summarize(values: Sequence[float | None]) -> Summary:
    """Median, min and max of the finite values; missing or non-finite runs are left out."""
    good = _finite(values)
    if not good:
        return Summary(math.nan, math.nan, math.nan, 0)
    return Summary(statistics.median(good), min(good), max(good), len(good))


def pair_ratios(ours: Sequence[float | None], peer: Sequence[float | None]) -> list[float | None]:
    """ours[i] / peer[i] for each pair; None where either side is missing, non-finite or the peer is 0."""
    if len(ours) != len(peer):
        raise ValueError(f"pairs need equal run counts: ours has {len(ours)}, peer has {len(peer)}")
    ratios: list[float | None] = []
    for a, b in zip(ours, peer, strict=True):
        if a is None or b is None or not math.isfinite(a) or not math.isfinite(b) or b == 0:
            ratios.append(None)
        else:
            ratios.append(a / b)
    return ratios


def interleaved_order(pairs: int, first: str = "ours", second: str = "peer") -> list[tuple[int, str]]:
    """The run order A B A B …: (pair index, tool) for `pairs` pairs, strictly alternating."""
    if pairs < 1:
        raise ValueError(f"--pairs must be at least 1, got {pairs}")
    return [(i, tool) for i in range(pairs) for tool in (first, second)]


def target_met(ratio: Summary, *, at_most: float | None = None, at_least: float | None = None) -> bool | None:
    """Whether the median ratio meets a target; None when no ratio was measured."""
    if ratio.n == 0:
        return None
    if at_most is not None and ratio.median > at_most:
        return False
    return not (at_least is not None and ratio.median < at_least)
