"""Single-cell models on a crop around each neuron's receptive field (Sridhar et al. 2025).

Both fit every neuron of a session independently, vectorised over neurons (one neuron is the
single-cell case of openretina 1.x, which could only train them from notebooks):

- ``single_cell_lnp``: a rank-one spatio-temporal filter per neuron, ``spatial (crop) x temporal``,
  then the output nonlinearity (the classic LNP; 1.x's ``SingleCellSeparatedLNP``).
- ``single_cell_sc``: the spatial-contrast model. Per neuron, the stimulus in its crop is filtered in
  time, then summarised by a Gaussian-weighted mean intensity ``I`` and local spatial contrast
  ``C`` (the Gaussian-weighted standard deviation); the rate is ``a * softplus(b * (I + w * C) + c)``
  with four learned scalars (``a, w > 0``). The Gaussian is fixed (``rf_sigma``), the temporal
  filter fixed when given (e.g. from an STA) and learned otherwise.

``rf_locations`` gives each neuron's receptive-field centre ``[row, col]`` in model pixels per
session (the Sridhar reader records it as ``rf_row``/``rf_col`` from the white-noise STAs); a session
without one uses the frame centre. Temporal filters are causal and span ``temporal_kernel_size``
frames, so ``T_out = T - temporal_kernel_size + 1`` (1.x's LNP spans the whole clip instead).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from openretina_models.architectures.base import RetinaModel
from openretina_models.layers import inverse_output_nonlinearity, laplace_smoothness, temporal_smoothness
from openretina_models.readouts import MultiReadout
from openretina_models.readouts.base import Readout, check_clip_shape
from openretina_models.readouts.linear_filter import temporal_start
from openretina_models.registry import register_model

RFLocations = Mapping[str, Sequence[Sequence[int]]]


def crop_origins(
    locations: Sequence[Sequence[int]] | None,
    n_neurons: int,
    frame: tuple[int, int],
    crop: tuple[int, int],
) -> np.ndarray:
    """(N, 2) top-left [row, col] of each neuron's crop: centred on its location (the frame centre
    when None), moved inside the frame."""
    height, width = frame
    if crop[0] > height or crop[1] > width or min(crop) < 1:
        raise ValueError(f"crop_size {list(crop)} must be positive and fit the {height}x{width} frame.")
    if locations is None:
        centres = np.tile([height // 2, width // 2], (n_neurons, 1))
    else:
        centres = np.asarray(locations, dtype=np.int64).reshape(-1, 2) if len(locations) else np.zeros((0, 2))
        if len(centres) != n_neurons:
            raise ValueError(f"rf_locations has {len(centres)} [row, col] pairs for {n_neurons} neurons.")
        outside = (centres < 0).any(axis=1) | (centres[:, 0] >= height) | (centres[:, 1] >= width)
        if outside.any():
            raise ValueError(
                f"rf_locations {centres[outside].tolist()} lie outside the {height}x{width} frame "
                "(give [row, col] in model pixels)."
            )
    top = np.clip(centres[:, 0] - crop[0] // 2, 0, height - crop[0])
    left = np.clip(centres[:, 1] - crop[1] // 2, 0, width - crop[1])
    return np.stack([top, left], axis=1).astype(np.int64)


def _pixel_indices(origins: np.ndarray, crop: tuple[int, int], width: int) -> torch.Tensor:
    """(N, h * w) flat frame indices of each neuron's crop."""
    rows = origins[:, :1, None] + np.arange(crop[0])[None, :, None]
    cols = origins[:, 1:, None] + np.arange(crop[1])[None, None, :]
    return torch.as_tensor((rows * width + cols).reshape(len(origins), -1), dtype=torch.long)


