"""Linear-nonlinear-Poisson model: a causal linear filter per neuron, then a positive nonlinearity."""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from openretina_models.architectures.base import RetinaModel
from openretina_models.readouts import LinearFilterReadout, MultiReadout
from openretina_models.registry import register_model


@register_model("lnp")
class LinearNonlinearPoisson(RetinaModel):
    """One `LinearFilterReadout` per session on the raw stimulus; `core` is empty.

    `separable=True` fits a space-time separable filter per neuron, `False` a full one. The filter
    spans `temporal_kernel_size` frames ending at the current frame (1.x's LNP has no temporal
    filter at all). Use `output_nonlinearity="exp"` for the classic LNP. `cut_first_n_frames` drops
    that many frames at the start of the stimulus (1.x's LNP drops 30).
    """

    def __init__(
        self,
        *,
        in_shape: tuple[int, int, int],
        n_neurons: Mapping[str, int],
        mean_activity: Mapping[str, np.ndarray] | None = None,
        temporal_kernel_size: int = 15,
        separable: bool = True,
        output_nonlinearity: str = "softplus",
        gamma_spatial: float = 0.0,
        gamma_temporal: float = 0.0,
        gamma_l1: float = 0.0,
        cut_first_n_frames: int = 0,
    ) -> None:
        super().__init__()
        if int(cut_first_n_frames) < 0:
            raise ValueError(f"cut_first_n_frames must be >= 0, got {cut_first_n_frames}.")
        self.cut_first_n_frames = int(cut_first_n_frames)
        self.in_shape = tuple(int(s) for s in in_shape)  # type: ignore[assignment]
        self.core = nn.Identity()
        self.temporal_kernel_size = int(temporal_kernel_size)
        factory = functools.partial(
            _build_filter,
            self.in_shape,
            {
                "output_nonlinearity": output_nonlinearity,
                "temporal_kernel_size": temporal_kernel_size,
                "separable": separable,
                "gamma_spatial": gamma_spatial,
                "gamma_temporal": gamma_temporal,
                "gamma_l1": gamma_l1,
            },
        )
        self.readout = MultiReadout(factory, n_neurons, mean_activity)

    @property
    def warmup_frames(self) -> int:
        return self.temporal_kernel_size - 1 + self.cut_first_n_frames

    def forward(self, stimulus: torch.Tensor, session: str) -> torch.Tensor:
        self.check_stimulus(stimulus)
        return self.readout(stimulus[:, :, self.cut_first_n_frames :], session)

    def regularisation(self, session: str) -> torch.Tensor:
        return self.readout.regularisation(session)


def _build_filter(in_shape: tuple[int, int, int], options: dict, n: int, mean) -> LinearFilterReadout:
    return LinearFilterReadout(in_shape, n, mean, **options)


@register_model("lnp_full")
def lnp_full(
    *,
    in_shape: tuple[int, int, int],
    n_neurons: Mapping[str, int],
    mean_activity: Mapping[str, np.ndarray] | None = None,
    temporal_kernel_size: int = 15,
    output_nonlinearity: str = "softplus",
    gamma_spatial: float = 0.0,
    gamma_temporal: float = 0.0,
    gamma_l1: float = 0.0,
    cut_first_n_frames: int = 0,
) -> LinearNonlinearPoisson:
    """`lnp` with a full (non-separable) spatio-temporal filter per neuron."""
    arguments = dict(locals())
    return LinearNonlinearPoisson(separable=False, **arguments)
