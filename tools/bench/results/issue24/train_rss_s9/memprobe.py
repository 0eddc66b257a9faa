"""The probe callback of ab.sh: CPU seconds of every training step, written at the end of fit."""

import json
import os
import time

from lightning.pytorch.callbacks import Callback


class StepCPU(Callback):
    """Process CPU seconds from each training batch's start to its end (all threads)."""

    def __init__(self) -> None:
        self.steps: list[float] = []
        self.started = 0.0

    def on_train_batch_start(self, trainer, module, batch, index) -> None:
        self.started = time.process_time()

    def on_train_batch_end(self, trainer, module, outputs, batch, index) -> None:
        self.steps.append(time.process_time() - self.started)

    def on_fit_end(self, trainer, module) -> None:
        with open(os.environ.get("STEPCPU_OUT", "stepcpu.json"), "w") as handle:
            json.dump(self.steps, handle)
