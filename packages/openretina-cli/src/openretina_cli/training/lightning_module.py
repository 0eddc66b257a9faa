"""The LightningModule: a thin training wrapper around a plain ``openretina_models`` module.

The wrapped network knows nothing of Lightning; this class adds the loss (by name) plus the
model's own regularisation, the optimizer and schedule from config, and whole-split validation
correlations accumulated over all batches (and all processes) rather than averaged per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import lightning.pytorch as pl
import torch
from openretina_models.losses import get_loss
from torch import nn

from openretina_cli.training.scoring import SplitScorer

OptimizerFactory = Callable[[list[nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], Any]


class RetinaModule(pl.LightningModule):
    """Fits ``model`` to batches of ``Batch(session, stimulus, responses)``."""

    def __init__(
        self,
        model: nn.Module,
        *,
        loss: str = "poisson",
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_options: Mapping[str, Any] | None = None,
        only_train_readout: bool = False,
    ) -> None:
        super().__init__()
        self.model = model
        self.loss_name = loss
        self.loss_fn = get_loss(loss)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_options = dict(scheduler_options or {})
        self.only_train_readout = only_train_readout
        self.val_scorer = SplitScorer()
        if only_train_readout:
            freeze_core(model)

    def forward(self, stimulus: torch.Tensor, session: str) -> torch.Tensor:
        return self.model(stimulus, session)

    def predict_and_target(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Model output and the responses it predicts (the warm-up frames have no prediction)."""
        prediction = self.model(batch.stimulus, batch.session)
        target = batch.responses[:, self.model.warmup_frames :]
        if target.shape[1] != prediction.shape[1]:
            target = batch.responses[:, -prediction.shape[1] :]
        return prediction, target

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        prediction, target = self.predict_and_target(batch)
        loss = self.loss_fn(prediction, target)
        regularisation = self.model.regularisation(batch.session)
        size = int(batch.stimulus.shape[0])
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=size)
        self.log("train/regularisation", regularisation, on_step=False, on_epoch=True, batch_size=size)
        return loss + regularisation

    def on_train_epoch_start(self) -> None:
        if self.only_train_readout:
            core_eval_mode(self.model)

    def on_validation_epoch_start(self) -> None:
        self.val_scorer = SplitScorer()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        prediction, target = self.predict_and_target(batch)
        loss = self.loss_fn(prediction, target)
        self.log("val/loss", loss, on_epoch=True, sync_dist=True, batch_size=int(batch.stimulus.shape[0]))
        self.val_scorer.update(batch.session, prediction, target)

    def on_validation_epoch_end(self) -> None:
        self.val_scorer.all_reduce(self.trainer.strategy)
        for name, value in self.val_scorer.summary("val").items():
            # Equal on every rank after all_reduce; sync_dist only tells Lightning so (no warning).
            self.log(name, value, prog_bar=name == "val/correlation", sync_dist=True)

    def configure_optimizers(self) -> Any:
        parameters = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(parameters)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = {"scheduler": self.scheduler_factory(optimizer)}
        scheduler.update({k: v for k, v in self.scheduler_options.items() if v is not None})
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


def freeze_core(model: nn.Module) -> None:
    """Stop gradients into the shared core (fine-tuning trains only the readouts)."""
    core = getattr(model, "core", None)
    if core is None:
        raise ValueError(
            f"only_train_readout=true needs a model with a `core`; {type(model).__name__} has none. "
            "Set only_train_readout=false."
        )
    for parameter in core.parameters():
        parameter.requires_grad_(False)
    core_eval_mode(model)


def core_eval_mode(model: nn.Module) -> None:
    """Keep the core's normalisation statistics fixed while the rest trains."""
    core = getattr(model, "core", None)
    if core is not None:
        core.eval()
