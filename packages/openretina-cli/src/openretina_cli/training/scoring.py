"""Whole-split scores: per-neuron correlations accumulated over every batch of a split.

Each session has its own `openretina_models.CorrelationAccumulator`; their states are summed
across processes before anything is computed, so a multi-process run reports the same numbers a
single process would. Scores are named ``<split>/correlation`` (all neurons of all sessions) and
``<split>/<session>/correlation``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from openretina_models.metrics import CorrelationAccumulator

from openretina_cli.evaluation.per_neuron import nanmean


class SplitScorer:
    """Per-session correlation accumulators for one split (validation clips or one test stimulus)."""

    def __init__(self, n_neurons: Mapping[str, int] | None = None) -> None:
        self.accumulators: dict[str, CorrelationAccumulator] = {}
        for session, n in (n_neurons or {}).items():
            self.accumulators[session] = CorrelationAccumulator(n)

    def update(self, session: str, prediction: torch.Tensor, target: torch.Tensor) -> None:
        accumulator = self.accumulators.get(session)
        if accumulator is None:
            accumulator = self.accumulators[session] = CorrelationAccumulator()
        accumulator.update(prediction, target)

    def all_reduce(self, strategy: Any) -> None:
        """Sum the statistics of every process (a no-op in a single process)."""
        if getattr(strategy, "world_size", 1) <= 1:
            return
        # Ranks may have seen different sessions: agree on one list first, so every rank takes
        # part in the same reductions (zeros where it saw none of a session's clips).
        sizes = {name: acc.n_neurons for name, acc in self.accumulators.items() if acc.n_neurons is not None}
        everyone: list[dict[str, int]] = [{} for _ in range(strategy.world_size)]
        torch.distributed.all_gather_object(everyone, sizes)
        union = {name: n for ranks_sizes in everyone for name, n in ranks_sizes.items()}
        device = strategy.root_device
        for session in sorted(union):
            accumulator = self.accumulators.setdefault(session, CorrelationAccumulator())
            if accumulator.state is None:
                accumulator.state = torch.zeros(
                    len(CorrelationAccumulator.FIELDS), union[session], dtype=torch.float64
                )
            accumulator.state = strategy.reduce(accumulator.state.to(device), reduce_op="sum")

    def per_neuron(self) -> dict[str, np.ndarray]:
        """Per-neuron correlations by session (NaN for neurons without a defined correlation)."""
        return {
            session: accumulator.compute().cpu().numpy()
            for session, accumulator in sorted(self.accumulators.items())
            if accumulator.state is not None
        }

    def summary(self, prefix: str) -> dict[str, float]:
        per_neuron = self.per_neuron()
        if not per_neuron:
            return {}
        scores = {f"{prefix}/correlation": nanmean(np.concatenate(list(per_neuron.values())))}
        for session, values in per_neuron.items():
            scores[f"{prefix}/{session}/correlation"] = nanmean(values)
        return scores
