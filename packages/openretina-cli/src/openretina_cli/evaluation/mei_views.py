"""A run's MEIs (``<run>/mei/`` from ``openretina mei``) as the report shows them: per neuron the
spatial maps at the peak frame and the time course for its card, and a small tile for the grid of
all MEIs grouped by cell type."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from openretina_cli.evaluation.cards import diverging_png, mei_views


@dataclass
class MeiViews:
    source: str  # the folder, as shown on the page
    cards: dict[tuple[str, int], str] = field(default_factory=dict)  # (session, neuron index) -> HTML
    tiles: dict[tuple[str, int], str] = field(default_factory=dict)


def load_mei_views(mei_dir: Path, names: Sequence[str] | None, frame_rate: float | None) -> MeiViews | None:
    """The neuron MEIs of ``mei_dir`` (other targets, such as inner units, are left out); None when
    the folder cannot be read."""
    from safetensors.numpy import load_file

    try:
        record = json.loads((mei_dir / "meis.json").read_text())
        tensors = load_file(str(mei_dir / "meis.safetensors"))
    except (OSError, ValueError):
        return None
    views = MeiViews(source=str(mei_dir))
    for entry in record.get("targets", []):
        if "neuron" not in entry or "session" not in entry or entry.get("tensor") not in tensors:
            continue
        stimulus = np.asarray(tensors[entry["tensor"]][int(entry["index"])], dtype=np.float64)
        channels = stimulus.shape[0]
        labels = (
            list(names)
            if names is not None and len(names) == channels
            else [f"channel {c}" for c in range(channels)]
        )
        key = (str(entry["session"]), int(entry["neuron"]))
        maps, trace = mei_views(stimulus, labels, frame_rate)
        views.cards[key] = f'<div class="mei-maps">{maps}</div>{trace}'
        frame = int((stimulus**2).sum(axis=(0, 2, 3)).argmax())
        limit = float(np.abs(stimulus).max()) or 1.0
        views.tiles[key] = "".join(
            f'<img src="{diverging_png(stimulus[c, frame], limit)}" alt="{labels[c]}" title="{labels[c]}">'
            for c in range(channels)
        )
    return views
