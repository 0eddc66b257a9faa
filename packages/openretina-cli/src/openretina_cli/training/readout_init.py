"""Start Gaussian readout positions where each neuron's receptive field is (``readout_init: sta``).

The positions are otherwise learned from a random start near the image centre, which on large
frames with small receptive fields takes many epochs or fails (issue 14's retina zoo). One pass of
spike-triggered averaging over the training frames finds the centres first.
"""

from __future__ import annotations

import time

import numpy as np
from openretina_data import Dataset
from openretina_data.receptive_fields import locate_receptive_fields
from openretina_data.splits import Splits
from torch import nn


def place_readouts_at_receptive_fields(model: nn.Module, dataset: Dataset, splits: Splits) -> str:
    """Move every session's readout positions to its neurons' STA centres; one line saying what
    was done (how many neurons were placed, which kept their random start and why)."""
    place = getattr(model, "place_readout", None)
    if place is None:
        return (
            f"readout_init=sta does not apply to the {type(model).__name__} model; readouts start at random."
        )
    started = time.perf_counter()
    reach = int(getattr(model, "warmup_frames", 0)) + 1
    placed, total, frames = 0, 0, 0
    unplaced: list[str] = []
    for name, session in dataset.sessions.items():
        if name not in splits.sessions:
            continue
        use = splits.sessions[name].train_mask()
        found = locate_receptive_fields(session.train_movie, session.train_responses, use, reach)
        try:
            done = place(name, found.centres)
        except TypeError as ex:  # a readout without positions (e.g. factorised masks)
            return f"readout_init=sta: {ex} Readouts start at random."
        placed += int(done.sum())
        total += len(done)
        frames += found.frames_used
        missing = np.flatnonzero(~done)
        if len(missing):
            shown = ", ".join(str(i) for i in missing[:10]) + (" ..." if len(missing) > 10 else "")
            unplaced.append(f"{name}: {shown}")
    seconds = time.perf_counter() - started
    line = (
        f"Readout positions start at the receptive-field centres of {placed}/{total} neurons "
        f"(spike-triggered averages over {frames} training frames, {seconds:.1f} s)"
    )
    if unplaced:
        line += "; without a clear receptive field, these keep a random start: " + "; ".join(unplaced)
    return line + "."