class CroppedLNPReadout(Readout):
    """One session's rank-one filters: ``spatial[n] (C, h, w)`` at the neuron's crop times
    ``temporal[n] (kt,)``, then bias and output nonlinearity. Penalties (means): ``gamma_spatial``
    Laplacian smoothness, ``gamma_temporal`` second-difference smoothness, ``gamma_l1`` mean |spatial|."""

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        n_neurons: int,
        mean_activity: np.ndarray | None,
        locations: Sequence[Sequence[int]] | None,
        crop_size: tuple[int, int],
        temporal_kernel_size: int,
        output_nonlinearity: str,
        gamma_spatial: float,
        gamma_temporal: float,
        gamma_l1: float,
    ) -> None:
        super().__init__(n_neurons, mean_activity, output_nonlinearity)
        channels, height, width = in_shape
        self.in_shape = in_shape
        self.crop_size = crop_size
        self.gamma_spatial, self.gamma_temporal, self.gamma_l1 = gamma_spatial, gamma_temporal, gamma_l1
        origins = crop_origins(locations, n_neurons, (height, width), crop_size)
        self.register_buffer("pixels", _pixel_indices(origins, crop_size, width), persistent=False)
        scale = 0.1 / np.sqrt(channels * crop_size[0] * crop_size[1])
        self.spatial = nn.Parameter(torch.randn(n_neurons, channels, *crop_size) * scale)
        temporal = temporal_start(n_neurons, temporal_kernel_size)
        self.temporal = nn.Parameter(temporal + 0.01 * torch.randn_like(temporal))

    def full_frame_filters(self) -> torch.Tensor:
        """(N, C, H, W) spatial filters, zero outside each neuron's crop (differentiable)."""
        n, channels = self.spatial.shape[:2]
        _, height, width = self.in_shape
        flat = self.spatial.new_zeros(n, channels, height * width)
        index = self.pixels[:, None, :].expand(n, channels, -1)
        flat = flat.scatter(2, index, self.spatial.reshape(n, channels, -1))
        return flat.reshape(n, channels, height, width)

    def forward(self, stimulus: torch.Tensor) -> torch.Tensor:
        check_clip_shape(stimulus, self.in_shape, "A single-cell LNP expects a stimulus")
        filters = self.full_frame_filters().to(stimulus.dtype)
        projected = torch.einsum("bcthw,nchw->bnt", stimulus, filters)
        linear = F.conv1d(projected, self.temporal.to(stimulus.dtype)[:, None, :], groups=self.n_neurons)
        return self.finish(linear.transpose(1, 2))

    def regularisation(self) -> torch.Tensor:
        total = self.bias.new_zeros(())
        if self.gamma_spatial:
            total = total + self.gamma_spatial * laplace_smoothness(self.spatial)
        if self.gamma_temporal:
            total = total + self.gamma_temporal * temporal_smoothness(self.temporal)
        if self.gamma_l1:
            total = total + self.gamma_l1 * self.spatial.abs().mean()
        return total


def _session_locations(
    rf_locations: RFLocations | None, session: str | None
) -> Sequence[Sequence[int]] | None:
    if rf_locations is None or session is None:
        return None
    return rf_locations.get(session)


class _SingleCellModel(RetinaModel):
    """Shared frame of both single-cell models: no core, one readout per session."""

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        n_neurons: Mapping[str, int],
        mean_activity: Mapping[str, np.ndarray] | None,
        rf_locations: RFLocations | None,
        temporal_kernel_size: int,
        build,
    ) -> None:
        super().__init__()
        if int(temporal_kernel_size) < 1:
            raise ValueError(f"temporal_kernel_size must be positive, got {temporal_kernel_size}.")
        unknown = sorted(set(rf_locations or {}) - set(n_neurons))
        if unknown:
            raise ValueError(
                f"rf_locations names sessions {unknown} that are not in n_neurons {list(n_neurons)}."
            )
        self.in_shape = tuple(int(s) for s in in_shape)  # type: ignore[assignment]
        self.temporal_kernel_size = int(temporal_kernel_size)
        self.core = nn.Identity()
        sessions = iter(list(n_neurons))  # MultiReadout builds in this order

        def factory(n: int, mean: np.ndarray | None) -> nn.Module:
            locations = _session_locations(rf_locations, next(sessions, None))
            return build(n, mean, locations)

        self.readout = MultiReadout(factory, n_neurons, mean_activity)

    @property
    def warmup_frames(self) -> int:
        return self.temporal_kernel_size - 1

    def forward(self, stimulus: torch.Tensor, session: str) -> torch.Tensor:
        self.check_stimulus(stimulus)
        return self.readout(stimulus, session)

    def regularisation(self, session: str) -> torch.Tensor:
        return self.readout.regularisation(session)


