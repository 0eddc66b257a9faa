"""A 1.x checkpoint's `data_info` in the form our `save_model` / `predict` / evaluation read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from openretina_models.openretina1.safe_pickle import UnreadObject


def jsonable(value: Any) -> Any:
    """Tensors, arrays and numpy scalars as lists/numbers; unread 1.x objects as their class name."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()] if value.dtype.kind in "SOU" else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, UnreadObject):
        return f"<{value.qualname}>"
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def _number(value: Any) -> float | None:
    if isinstance(value, torch.Tensor | np.ndarray | np.generic):
        value = np.asarray(value).reshape(-1)
        return float(value[0]) if value.size == 1 else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _per_channel(value: Any, channels: int) -> list[float] | None:
    if value is None:
        return None
    values = np.asarray(jsonable(value), dtype=np.float64).reshape(-1)
    if values.size not in (1, channels):
        return None
    return values.tolist()


def convert_data_info(
    info: Mapping[str, Any] | None, sessions: Mapping[str, int], in_shape: tuple[int, int, int]
) -> dict[str, Any]:
    """Our data_info: input shape, frame rate, pixel size, stimulus normalisation, per-session
    neuron ids, metadata, mean activity and pretrained performance; 1.x-only fields under `openretina1`."""
    info = dict(info or {})
    mean_activity = info.get("mean_activity_dict") or {}
    performance = info.get("pretrained_performance") or {}
    session_kwargs = info.get("sessions_kwargs") or {}
    described: dict[str, dict[str, Any]] = {}
    for name, n in sessions.items():
        metadata = {str(k): jsonable(v) for k, v in (session_kwargs.get(name) or {}).items()}
        roi_ids = metadata.get("roi_ids")
        neuron_ids = roi_ids if isinstance(roi_ids, list) and len(roi_ids) == n else list(range(n))
        entry: dict[str, Any] = {"n_neurons": int(n), "neuron_ids": neuron_ids, "metadata": metadata}
        if name in mean_activity:
            entry["mean_activity"] = jsonable(mean_activity[name])
        if name in performance:
            entry["pretrained_performance"] = jsonable(performance[name])
        described[name] = entry
    mean, std = (
        _per_channel(info.get("stim_mean"), in_shape[0]),
        _per_channel(info.get("stim_std"), in_shape[0]),
    )
    normalisation = {"mean": mean, "std": std} if mean is not None and std is not None else None
    frame_rate = _number(info.get("stimulus_rate_hz"))
    if frame_rate is None:
        frame_rate = _number(info.get("response_rate_hz"))
    known = {
        "n_neurons_dict",
        "mean_activity_dict",
        "input_shape",
        "sessions_kwargs",
        "stim_mean",
        "stim_std",
        "pretrained_performance",
        "retina_pixel_size_um",
    }
    return {
        "input_shape": list(in_shape),
        "frame_rate_hz": frame_rate,
        "pixel_size_um": _number(info.get("retina_pixel_size_um")),
        "stimulus_normalisation": normalisation,
        "response_normalisation": None,
        "sessions": described,
        "train_stimuli": [],
        "test_stimuli": [],
        "openretina1": {key: jsonable(value) for key, value in info.items() if key not in known},
    }
