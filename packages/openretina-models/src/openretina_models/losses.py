"""Training losses over `(batch, time, neurons)`: all means, never sums.

Because every loss averages over batch, time and neurons, its scale — and so the meaning of the
regularisation weights added to it — does not change with batch size, clip length or neuron count.
Predictions and targets must have the same shape: cut the first `model.warmup_frames` frames off
the targets (`target[:, model.warmup_frames:]`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["LOSSES", "correlation_loss", "get_loss", "mse_loss", "poisson_loss"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check(prediction: torch.Tensor, target: torch.Tensor) -> None:
    if prediction.shape != target.shape:
        raise ValueError(
            f"Prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape; "
            "targets usually need their first model.warmup_frames frames cut: "
            "target[:, model.warmup_frames:]."
        )


def poisson_loss(prediction: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean Poisson negative log-likelihood `mean(rate - target * log(rate + eps))`, constant dropped."""
    _check(prediction, target)
    return (prediction - target * torch.log(prediction + eps)).mean()


def mse_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error."""
    _check(prediction, target)
    return (prediction - target).pow(2).mean()


def correlation_loss(prediction: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """`1 - mean_n corr_n`, each neuron's correlation taken over all batch and time samples."""
    _check(prediction, target)
    p = prediction.reshape(-1, prediction.shape[-1])
    t = target.reshape(-1, target.shape[-1])
    p = p - p.mean(dim=0)
    t = t - t.mean(dim=0)
    corr = (p * t).mean(dim=0) / torch.sqrt(p.pow(2).mean(dim=0) * t.pow(2).mean(dim=0) + eps)
    return 1.0 - corr.mean()


LOSSES: dict[str, LossFn] = {
    "poisson": poisson_loss,
    "mse": mse_loss,
    "correlation": correlation_loss,
}


def get_loss(name: str) -> LossFn:
    """A loss function `(prediction, target) -> scalar` by name: `poisson`, `mse` or `correlation`."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"Unknown loss {name!r}; choose one of {', '.join(LOSSES)}.") from None