@register_model("single_cell_lnp")
class SingleCellLNP(_SingleCellModel):
    """A rank-one spatio-temporal LNP per neuron on a ``crop_size`` crop around its receptive field."""

    def __init__(
        self,
        *,
        in_shape: tuple[int, int, int],
        n_neurons: Mapping[str, int],
        mean_activity: Mapping[str, np.ndarray] | None = None,
        rf_locations: RFLocations | None = None,
        crop_size: Sequence[int] = (15, 15),
        temporal_kernel_size: int = 30,
        output_nonlinearity: str = "softplus",
        gamma_spatial: float = 0.0,
        gamma_temporal: float = 0.0,
        gamma_l1: float = 0.0,
    ) -> None:
        crop = (int(crop_size[0]), int(crop_size[1]))
        shape = tuple(int(s) for s in in_shape)
        build = functools.partial(
            _lnp_readout,
            shape,
            crop,
            int(temporal_kernel_size),
            output_nonlinearity,
            float(gamma_spatial),
            float(gamma_temporal),
            float(gamma_l1),
        )
        super().__init__(in_shape, n_neurons, mean_activity, rf_locations, temporal_kernel_size, build)


def _lnp_readout(shape, crop, kt, nonlinearity, g_spatial, g_temporal, g_l1, n, mean, locations) -> Readout:
    return CroppedLNPReadout(shape, n, mean, locations, crop, kt, nonlinearity, g_spatial, g_temporal, g_l1)


def gaussian_weights(
    origins: np.ndarray, centres: np.ndarray, crop: tuple[int, int], sigma: float
) -> np.ndarray:
    """(N, h, w) isotropic Gaussians centred on each neuron's location inside its crop, summing to 1."""
    rows = np.arange(crop[0])[None, :, None] + origins[:, :1, None] - centres[:, :1, None]
    cols = np.arange(crop[1])[None, None, :] + origins[:, 1:, None] - centres[:, 1:, None]
    weights = np.exp(-(rows**2 + cols**2) / (2.0 * sigma**2))
    return weights / weights.sum(axis=(1, 2), keepdims=True)


