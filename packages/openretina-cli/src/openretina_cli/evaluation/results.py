"""What an evaluation found, as plain data: per split and session, the per-neuron scores and the
aligned traces. Kept apart from `per_neuron` (which runs the model) so that a process that only
draws the report's figures can receive these without importing torch (issue 24).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

VALIDATION = "val"
TEST = "test"


@dataclass
class SessionResult:
    """One session on one split: per-neuron metrics and the aligned traces ``(N, T')``."""

    scores: dict[str, np.ndarray]
    prediction: np.ndarray
    target: np.ndarray
    trials: np.ndarray | None = None  # (R, N, T') repeated presentations, aligned like target


@dataclass
class SplitResult:
    """The validation clips (``name == "val"``) or one test stimulus (``name`` = stimulus)."""

    name: str
    sessions: dict[str, SessionResult] = field(default_factory=dict)

    @property
    def is_test(self) -> bool:
        return self.name != VALIDATION

    @property
    def key(self) -> str:
        """The prefix of this split's scores: ``val`` or ``test/<stimulus>``."""
        return VALIDATION if not self.is_test else f"{TEST}/{self.name}"


@dataclass
class Evaluation:
    splits: list[SplitResult]
    warmup_frames: int
    truth: Any = None  # a simulated retina's ground truth (true receptive-field centres for figures)

    def split(self, key: str) -> SplitResult | None:
        return next((split for split in self.splits if split.key == key), None)

    @property
    def test_splits(self) -> list[SplitResult]:
        return [split for split in self.splits if split.is_test]
