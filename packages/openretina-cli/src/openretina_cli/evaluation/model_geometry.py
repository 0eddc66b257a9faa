"""Where a trained model's readouts look on the stimulus and what its first layer's kernels are,
as numpy arrays. This is the torch side of the report's model figures and cards: it runs before
drawing starts (drawing may happen in a forked helper, where torch must not run) and imports no
matplotlib.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np


class ReadoutGeometry(NamedTuple):
    """Where a session's Gaussian readouts look on the stimulus, in pixels."""

    x: np.ndarray
    y: np.ndarray
    sigma: np.ndarray | None  # None when the readout has no learned extent
    shift: tuple[float, float]  # (x, y) added to the readout parameters: the core's learned offset


# A common offset below this (pixels) is left out of the figure's title.
SHIFT_SHOWN = 0.25


def readout_geometry(model: Any, name: str) -> ReadoutGeometry | None:
    """A session's Gaussian readouts in stimulus pixels, placed where the model's neurons look;
    None when the readout has no learned positions.

    Positions live on the core's feature map; `core.feature_pixels()` (when the core has it) maps
    them onto the stimulus through the core's padding, strides and pooling. The core can also learn
    to shift its features (kernels moved one way, readouts the other fit the data equally well), so
    the readouts are moved by the median offset between each neuron's linear receptive-field peak
    (its gradient at a grey screen) and its readout position.
    """
    readout = model.readout[name]
    if not hasattr(readout, "position"):
        return None
    _, height, width = (int(s) for s in getattr(readout, "in_shape", model.in_shape))
    feature_pixels = getattr(getattr(model, "core", None), "feature_pixels", None)
    scale, offset = feature_pixels() if callable(feature_pixels) else (1.0, 0.0)
    position = readout.position.detach().cpu().numpy()
    x = offset + scale * (position[:, 0] + 1) / 2 * (width - 1)
    y = offset + scale * (position[:, 1] + 1) / 2 * (height - 1)
    log_sigma = getattr(readout, "log_sigma", None)
    sigma = None
    if log_sigma is not None:
        # sigma lives in [-1, 1] feature-map units: half the map spans (size - 1) / 2 pixels
        sigma = np.exp(log_sigma.detach().cpu().numpy()) * scale * (max(width, height) - 1) / 2
    shift = learned_shift(model, name, x, y)
    return ReadoutGeometry(x + shift[0], y + shift[1], sigma, shift)


def readout_geometries(model: Any) -> dict[str, ReadoutGeometry | None]:
    """`readout_geometry` of every session of `model`, measured once for the figure and the cards
    (each costs a pass of the model's gradient)."""
    if not hasattr(model, "readout"):
        return {}
    return {name: readout_geometry(model, name) for name in sorted(getattr(model, "n_neurons", {}))}


def learned_shift(model: Any, name: str, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(dx, dy) pixels from the readout positions `x`, `y` to where the neurons' linear receptive
    fields peak (median over neurons with a non-zero gradient); (0, 0) when it cannot be measured."""
    from openretina_data.receptive_fields import receptive_field_centres
    from openretina_models.insilico import grey_receptive_fields

    try:
        fields = grey_receptive_fields(model, name).numpy()  # (N, C, T, H, W)
    except Exception:  # a model that cannot take a grey clip: show the parameters as they are
        return 0.0, 0.0
    stas = fields.transpose(0, 2, 1, 3, 4)  # (N, T, C, H, W), the layout of an STA
    centres = receptive_field_centres(stas, min_significance=-np.inf).centres  # (row, col)
    live = np.abs(fields).reshape(len(fields), -1).max(axis=1) > 0
    if not live.any() or len(x) != len(fields):
        return 0.0, 0.0
    dx = float(np.median(centres[live, 1] - x[live]))
    dy = float(np.median(centres[live, 0] - y[live]))
    return dx, dy


def true_centres(truth: Any, name: str, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """A simulated retina's true receptive-field centres (x, y) in pixels, in the neurons' order."""
    if truth is None or name not in getattr(truth, "sessions", {}):
        return None
    position = np.asarray(truth.sessions[name].get("position"))  # (N, 2) as (row, column)
    if position.ndim != 2 or position.shape[1] != 2:
        return None
    ids = np.asarray(ids)
    if len(ids) != position.shape[0]:
        position = position[ids.astype(np.int64)]
    return position[:, 1], position[:, 0]


def first_layer_kernel(model: Any) -> np.ndarray | None:
    """The first core layer's kernel (out, in, kt, kh, kw); None when the model has none."""
    return first_layer(model)[1]


def first_layer(model: Any) -> tuple[str | None, np.ndarray | None]:
    """The first core layer's class name and kernel (out, in, kt, kh, kw): (None, None) without a
    convolutional core, (name, None) when that layer exposes no kernel."""
    convs = getattr(getattr(model, "core", None), "convs", None)
    if not convs:
        return None, None
    return type(convs[0]).__name__, full_kernel(convs[0])


def full_kernel(conv: Any) -> np.ndarray | None:
    """The layer's kernel as (out, in, kt, kh, kw), for either convolution type."""
    import torch

    with torch.no_grad():
        inner = getattr(conv, "conv", None)
        if isinstance(inner, torch.nn.Conv3d):
            return inner.weight.detach().cpu().numpy()
        if hasattr(conv, "spatial_weight") and hasattr(conv, "temporal_weight"):
            spatial = conv.spatial_weight().detach().cpu().numpy()  # (out, in, kh, kw)
            temporal = conv.temporal_weight().detach().cpu().numpy()  # (out, kt)
            if spatial.ndim == 4 and temporal.ndim == 2:
                return spatial[:, :, None] * temporal[:, None, :, None, None]
    return None
