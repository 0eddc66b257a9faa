"""Map a 1.x model (its hyper-parameters and state dict) onto our registered architectures.

Supported (the `UnifiedCoreReadout` models 1.x's configs build):

- 1.x's code-only `ExampleCoreReadout` (flat hyper-parameters: its SimpleCoreWrapper and
  Gaussian-mask readout, including the legacy `bias_param` readout name);
- core `SimpleCoreWrapper` with `custom_separable` (the sin/cos temporal basis is rebuilt to a full
  kernel here), `full` or `time_independent` convolutions; its padding, max-pooling, dropout and
  frame cut; the bias after batch norm is folded into the batch-norm bias (the same numbers);
- core `DummyCore` (no core: the LNP model);
- readouts `MultiGaussianMaskReadout`, `MultiFactorizedReadout` (Klindt), `MultiSampledGaussianReadout`
  (point Gaussian) and `MultipleLNPReadout`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from openretina_models.errors import CheckpointError
from openretina_models.readouts.gaussian_mask_1x import aspect_grid

CORES = {
    "openretina.modules.core.base_core.SimpleCoreWrapper": "SimpleCoreWrapper",
    "openretina.modules.core.base_core.DummyCore": "DummyCore",
}
READOUTS = {
    "openretina.modules.readout.multi_readout.MultiGaussianMaskReadout": "MultiGaussianMaskReadout",
    "openretina.modules.readout.multi_readout.MultiFactorizedReadout": "MultiFactorizedReadout",
    "openretina.modules.readout.multi_readout.MultiSampledGaussianReadout": "MultiSampledGaussianReadout",
    "openretina.modules.readout.multi_readout.MultipleLNPReadout": "MultipleLNPReadout",
}
CONV_TYPES = ("custom_separable", "full", "time_independent")
_NONLINEARITIES = {"softplus": "softplus", "exp": "exp"}


@dataclass
class Converted:
    """What the converter produces: an architecture name, its kwargs and the matching state dict."""

    name: str
    kwargs: dict[str, Any]
    state: dict[str, torch.Tensor]


def sin_cos_kernel(
    sin_weights: torch.Tensor, cos_weights: torch.Tensor, log_speed: torch.Tensor, length: int
) -> torch.Tensor:
    """`(out, in, length)` temporal kernels from 1.x's Fourier parameterisation.

    With `t = arange(length) - length`, stretch `s = exp(log_speed)`, frequency `2π s t / length`
    and window `1 / (1 + exp(-t - floor(0.95 length) / s))`, kernel `k` of the basis is the
    windowed `sin(k f)` / `cos(k f)`; the kernel is the weighted sum over `k < n_basis`.
    """
    n_basis = sin_weights.shape[-1]
    stretch = torch.exp(log_speed.float()).reshape(())
    time = torch.arange(length, dtype=torch.float32) - length
    frequency = stretch * time * 2 * math.pi / length
    window = 1 / (1 + torch.exp(-time - int(length * 0.95) / stretch))
    orders = torch.arange(n_basis, dtype=torch.float32)[:, None]
    sines = window * torch.sin(frequency * orders)  # (n_basis, length)
    cosines = window * torch.cos(frequency * orders)
    return torch.einsum("oik,kt->oit", sin_weights.float(), sines) + torch.einsum(
        "oik,kt->oit", cos_weights.float(), cosines
    )


def _padding(value: Any, layer: int, where: str) -> tuple[int | str, int | str]:
    """1.x's conv padding (True/False/int/tuple/str) as our `(temporal_padding, spatial_padding)`."""
    if value is True or value == "same":
        return "same", "same"
    if value is False or value is None or value == "valid":
        return 0, 0
    if isinstance(value, int):
        return value, value
    if isinstance(value, list | tuple) and len(value) == 3 and all(isinstance(v, int) for v in value):
        time, height, width = value
        if height != width:
            raise CheckpointError(
                f"{where}: layer {layer} pads height and width differently ({value}); "
                "only equal spatial padding is supported."
            )
        return time, height
    raise CheckpointError(f"{where}: layer {layer} has padding {value!r}, which is not understood.")