class SpatialContrastReadout(nn.Module):
    """One session's spatial-contrast units (see the module docstring)."""

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        n_neurons: int,
        mean_activity: np.ndarray | None,
        locations: Sequence[Sequence[int]] | None,
        crop_size: tuple[int, int],
        temporal_kernel_size: int,
        rf_sigma: float,
        temporal_filter: Sequence[float] | None,
    ) -> None:
        super().__init__()
        _, height, width = in_shape
        self.in_shape = in_shape
        self.n_neurons = int(n_neurons)
        origins = crop_origins(locations, n_neurons, (height, width), crop_size)
        centres = (
            origins + np.asarray(crop_size) // 2
            if locations is None
            else np.asarray(locations).reshape(-1, 2)
        )
        weights = gaussian_weights(origins, centres, crop_size, float(rf_sigma))
        self.register_buffer("pixels", _pixel_indices(origins, crop_size, width), persistent=False)
        self.register_buffer(
            "weights", torch.as_tensor(weights.reshape(n_neurons, -1), dtype=torch.float32), persistent=False
        )
        if temporal_filter is None:
            temporal = temporal_start(n_neurons, temporal_kernel_size)
            self.temporal = nn.Parameter(temporal + 0.01 * torch.randn_like(temporal))
        else:
            fixed = torch.as_tensor(np.asarray(temporal_filter, dtype=np.float32)).reshape(1, -1)
            self.register_buffer("temporal", fixed.expand(n_neurons, -1).clone(), persistent=False)
        # a, b, c, w of 1.x (a = 4, b = 1, c = -5, w = 0 there); a and w kept positive
        self.gain_raw = nn.Parameter(
            torch.full((n_neurons,), float(inverse_output_nonlinearity(4.0, "softplus")))
        )
        self.slope = nn.Parameter(torch.ones(n_neurons))
        self.contrast_raw = nn.Parameter(
            torch.full((n_neurons,), float(inverse_output_nonlinearity(0.1, "softplus")))
        )
        start = (
            np.full(n_neurons, -5.0) if mean_activity is None else np.asarray(mean_activity, np.float64) / 4.0
        )
        offset = start if mean_activity is None else inverse_output_nonlinearity(start, "softplus")
        self.offset = nn.Parameter(torch.as_tensor(offset, dtype=torch.float32).reshape(n_neurons))

    def forward(self, stimulus: torch.Tensor) -> torch.Tensor:
        check_clip_shape(stimulus, self.in_shape, "A spatial-contrast model expects a stimulus")
        b, _, t, h, w = stimulus.shape
        flat = stimulus.mean(dim=1).reshape(b, t, h * w)  # channels pooled
        crops = flat[:, :, self.pixels]  # (B, T, N, P)
        pixels = crops.shape[-1]
        series = crops.permute(0, 3, 2, 1).reshape(b * pixels, self.n_neurons, t)
        kernel = self.temporal.to(stimulus.dtype)[:, None, :]
        filtered = F.conv1d(series, kernel, groups=self.n_neurons)  # (B * P, N, T_out)
        filtered = filtered.reshape(b, pixels, self.n_neurons, -1).permute(0, 3, 2, 1)  # (B, T_out, N, P)
        weights = self.weights.to(stimulus.dtype)
        mean = (filtered * weights).sum(-1)
        contrast = torch.sqrt(((filtered - mean[..., None]) ** 2 * weights).sum(-1) + 1e-8)
        drive = self.slope * (mean + F.softplus(self.contrast_raw) * contrast) + self.offset
        return F.softplus(self.gain_raw) * F.softplus(drive)

    def regularisation(self) -> torch.Tensor:
        return self.slope.new_zeros(())


@register_model("single_cell_sc")
class SingleCellSpatialContrast(_SingleCellModel):
    """The spatial-contrast model per neuron on a ``crop_size`` crop around its receptive field."""

    def __init__(
        self,
        *,
        in_shape: tuple[int, int, int],
        n_neurons: Mapping[str, int],
        mean_activity: Mapping[str, np.ndarray] | None = None,
        rf_locations: RFLocations | None = None,
        crop_size: Sequence[int] = (15, 15),
        temporal_kernel_size: int = 30,
        rf_sigma: float = 2.0,
        temporal_filter: Sequence[float] | None = None,
    ) -> None:
        if temporal_filter is not None and len(temporal_filter) != int(temporal_kernel_size):
            raise ValueError(
                f"temporal_filter has {len(temporal_filter)} values; temporal_kernel_size is "
                f"{temporal_kernel_size}."
            )
        if float(rf_sigma) <= 0:
            raise ValueError(f"rf_sigma must be positive (pixels), got {rf_sigma}.")
        crop = (int(crop_size[0]), int(crop_size[1]))
        shape = tuple(int(s) for s in in_shape)
        filt = None if temporal_filter is None else [float(v) for v in temporal_filter]
        build = functools.partial(_sc_readout, shape, crop, int(temporal_kernel_size), float(rf_sigma), filt)
        super().__init__(in_shape, n_neurons, mean_activity, rf_locations, temporal_kernel_size, build)


def _sc_readout(shape, crop, kt, sigma, temporal_filter, n, mean, locations) -> nn.Module:
    return SpatialContrastReadout(shape, n, mean, locations, crop, kt, sigma, temporal_filter)
