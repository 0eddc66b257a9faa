"""The network for a run: an architecture from the openretina_models registry, by name."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf
from openretina_data import Dataset
from openretina_models import create_model, list_models
from openretina_models.registry import model_hyperparameters as registered_hyperparameters
from openretina_models.registry import model_signature
from torch import nn

from openretina_cli.errors import ConfigError, did_you_mean, unknown_key_message


def model_hyperparameters(node: DictConfig) -> tuple[str, dict[str, Any]]:
    """``(name, hyperparameters)`` from the model group, checked against the registry."""
    hyper = OmegaConf.to_container(node, resolve=True)
    assert isinstance(hyper, dict)
    name = hyper.pop("name", None)
    if "_target_" in hyper:
        raise ConfigError(
            "model._target_ is not used: the model group picks an architecture by registry name. "
            f"Replace `_target_` with `name: <one of {', '.join(list_models())}>`."
        )
    available = list_models()
    if name not in available:
        hint = did_you_mean(str(name), available, "model.name=")
        raise ConfigError(
            f"Unknown model name {name!r} (config key 'model.name').{hint} "
            f"Registered architectures: {', '.join(available)}. Set it with `model.name=NAME` "
            "or pick a config with `model=OPTION`."
        )
    accepted = list(registered_hyperparameters(name))
    for key in hyper:
        if key not in accepted:
            raise ConfigError(unknown_key_message(f"model.{key}", accepted, f"architecture '{name}'"))
    return str(name), {str(k): v for k, v in hyper.items()}


def receptive_field_locations(dataset: Dataset) -> dict[str, list[list[int]]]:
    """``{session: [[row, col], ...]}`` from the ``rf_row``/``rf_col`` neuron metadata a reader
    recorded (e.g. Sridhar 2025 from its STAs), for the sessions that have them."""
    located = {}
    for name, session in dataset.sessions.items():
        metadata = session.neuron_metadata
        if "rf_row" in metadata and "rf_col" in metadata:
            rows, cols = metadata["rf_row"].tolist(), metadata["rf_col"].tolist()
            located[name] = [[int(r), int(c)] for r, c in zip(rows, cols, strict=True)]
    return located


# `model.stride: auto`: the first layer is strided on frames at least this many pixels on each side.
AUTO_STRIDE_MIN_SIDE = 40


def resolve_auto_stride(hyper: dict[str, Any], in_shape: tuple[int, ...]) -> str | None:
    """Replace ``stride: auto`` by per-layer strides for these frames; a note saying what was chosen.

    Large frames (>= 40 px on each side) get a first layer with spatial stride 2: its temporal
    kernels and every later layer then run on a quarter of the pixels (issue 14: ~4x the training
    throughput on 50x50 frames); smaller frames keep full resolution.
    """
    stride = hyper.get("stride")
    if isinstance(stride, str) and stride != "auto":
        hint = did_you_mean(stride, ["auto"], "model.stride=")
        raise ConfigError(
            f"model.stride must be auto, a positive int or one int per layer, got {stride!r}.{hint}"
        )
    if stride != "auto":
        return None
    layers = len(hyper.get("hidden_channels") or [1])
    height, width = int(in_shape[-2]), int(in_shape[-1])
    first = 2 if min(height, width) >= AUTO_STRIDE_MIN_SIDE else 1
    hyper["stride"] = [first] + [1] * (layers - 1)
    return f"model.stride=auto: {hyper['stride']} for {height}x{width} frames"


def _per_layer(value: Any, layers: int) -> list[Any]:
    """One value per layer from a scalar or a list (lists of another length are left to the model)."""
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value] * layers


def fit_spatial_kernels(hyper: dict[str, Any], in_shape: tuple[int, ...]) -> str | None:
    """Shrink spatial kernels that are wider than the frame can feed; a note saying what was chosen.

    With "same" padding, a kernel of ``k`` pixels on a side of ``n`` pixels has weights that only
    ever multiply the zero padding when ``k > 2n - 1`` (on 1x1 full-field frames an 11x11 kernel
    has one useful weight, the centre). Each such layer gets a kernel of ``2n - 1`` pixels, ``n``
    the longer side that reaches the layer (after the strides and pooling before it): the same
    function with no dead weights, and a first-layer figure that shows only what sees data.
    """
    kernels = hyper.get("spatial_kernel_sizes")
    if kernels is None:
        return None
    layers = len(hyper.get("hidden_channels") or [1])
    sizes = _per_layer(kernels, layers)
    paddings = _per_layer(hyper.get("spatial_padding", "same"), layers)
    strides = _per_layer(hyper.get("stride", 1), layers)
    pools = _per_layer(hyper.get("pooling", 1), layers)
    if not len(sizes) == len(paddings) == len(strides) == len(pools) == layers:
        return None  # the model reports the mismatched lengths in its own words
    height, width = int(in_shape[-2]), int(in_shape[-1])
    side = max(height, width)
    fitted = []
    for size, padding, stride, pool in zip(sizes, paddings, strides, pools, strict=True):
        fitted.append(min(int(size), 2 * side - 1) if padding == "same" else int(size))
        side = max(1, -(-side // max(1, int(stride))) // max(1, int(pool)))
    if fitted == [int(k) for k in sizes]:
        return None
    hyper["spatial_kernel_sizes"] = fitted
    return (
        f"model.spatial_kernel_sizes: {fitted} (from {[int(k) for k in sizes]}) for {height}x{width} "
        "frames: wider kernels would have weights that only ever see the padding"
    )


def build_model(node: DictConfig, dataset: Dataset) -> nn.Module:
    name, hyper = model_hyperparameters(node)
    shape = tuple(dataset.data_info.input_shape)
    for note in (resolve_auto_stride(hyper, shape), fit_spatial_kernels(hyper, shape)):
        if note:
            print(f"Note: {note}.")
    if "rf_locations" in model_signature(name).parameters and hyper.get("rf_locations") is None:
        hyper["rf_locations"] = receptive_field_locations(dataset) or None  # single-cell models
    try:
        return create_model(
            name,
            in_shape=tuple(dataset.data_info.input_shape),
            n_neurons=dataset.n_neurons,
            mean_activity=dataset.mean_activity(),
            **hyper,
        )
    except (TypeError, ValueError) as ex:
        raise ConfigError(f"model ({name}): {ex} Fix the model.* values in your config.") from ex


def check_compatible(model: nn.Module, dataset: Any, what: str, require_sessions: bool = False) -> None:
    """The data must have the frame shape the model was trained on and the same neurons per session
    (and, with ``require_sessions``, only sessions the model has a readout for). ``what`` names the
    model in the message (e.g. ``paths.load_model_path=DIR``)."""
    expected = tuple(int(s) for s in model.in_shape)
    actual = tuple(int(s) for s in dataset.data_info.input_shape)
    if expected != actual:
        raise ConfigError(
            f"{what}: the model takes frames of (channels, height, width) = {expected}, but this data has "
            f"{actual}. Use data of the model's frame shape (check data_io's channels and frame size), "
            "or a model trained on this data."
        )
    mismatched = [
        f"{name} ({model.n_neurons[name]} in the model, {n} in the data)"
        for name, n in dataset.n_neurons.items()
        if name in model.n_neurons and model.n_neurons[name] != n
    ]
    if mismatched:
        raise ConfigError(
            f"{what}: sessions with the same name but different neurons: {', '.join(mismatched)}. "
            "Use the same quality_checks as the trained model so the same neurons are kept, or rename "
            "these sessions."
        )
    unknown = sorted(set(dataset.n_neurons) - set(model.n_neurons))
    if require_sessions and unknown:
        raise ConfigError(
            f"{what}: the model has no readout for the data's session(s) {', '.join(unknown)} "
            f"(its sessions: {', '.join(sorted(model.n_neurons))}). Evaluate on data of the model's "
            "sessions, or fine-tune it on these first (paths.load_model_path=MODEL)."
        )
