"""openretina 1.x's Gaussian-mask readout (Höfling et al. 2024), so its trained models predict the same here.

It differs from `GaussianMaskReadout` in ways that change the numbers: the grid keeps the aspect
ratio (`±H/max(H, W)` by `±W/max(H, W)`), the squared distance over the variance is clipped at 20
(so far pixels keep a floor of `exp(-10)` before normalising), the variance is
`exp(clip(log_var * variance_scale, ±20))`, and a per-neuron `scale` multiplies the linear
prediction before the bias.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from openretina_models.kernels import readout_contraction
from openretina_models.readouts.base import Readout, check_clip_shape


def aspect_grid(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column coordinates, `±height/max` and `±width/max` (1.x's fixed readout grid)."""
    largest = max(height, width)
    rows = torch.linspace(-height / largest, height / largest, height)
    columns = torch.linspace(-width / largest, width / largest, width)
    return rows, columns


class GaussianMask1xReadout(Readout):
    """A normalised Gaussian mask per neuron, channel weights, `scale`, bias, output nonlinearity.

    `mask_mean` is `(N, 2)` in (row, column) order and is multiplied by `position_scale`;
    `mask_log_var` is multiplied by `variance_scale`. `positive=True` uses `max(weights, 0)`.
    `learn_scale=False` keeps `scale` fixed at one. Penalty: `gamma_readout * mean |weights|`.
    """

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        n_neurons: int,
        mean_activity: np.ndarray | None = None,
        output_nonlinearity: str = "softplus",
        gamma_readout: float = 0.0,
        init_sigma: float = 0.5,
        positive: bool = False,
        position_scale: float = 1.0,
        variance_scale: float = 1.0,
        learn_scale: bool = True,
    ) -> None:
        super().__init__(n_neurons, mean_activity, output_nonlinearity)
        channels, height, width = (int(s) for s in in_shape)
        self.in_shape = (channels, height, width)
        self.gamma_readout = float(gamma_readout)
        self.positive = bool(positive)
        self.position_scale = float(position_scale)
        self.variance_scale = float(variance_scale)
        self.mask_mean = nn.Parameter(torch.zeros(n_neurons, 2))
        log_var = 2 * math.log(init_sigma) / self.variance_scale
        self.mask_log_var = nn.Parameter(torch.full((n_neurons,), log_var))
        self.weights = nn.Parameter(torch.full((n_neurons, channels), 1.0 / channels))
        if learn_scale:
            self.scale = nn.Parameter(torch.ones(n_neurons))
        else:
            self.register_buffer("scale", torch.ones(n_neurons))
        rows, columns = aspect_grid(height, width)
        self.register_buffer("grid_rows", rows, persistent=False)
        self.register_buffer("grid_columns", columns, persistent=False)

    def masks(self) -> torch.Tensor:
        """`(N, H, W)` masks, each summing to one."""
        variance = torch.exp(torch.clamp(self.mask_log_var * self.variance_scale, -20, 20))[:, None, None]
        mean = self.mask_mean * self.position_scale
        d_rows = self.grid_rows[None, :, None] - mean[:, 0, None, None]
        d_columns = self.grid_columns[None, None, :] - mean[:, 1, None, None]
        distance = (d_rows.pow(2) + d_columns.pow(2)) / (variance + 1e-8)
        pdf = torch.exp(-0.5 * torch.clamp(distance, max=20))
        return torch.nan_to_num(pdf / pdf.sum(dim=(1, 2), keepdim=True))

    def feature_weights(self) -> torch.Tensor:
        return self.weights.clamp(min=0) if self.positive else self.weights

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        check_clip_shape(features, self.in_shape, "Readout expects features")
        masks = self.masks().to(features.dtype)
        linear = readout_contraction(features, masks, self.feature_weights().to(features.dtype))
        return self.finish(linear * self.scale)

    def regularisation(self) -> torch.Tensor:
        return self.gamma_readout * self.weights.abs().mean()
