"""Readouts that pool the core's feature maps over space, frame by frame (so they stay causal)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from openretina_models.kernels import readout_contraction
from openretina_models.readouts.base import Readout, check_clip_shape


def _axis(size: int) -> torch.Tensor:
    return torch.linspace(-1.0, 1.0, size) if size > 1 else torch.zeros(1)


def _positive(value: float, name: str) -> float:
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value!r}.")
    return float(value)


def check_features(features: torch.Tensor, in_shape: tuple[int, int, int]) -> None:
    check_clip_shape(features, in_shape, "Readout expects features")


class _GaussianPositionReadout(Readout):
    """Shared set-up of the readouts with a learned Gaussian position per neuron.

    Holds each neuron's position (stored divided by `position_scale`), its log σ and its channel
    weights, plus the weight penalty `gamma_readout * mean |weights|` the subclasses share.
    """

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        n_neurons: int,
        mean_activity: np.ndarray | None,
        output_nonlinearity: str,
        gamma_readout: float,
        init_sigma: float,
        init_position_range: float,
        positive: bool,
        position_scale: float,
    ) -> None:
        super().__init__(n_neurons, mean_activity, output_nonlinearity)
        channels, height, width = in_shape
        self.in_shape = (int(channels), int(height), int(width))
        self.gamma_readout = float(gamma_readout)
        self.positive = bool(positive)
        self.position_scale = _positive(position_scale, "position_scale")
        start = (torch.rand(n_neurons, 2) * 2 - 1) * init_position_range
        self.position_raw = nn.Parameter(start / self.position_scale)
        self.log_sigma = nn.Parameter(torch.full((n_neurons,), math.log(init_sigma)))
        self.weights = nn.Parameter(torch.randn(n_neurons, channels) * (0.5 / math.sqrt(channels)))

    @property
    def position(self) -> torch.Tensor:
        """`(N, 2)` Gaussian centres `(x, y)` in `[-1, 1]` image coordinates."""
        return self.position_raw * self.position_scale

    def feature_weights(self) -> torch.Tensor:
        return self.weights.abs() if self.positive else self.weights

    @torch.no_grad()
    def place(
        self, position: torch.Tensor, which: torch.Tensor | None = None, sigma: float | None = None
    ) -> None:
        """Move the Gaussians of the neurons in `which` (N,) bool (default all) to `position` (N, 2)
        `(x, y)` in `[-1, 1]` (e.g. receptive-field centres found in the data), clipped to the image;
        `sigma` (same units) also narrows them, as a known position needs no wide search."""
        position = position.to(self.position_raw).clamp(-1.0, 1.0)
        if position.shape != self.position_raw.shape:
            raise ValueError(
                f"position must be {tuple(self.position_raw.shape)}, got {tuple(position.shape)}."
            )
        chosen = torch.ones(len(position), dtype=torch.bool) if which is None else which.to(torch.bool).cpu()
        self.position_raw[chosen] = position[chosen] / self.position_scale
        if sigma is not None:
            self.log_sigma[chosen] = math.log(_positive(sigma, "sigma"))

    def regularisation(self) -> torch.Tensor:
        return self.gamma_readout * self.weights.abs().mean()


class GaussianMaskReadout(_GaussianPositionReadout):
    """Each neuron weighs space with a learned isotropic Gaussian and channels with learned weights.

    The mask is a softmax of `-distance² / (2 σ²)` over pixels (a Gaussian normalised to sum to one),
    so it stays finite however narrow σ gets and its scale does not depend on the image size.
    Positions and σ live in `[-1, 1]` image coordinates. Positions are stored divided by
    `position_scale`: optimisers such as Adam take steps of about `lr` in parameter units, so a
    scale above one lets positions travel across the image in few steps (1.x's `gaussian_mean_scale`).
    Penalty: `gamma_readout * mean |weights|`.
    """

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        n_neurons: int,
        mean_activity: np.ndarray | None = None,
        output_nonlinearity: str = "softplus",
        gamma_readout: float = 0.0,
        init_sigma: float = 0.5,
        init_position_range: float = 0.1,
        positive: bool = False,
        position_scale: float = 1.0,
    ) -> None:
        super().__init__(
            in_shape,
            n_neurons,
            mean_activity,
            output_nonlinearity,
            gamma_readout,
            init_sigma,
            init_position_range,
            positive,
            position_scale,
        )
        _, height, width = self.in_shape
        self.register_buffer("grid_y", _axis(height), persistent=False)
        self.register_buffer("grid_x", _axis(width), persistent=False)

    def masks(self) -> torch.Tensor:
        """`(N, H, W)` spatial masks, each summing to one."""
        position = self.position
        dy = self.grid_y[None, :, None] - position[:, 1, None, None]
        dx = self.grid_x[None, None, :] - position[:, 0, None, None]
        sigma2 = torch.exp(2 * self.log_sigma)[:, None, None]
        logits = -(dy.pow(2) + dx.pow(2)) / (2 * sigma2)
        return torch.softmax(logits.flatten(1), dim=1).view_as(logits)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        check_features(features, self.in_shape)
        masks = self.masks().to(features.dtype)
        return self.finish(readout_contraction(features, masks, self.feature_weights().to(features.dtype)))


class FactorisedReadout(Readout):
    """A free spatial mask times channel weights per neuron (spatial × feature factorisation).

    Penalties: `gamma_readout * mean |weights| + gamma_masks * mean |mask|`.
    """

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        n_neurons: int,
        mean_activity: np.ndarray | None = None,
        output_nonlinearity: str = "softplus",
        gamma_readout: float = 0.0,
        gamma_masks: float = 0.0,
        positive: bool = False,
    ) -> None:
        super().__init__(n_neurons, mean_activity, output_nonlinearity)
        channels, height, width = in_shape
        self.in_shape = (int(channels), int(height), int(width))
        self.gamma_readout = float(gamma_readout)
        self.gamma_masks = float(gamma_masks)
        self.positive = bool(positive)
        self.mask = nn.Parameter(torch.randn(n_neurons, height, width) / math.sqrt(height * width))
        self.weights = nn.Parameter(torch.randn(n_neurons, channels) * (0.1 / math.sqrt(channels)))

    def feature_weights(self) -> torch.Tensor:
        return self.weights.abs() if self.positive else self.weights

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        check_features(features, self.in_shape)
        mask = self.mask.to(features.dtype)
        return self.finish(readout_contraction(features, mask, self.feature_weights().to(features.dtype)))

    def regularisation(self) -> torch.Tensor:
        return self.gamma_readout * self.weights.abs().mean() + self.gamma_masks * self.mask.abs().mean()


class PointGaussianReadout(_GaussianPositionReadout):
    """Reads the features at one point per neuron (bilinear `grid_sample`).

    In training the point is drawn from a learned Gaussian around the neuron's position (so the
    position gets gradients from a neighbourhood); in eval mode the mean position is used.
    Penalty: `gamma_readout * mean |weights|`.
    """

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        n_neurons: int,
        mean_activity: np.ndarray | None = None,
        output_nonlinearity: str = "softplus",
        gamma_readout: float = 0.0,
        init_sigma: float = 0.2,
        init_position_range: float = 0.1,
        positive: bool = False,
        position_scale: float = 1.0,
    ) -> None:
        super().__init__(
            in_shape,
            n_neurons,
            mean_activity,
            output_nonlinearity,
            gamma_readout,
            init_sigma,
            init_position_range,
            positive,
            position_scale,
        )

    def sample_positions(self, batch: int) -> torch.Tensor:
        """`(batch, N, 2)` read-out points in `[-1, 1]` (x, y) coordinates."""
        position = self.position.expand(batch, -1, -1)
        if self.training:
            noise = torch.randn_like(position) * torch.exp(self.log_sigma)[None, :, None]
            position = position + noise
        return position.clamp(-1.0, 1.0)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        check_features(features, self.in_shape)
        b, c, t, h, w = features.shape
        grid = self.sample_positions(b).to(features.dtype)[:, None]  # (B, 1, N, 2)
        sampled = F.grid_sample(features.reshape(b, c * t, h, w), grid, align_corners=True)
        sampled = sampled.view(b, c, t, -1)  # (B, C, T, N)
        weights = self.feature_weights().to(features.dtype)
        return self.finish(torch.einsum("bctn,nc->btn", sampled, weights))
