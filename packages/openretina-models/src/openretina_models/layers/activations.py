"""Nonlinearities by name, and the inverse of output nonlinearities (for bias initialisation)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

_ACTIVATIONS = {
    "elu": nn.ELU,
    "relu": nn.ReLU,
    "softplus": nn.Softplus,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
}

OUTPUT_NONLINEARITIES = ("softplus", "exp", "identity")


# Activations that can overwrite their input and still differentiate (from their output).
_IN_PLACE = ("elu", "relu")


def make_activation(name: str, *, in_place: bool = False) -> nn.Module:
    """An activation module by name (`elu`, `relu`, `softplus`, `gelu`, `tanh`, `identity`).

    `in_place=True` lets ELU and ReLU overwrite their input, which saves one activation tensor per
    layer during training; only for inputs nothing else needs (a fresh convolution or batch-norm
    output). The others ignore it.
    """
    try:
        cls = _ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"Unknown nonlinearity {name!r}; choose one of {sorted(_ACTIVATIONS)}.") from None
    return cls(inplace=True) if in_place and name in _IN_PLACE else cls()


def apply_output_nonlinearity(x: torch.Tensor, name: str) -> torch.Tensor:
    """Map a linear prediction to a firing rate (`softplus` and `exp` keep it positive)."""
    if name == "softplus":
        return nn.functional.softplus(x)
    if name == "exp":
        return torch.exp(x)
    if name == "identity":
        return x
    raise ValueError(f"Unknown output nonlinearity {name!r}; choose one of {list(OUTPUT_NONLINEARITIES)}.")


def check_output_nonlinearity(name: str) -> str:
    if name not in OUTPUT_NONLINEARITIES:
        raise ValueError(
            f"Unknown output nonlinearity {name!r}; choose one of {list(OUTPUT_NONLINEARITIES)}."
        )
    return name


def inverse_output_nonlinearity(rate: np.ndarray, name: str, floor: float = 1e-3) -> np.ndarray:
    """The pre-nonlinearity value that produces `rate`, so a bias starts at the mean activity."""
    rate = np.asarray(rate, dtype=np.float64)
    if name == "identity":
        return rate
    rate = np.maximum(np.nan_to_num(rate, nan=floor), floor)
    if name == "exp":
        return np.log(rate)
    if name == "softplus":
        # log(expm1(y)) overflows nowhere for the floor used, and is ~y for large y.
        return np.where(rate > 20.0, rate, np.log(np.expm1(np.minimum(rate, 20.0))))
    raise ValueError(f"Unknown output nonlinearity {name!r}; choose one of {list(OUTPUT_NONLINEARITIES)}.")
