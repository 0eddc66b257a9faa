"""Per-neuron linear spatio-temporal filters on the raw stimulus (the L of an LNP model)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from openretina_models.layers import laplace_smoothness, temporal_smoothness
from openretina_models.readouts.base import Readout, check_clip_shape


def temporal_start(n_neurons: int, kernel_size: int) -> torch.Tensor:
    """(N, kt) start of learned temporal filters, the same for every neuron: a smooth bump over the
    recent lags, ``(lag + 1) * exp(-(lag + 1) / tau)`` with ``tau = kt / 6`` frames (at least 1),
    so it peaks ``tau - 1`` frames back; it sums to 1 and the last entry is the current frame.

    A start at the current frame alone carries no signal on white noise (a response follows its
    stimulus by tens of milliseconds), so both factors of a rank-one filter start with almost no
    gradient (issue 24: correlation -0.02 when early stopping ended the run). The bump overlaps
    the early lobe of a retinal filter at any of the usual frame rates.
    """
    lags = torch.arange(int(kernel_size), dtype=torch.float32).flip(0) + 1.0  # lag + 1 of each entry
    tau = max(1.0, kernel_size / 6.0)
    profile = lags * torch.exp(-lags / tau)
    return (profile / profile.sum()).expand(int(n_neurons), -1).clone()


class LinearFilterReadout(Readout):
    """A causal linear filter per neuron, then bias and output nonlinearity.

    `separable=True`: `spatial[n, c, h, w] * temporal[n, t]` (one temporal profile per neuron, applied
    after the spatial projection); `separable=False`: a full `(C, kt, H, W)` filter per neuron.
    The filter spans `temporal_kernel_size` frames ending at the current one (valid in time).
    Penalties (means): `gamma_spatial` Laplacian smoothness, `gamma_temporal` second-difference
    smoothness, `gamma_l1` mean absolute filter weight.
    """

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        n_neurons: int,
        mean_activity: np.ndarray | None = None,
        output_nonlinearity: str = "softplus",
        temporal_kernel_size: int = 15,
        separable: bool = True,
        gamma_spatial: float = 0.0,
        gamma_temporal: float = 0.0,
        gamma_l1: float = 0.0,
    ) -> None:
        super().__init__(n_neurons, mean_activity, output_nonlinearity)
        channels, height, width = (int(s) for s in in_shape)
        if temporal_kernel_size < 1:
            raise ValueError(f"temporal_kernel_size must be positive, got {temporal_kernel_size}.")
        self.in_shape = (channels, height, width)
        self.temporal_kernel_size = int(temporal_kernel_size)
        self.separable = bool(separable)
        self.gamma_spatial = float(gamma_spatial)
        self.gamma_temporal = float(gamma_temporal)
        self.gamma_l1 = float(gamma_l1)
        scale = 0.1 / np.sqrt(channels * height * width)
        if self.separable:
            self.spatial = nn.Parameter(torch.randn(n_neurons, channels, height, width) * scale)
            temporal = temporal_start(n_neurons, self.temporal_kernel_size)
            self.temporal = nn.Parameter(temporal + 0.01 * torch.randn_like(temporal))
        else:
            filters = torch.randn(n_neurons, channels, self.temporal_kernel_size, height, width)
            self.filters = nn.Parameter(filters * scale / np.sqrt(self.temporal_kernel_size))

    @property
    def warmup_frames(self) -> int:
        return self.temporal_kernel_size - 1

    def forward(self, stimulus: torch.Tensor) -> torch.Tensor:
        check_clip_shape(stimulus, self.in_shape, "LNP expects a stimulus")
        if self.separable:
            projected = torch.einsum("bcthw,nchw->bnt", stimulus, self.spatial.to(stimulus.dtype))
            kernel = self.temporal.to(stimulus.dtype)[:, None, :]
            linear = F.conv1d(projected, kernel, groups=self.n_neurons)  # (B, N, T_out)
        else:
            linear = F.conv3d(stimulus, self.filters.to(stimulus.dtype))[:, :, :, 0, 0]
        return self.finish(linear.transpose(1, 2))

    def _spatial_kernels(self) -> torch.Tensor:
        if self.separable:
            return self.spatial
        f = self.filters
        return f.reshape(f.shape[0], f.shape[1] * f.shape[2], f.shape[3], f.shape[4])

    def _temporal_kernels(self) -> torch.Tensor:
        return self.temporal if self.separable else self.filters.permute(0, 1, 3, 4, 2)

    def regularisation(self) -> torch.Tensor:
        total = self.bias.new_zeros(())
        if self.gamma_spatial:
            total = total + self.gamma_spatial * laplace_smoothness(self._spatial_kernels())
        if self.gamma_temporal:
            total = total + self.gamma_temporal * temporal_smoothness(self._temporal_kernels())
        if self.gamma_l1:
            weights = self.spatial if self.separable else self.filters
            total = total + self.gamma_l1 * weights.abs().mean()
        return total
