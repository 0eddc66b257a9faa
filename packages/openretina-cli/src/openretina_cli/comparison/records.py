"""What the records of two runs say about them: whether they saw the same data, and their scores
under the names a training run's results.json uses (shared by `compare` and `ensemble`)."""

from __future__ import annotations

import json
import math
from typing import Any


def data_difference(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """The first way two data_info records differ, in words; None when they describe the same data."""
    if list(a.get("input_shape") or []) != list(b.get("input_shape") or []):
        return f"frames of (channels, height, width) {b.get('input_shape')} instead of {a.get('input_shape')}"
    sessions_a, sessions_b = a["sessions"], b["sessions"]
    if sorted(sessions_a) != sorted(sessions_b):
        return f"sessions {sorted(sessions_b)} instead of {sorted(sessions_a)}"
    for name in sorted(sessions_a):
        ids_a = sessions_a[name].get("neuron_ids")
        ids_b = sessions_b[name].get("neuron_ids")
        if sessions_a[name].get("n_neurons") != sessions_b[name].get("n_neurons") or ids_a != ids_b:
            return (
                f"session {name!r} has {sessions_b[name].get('n_neurons')} neurons "
                f"(ids {_short(ids_b)}) instead of {sessions_a[name].get('n_neurons')} (ids {_short(ids_a)})"
            )
    for name in sorted(sessions_a):
        if sessions_a[name].get("metadata") != sessions_b[name].get("metadata"):
            return f"session {name!r} has other per-neuron metadata (cell types, positions...)"
    for key, what in (
        ("train_stimuli", "training stimuli"),
        ("test_stimuli", "test stimuli"),
        ("frame_rate_hz", "frame rate"),
        ("stimulus_normalisation", "stimulus normalisation (the movies differ)"),
        ("stimulus_range", "stimulus range (the movies differ)"),
        ("response_normalisation", "response normalisation"),
    ):
        if key in a and key in b and a[key] != b[key]:
            return f"other {what}: {_short(b[key])} instead of {_short(a[key])}"
    return None


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def metrics_from_summary(summary: dict[str, Any]) -> dict[str, float]:
    """The metric names a training run's results.json uses, from an evaluation summary:
    ``val/correlation``, ``test/<metric>``, ``test/<stimulus>/<metric>`` and, where the data has a
    ground truth, ``test/<stimulus>/fraction_ceiling`` (correlation over ceiling correlation)."""
    metrics: dict[str, float] = {}
    for split, block in summary.get("splits", {}).items():
        means = {name: value.get("mean") for name, value in block.get("metrics", {}).items()}
        for name, value in means.items():
            if isinstance(value, int | float) and math.isfinite(value):
                metrics[f"{split}/{name}"] = float(value)
        correlation, ceiling = means.get("correlation"), means.get("ceiling_correlation")
        if (
            split.startswith("test/")
            and isinstance(correlation, float)
            and isinstance(ceiling, float)
            and ceiling
        ):
            metrics[f"{split}/fraction_ceiling"] = correlation / ceiling
    return metrics