def _take(state: Mapping[str, torch.Tensor], key: str, where: str) -> torch.Tensor:
    try:
        return state[key]
    except KeyError:
        raise CheckpointError(
            f"{where}: the state dict misses {key!r}, which this model's hyper-parameters need; "
            "the checkpoint is incomplete or does not match its hyper-parameters."
        ) from None


def _core(
    core: Mapping[str, Any], state: Mapping[str, torch.Tensor], where: str
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Our `core_readout` core kwargs and `core.*` state from a SimpleCoreWrapper."""
    for option in ("color_squashing_weights", "downsample_input_kernel_size"):
        if core.get(option) is not None:
            raise CheckpointError(
                f"{where}: the 1.x core uses {option}={core[option]!r}, which is not supported yet."
            )
    conv_type = core.get("convolution_type", "custom_separable")
    if conv_type not in CONV_TYPES:
        raise CheckpointError(
            f"{where}: 1.x convolution_type {conv_type!r} is not supported; "
            f"supported: {', '.join(CONV_TYPES)}."
        )
    channels = [int(c) for c in core["channels"]]
    temporal = [int(k) for k in core["temporal_kernel_sizes"]]
    spatial = [int(k) for k in core["spatial_kernel_sizes"]]
    n_layers = len(channels) - 1
    if conv_type == "time_independent":
        temporal = [1] * n_layers
    pool_every = core.get("maxpool_every_n_layers")
    paddings = [
        _padding(core.get("input_padding", False) if i == 0 else core.get("hidden_padding", True), i, where)
        for i in range(n_layers)
    ]
    kwargs = {
        "hidden_channels": channels[1:],
        "temporal_kernel_sizes": temporal,
        "spatial_kernel_sizes": spatial,
        "conv_type": "full",
        "temporal_padding": [p[0] for p in paddings],
        "spatial_padding": [p[1] for p in paddings],
        "nonlinearity": "elu",
        "batch_norm": True,
        "batch_norm_momentum": 0.1,
        "dropout": float(core.get("dropout_rate") or 0.0),
        "pooling": [2 if pool_every and i % int(pool_every) == 0 else 1 for i in range(n_layers)],
        "cut_first_n_frames": int(core.get("cut_first_n_frames") or 0),
    }
    ours: dict[str, torch.Tensor] = {}
    for i in range(n_layers):
        prefix = f"core.features.layer{i}."
        if conv_type == "custom_separable":
            sin = _take(state, prefix + "conv.sin_weights", where)
            cos = _take(state, prefix + "conv.cos_weights", where)
            if sin.shape[-1] != temporal[i] // 3:
                raise CheckpointError(
                    f"{where}: layer {i} has {sin.shape[-1]} sin/cos weights for a kernel of {temporal[i]} "
                    "frames; expected kernel // 3 (1.x's subsampling factor)."
                )
            log_speed = _take(state, prefix + "conv._log_speed_default", where)
            time_kernel = sin_cos_kernel(sin, cos, log_speed, temporal[i])  # (out, in, t)
            spatial_kernel = _take(state, prefix + "conv.weight_spatial", where).float()  # (out, in, 1, h, w)
            weight = time_kernel[:, :, :, None, None] * spatial_kernel
        else:
            weight = _take(state, prefix + "conv.conv.weight", where).float()
            if prefix + "conv.conv.bias" in state:
                raise CheckpointError(
                    f"{where}: layer {i} has a convolution bias, which 1.x cores never have."
                )
        ours[f"core.convs.{i}.conv.weight"] = weight.contiguous()
        norm = f"core.blocks.{i}.0."
        for name in ("weight", "running_mean", "running_var", "num_batches_tracked"):
            ours[norm + name] = _take(state, prefix + "norm." + name, where).clone()
        bias_after_norm = _take(state, prefix + "bias.bias", where).reshape(-1)
        ours[norm + "bias"] = _take(state, prefix + "norm.bias", where) + bias_after_norm
    return kwargs, ours


_EXAMPLE_KEYS = ("in_shape", "hidden_channels", "temporal_kernel_sizes", "spatial_kernel_sizes")


def example_configs(hyper: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The core and readout configs of a code-only `ExampleCoreReadout` (flat hyper-parameters; the
    defaults are its constructor's), or None when `hyper` is not one."""
    if not all(key in hyper for key in _EXAMPLE_KEYS):
        return None
    core = {
        "_target_": "openretina.modules.core.base_core.SimpleCoreWrapper",
        "channels": [int(hyper["in_shape"][0]), *hyper["hidden_channels"]],
        "temporal_kernel_sizes": hyper["temporal_kernel_sizes"],
        "spatial_kernel_sizes": hyper["spatial_kernel_sizes"],
        "input_padding": hyper.get("core_input_padding", False),
        "hidden_padding": hyper.get("core_hidden_padding", True),
        "cut_first_n_frames": hyper.get("cut_first_n_frames_in_core", 30),
        "dropout_rate": hyper.get("dropout_rate", 0.0),
        "maxpool_every_n_layers": hyper.get("maxpool_every_n_layers"),
        "downsample_input_kernel_size": hyper.get("downsample_input_kernel_size"),
        "convolution_type": hyper.get("convolution_type", "custom_separable"),
        "color_squashing_weights": hyper.get("color_squashing_weights"),
    }
    readout = {
        "_target_": "openretina.modules.readout.multi_readout.MultiGaussianMaskReadout",
        "scale": hyper.get("readout_scale", True),
        "bias": hyper.get("readout_bias", True),
        "gaussian_mean_scale": hyper.get("readout_gaussian_mean_scale", 6.0),
        "gaussian_var_scale": hyper.get("readout_gaussian_var_scale", 4.0),
        "positive": hyper.get("readout_positive", True),
    }
    return core, readout


def convert(hyper: Mapping[str, Any], state: Mapping[str, torch.Tensor], where: str) -> Converted:
    """The architecture of a 1.x `UnifiedCoreReadout` (or code-only `ExampleCoreReadout`) checkpoint."""
    core_cfg, readout_cfg = hyper.get("core"), hyper.get("readout")
    if not isinstance(core_cfg, Mapping) or not isinstance(readout_cfg, Mapping):
        core_cfg, readout_cfg = example_configs(hyper) or (None, None)
        # 1.x's legacy loader renames the old readout bias name; so do we
        state = {_legacy_bias_name(key): value for key, value in state.items()}
    if not isinstance(core_cfg, Mapping) or not isinstance(readout_cfg, Mapping):
        raise CheckpointError(
            f"{where}: the hyper-parameters describe neither a 1.x UnifiedCoreReadout (core/readout "
            "configs, what `openretina train` writes) nor an ExampleCoreReadout (in_shape, hidden_channels, "
            "temporal_kernel_sizes, spatial_kernel_sizes); no other 1.x model class is supported."
        )
    core_target = str(core_cfg.get("_target_"))
    readout_target = str(readout_cfg.get("_target_"))
    if core_target not in CORES:
        raise CheckpointError(
            f"{where}: unsupported 1.x core {core_target!r}; supported: {', '.join(sorted(CORES))}."
        )
    if readout_target not in READOUTS:
        raise CheckpointError(
            f"{where}: unsupported 1.x readout {readout_target!r}; supported: {', '.join(sorted(READOUTS))}."
        )
    readout_kind = READOUTS[readout_target]
    if CORES[core_target] == "DummyCore":
        if readout_kind != "MultipleLNPReadout":
            raise CheckpointError(
                f"{where}: a DummyCore with {readout_kind} is not supported (only the LNP)."
            )
        return _lnp(core_cfg, readout_cfg, hyper, state, where)
    if readout_kind == "MultipleLNPReadout":
        raise CheckpointError(f"{where}: an LNP readout after a convolutional core is not supported.")
    kwargs, ours = _core(core_cfg, state, where)
    sessions = _sessions(hyper, state, where)
    readout_kwargs, readout_state = _READOUT_MAPPERS[readout_kind](readout_cfg, state, sessions, where)
    kwargs.update(readout_kwargs)
    ours.update(readout_state)
    return Converted("core_readout", kwargs, ours)


def _legacy_bias_name(key: str) -> str:
    if key.startswith("readout.") and key.endswith(".bias_param"):
        return key.removesuffix(".bias_param") + ".bias"
    return key


def _sessions(hyper: Mapping[str, Any], state: Mapping[str, torch.Tensor], where: str) -> dict[str, int]:
    sessions = hyper.get("n_neurons_dict") or (hyper.get("data_info") or {}).get("n_neurons_dict")
    if not isinstance(sessions, Mapping) or not sessions:
        raise CheckpointError(f"{where}: the hyper-parameters do not say how many neurons each session has.")
    return {str(k): int(v) for k, v in sessions.items()}


def _nonlinearity(name: Any, where: str) -> str:
    if name not in _NONLINEARITIES:
        raise CheckpointError(
            f"{where}: 1.x output nonlinearity {name!r} is not supported; "
            f"supported: {', '.join(_NONLINEARITIES)}."
        )
    return _NONLINEARITIES[name]


def _gaussian_mask(
    cfg: Mapping[str, Any], state: Mapping[str, torch.Tensor], sessions: Mapping[str, int], where: str
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    kwargs = {
        "readout": "gaussian_mask_1x",
        "readout_positive": bool(cfg.get("positive", False)),
        "readout_position_scale": float(cfg.get("gaussian_mean_scale", 1.0)),
        "readout_options": {
            "variance_scale": float(cfg.get("gaussian_var_scale", 1.0)),
            "learn_scale": bool(cfg.get("scale", False)),
        },
    }
    ours = {}
    for session, n in sessions.items():
        old, new = f"readout.{session}.", f"readout.{session}."
        _check_grid(_take(state, old + "grid", where), session, where)
        ours[new + "mask_mean"] = _take(state, old + "mask_mean", where)
        ours[new + "mask_log_var"] = _take(state, old + "mask_log_var", where)
        ours[new + "weights"] = _take(state, old + "features", where)[0, :, 0, :].t().contiguous()
        ours[new + "scale"] = _take(state, old + "scale_param", where)
        ours[new + "bias"] = _take(state, old + "bias", where)
        _check_neurons(ours[new + "bias"], n, session, where)
    return kwargs, ours


def _factorised(
    cfg: Mapping[str, Any], state: Mapping[str, torch.Tensor], sessions: Mapping[str, int], where: str
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    height_width = [int(s) for s in cfg["in_shape"][2:]]
    ours = {}
    for session, n in sessions.items():
        prefix = f"readout.{session}."
        mask = _take(state, prefix + "mask_weights", where)  # (H*W, N)
        weights = _take(state, prefix + "feature_weights", where)  # (C, N)
        # 1.x applies its constraints to the weights at every forward; applied once here, they give
        # the weights its forward uses.
        if cfg.get("mask_constraint") == "abs":
            mask = mask.abs()
        constraint = cfg.get("weights_constraint")
        if constraint in ("abs", "absnorm"):
            weights = weights.abs()
        if constraint in ("norm", "absnorm"):
            weights = weights / torch.sqrt(torch.sum(weights**2, dim=0, keepdim=True) + 1e-5)
        elif constraint not in (None, "abs"):
            raise CheckpointError(f"{where}: unknown Klindt weights_constraint {constraint!r}.")
        ours[prefix + "mask"] = mask.t().reshape(n, *height_width).contiguous()
        ours[prefix + "weights"] = weights.t().contiguous()
        ours[prefix + "bias"] = _take(state, prefix + "bias", where).clone()
        _check_neurons(ours[prefix + "bias"], n, session, where)
    return {"readout": "factorised"}, ours


def _point_gaussian(
    cfg: Mapping[str, Any], state: Mapping[str, torch.Tensor], sessions: Mapping[str, int], where: str
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    for option in ("grid_mean_predictor", "shared_features", "shared_grid"):
        if cfg.get(option) is not None:
            raise CheckpointError(f"{where}: the point-Gaussian readout's {option} is not supported.")
    if cfg.get("align_corners", True) is not True:
        raise CheckpointError(f"{where}: point-Gaussian readouts with align_corners=False are not supported.")
    ours = {}
    for session, n in sessions.items():
        prefix = f"readout.{session}."
        position = _take(state, prefix + "_mu", where)[0, :, 0, :].clamp(-1, 1)  # (N, 2) as (x, y)
        ours[prefix + "position_raw"] = position.contiguous()
        sigma = _take(state, prefix + "sigma", where)[0].reshape(n, -1).abs().mean(dim=1)
        ours[prefix + "log_sigma"] = torch.log(sigma.clamp(min=1e-4))
        ours[prefix + "weights"] = _take(state, prefix + "_features", where)[0, :, 0, :].t().contiguous()
        bias = state.get(prefix + "bias")
        ours[prefix + "bias"] = bias.clone() if bias is not None else torch.zeros(n)
        _check_neurons(ours[prefix + "bias"], n, session, where)
    return {"readout": "point_gaussian", "readout_position_scale": 1.0}, ours


def _lnp(
    core: Mapping[str, Any],
    cfg: Mapping[str, Any],
    hyper: Mapping[str, Any],
    state: Mapping[str, torch.Tensor],
    where: str,
) -> Converted:
    sessions = _sessions(hyper, state, where)
    kwargs = {
        "temporal_kernel_size": 1,
        "output_nonlinearity": _nonlinearity(cfg.get("nonlinearity", "exp"), where),
        "cut_first_n_frames": int(core.get("cut_first_n_frames") or 0),
    }
    ours = {}
    for session, n in sessions.items():
        prefix = f"readout.{session}."
        ours[prefix + "filters"] = _take(state, prefix + "inner_product_kernel.weight", where).clone()
        bias = state.get(prefix + "inner_product_kernel.bias")
        ours[prefix + "bias"] = bias.clone() if bias is not None else torch.zeros(n)
        _check_neurons(ours[prefix + "bias"], n, session, where)
    return Converted("lnp_full", kwargs, ours)


def _check_grid(grid: torch.Tensor, session: str, where: str) -> None:
    """The stored grid must be the fixed one our readout rebuilds (else the masks would differ)."""
    rows, columns = aspect_grid(grid.shape[1], grid.shape[2])
    expected = torch.stack(torch.meshgrid(rows, columns, indexing="ij"), dim=-1)
    if not torch.allclose(grid.float(), expected.expand_as(grid), atol=1e-6):
        raise CheckpointError(
            f"{where}: the Gaussian-mask grid of session {session!r} is not 1.x's fixed grid; "
            "the checkpoint was edited or comes from an unsupported 1.x version."
        )


def _check_neurons(bias: torch.Tensor, n: int, session: str, where: str) -> None:
    if bias.numel() != n:
        raise CheckpointError(
            f"{where}: session {session!r} has {bias.numel()} neurons in its readout "
            f"but {n} in n_neurons_dict."
        )


_READOUT_MAPPERS = {
    "MultiGaussianMaskReadout": _gaussian_mask,
    "MultiFactorizedReadout": _factorised,
    "MultiSampledGaussianReadout": _point_gaussian,
}
