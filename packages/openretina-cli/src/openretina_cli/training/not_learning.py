"""A run whose validation correlation stays near zero says so, once, instead of training on quietly.

A model that cannot learn (responses shifted against the stimulus, a learning rate that diverges or
stalls, receptive fields far smaller than the readout's initial reach) still trains to the end and
reports a low number. This callback names the likely causes after the first few epochs.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from lightning.pytorch.callbacks import Callback


def not_learning_message(monitor: str, threshold: float, epochs: int, best: float) -> str:
    """The one line printed when `monitor` stayed below `threshold` for the first `epochs` epochs."""
    return (
        f"{monitor} stayed below {threshold:g} for the first {epochs} epochs (best {best:.3f}): the model is "
        "not learning. Likely causes: stimulus and responses misaligned in time (check frame counts and "
        "offsets; check_stimuli_responses_match=true fails on a length mismatch), a learning rate too high "
        "or too low (try optimizer.lr=0.003 or optimizer.lr=0.03), or receptive fields smaller than the "
        "readout can find (try model.readout_init_sigma=0.1, model.spatial_kernel_sizes with smaller "
        "kernels, model.pooling=1). Check the data with `openretina check-data DATA_DIR`."
    )


def print_warning(message: str) -> None:
    """One warning line on stderr, flushed so it lands between the epoch lines."""
    sys.stderr.write(f"Warning: {message}\n")
    sys.stderr.flush()


class NotLearningWarning(Callback):
    """Print one warning when `monitor` is below `threshold` after each of the first `epochs` epochs.

    Only the main process prints; the sanity-check validation before training does not count.
    """

    def __init__(self, monitor: str = "val/correlation", threshold: float = 0.05, epochs: int = 3) -> None:
        if epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {epochs}.")
        self.monitor = monitor
        self.threshold = float(threshold)
        self.epochs = int(epochs)
        self.seen: list[float] = []
        self.warned = False

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking or self.warned or len(self.seen) >= self.epochs:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        score = float(value)
        self.seen.append(score if math.isfinite(score) else 0.0)
        if len(self.seen) == self.epochs and max(self.seen) < self.threshold:
            self.warned = True
            if trainer.is_global_zero:
                print_warning(not_learning_message(self.monitor, self.threshold, self.epochs, max(self.seen)))

    def state_dict(self) -> dict[str, Any]:
        return {"seen": list(self.seen), "warned": self.warned}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.seen = [float(v) for v in state_dict.get("seen", [])]
        self.warned = bool(state_dict.get("warned", False))
