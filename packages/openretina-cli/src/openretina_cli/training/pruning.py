"""Stop a sweep trial early when its validation score per epoch is hopeless (Optuna pruning).

The callback exists only inside a shared-sweep trial (``OPENRETINA_SWEEP_TRIAL_ID`` set). After
each validation it reports ``objective_target`` (val/correlation by default) to the study and asks
the pruner; when told to prune it stops training the way early stopping does, so the run still
evaluates and saves its best checkpoint, and the study records the trial as pruned, not failed.
"""

from __future__ import annotations

import math
import os
from typing import Any

from lightning.pytorch.callbacks import Callback

from openretina_cli.sweeps.study import TRIAL_ID_ENV


class PruneHopelessTrial(Callback):
    """Report the objective per epoch; stop when the study's pruner says so (all ranks agree)."""

    def __init__(self, objective_target: str) -> None:
        self.objective_target = objective_target
        self.pruned_at_epoch: int | None = None

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        prune = False
        if trainer.is_global_zero:
            prune = self._report(trainer)
        prune = bool(trainer.strategy.broadcast(prune, src=0))
        if prune:
            self.pruned_at_epoch = int(trainer.current_epoch)
            trainer.should_stop = True

    def _report(self, trainer: Any) -> bool:
        from openretina_cli.sweeps.trial_job import current_trial

        link = current_trial()
        value = trainer.callback_metrics.get(self.objective_target)
        if link is None or value is None:
            return False
        value = float(value)
        if math.isnan(value):
            return False
        pruned = link.report(value, int(trainer.current_epoch))
        if pruned:
            print(
                f"Sweep trial {link.number} pruned after epoch {trainer.current_epoch}: "
                f"{self.objective_target}={value:.4f} is below what the pruner lets continue."
            )
        return pruned


def sweep_trial_callbacks(cfg: Any) -> list[Callback]:
    """The pruning callback inside a shared-sweep trial, nothing otherwise."""
    if not os.environ.get(TRIAL_ID_ENV):
        return []
    return [PruneHopelessTrial(str(cfg.get("objective_target", "val/correlation")))]
