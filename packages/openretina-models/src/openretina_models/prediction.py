"""Responses of a trained model to whole movies, in overlapping time chunks.

The models are causal, so a movie cut into chunks that overlap by the model's warm-up gives the
same output as one pass over the whole movie, without holding all its activations at once. When
several sessions saw the same movie (the usual case for a test stimulus), `predict_sessions`
runs the shared core once per chunk and only each session's readout separately.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["predict", "predict_sessions"]

_MISSING = object()


def predict(
    model: nn.Module,
    movie: np.ndarray,
    session: str,
    *,
    data_info: Mapping[str, Any] | None = None,
    chunk_frames: int = 2048,
) -> np.ndarray:
    """Responses `(T - warmup_frames, N)` of `session`'s neurons to a movie `(C, T, H, W)` in raw units.

    The stimulus normalisation stored in the checkpoint's `data_info` (`(raw - mean) / std` per
    channel) is applied first; pass `data_info` to override it (for a model not loaded from disk).
    """
    info = data_info if data_info is not None else getattr(model, "data_info", _MISSING)
    if info is _MISSING:
        raise ValueError(
            "This model has no data_info (it was not loaded with load_model); pass data_info=... "
            "(use {} if the movie is already normalised)."
        )
    x = np.asarray(movie, dtype=np.float32)
    in_shape = tuple(model.in_shape)
    if x.ndim != 4 or x.shape[0] != in_shape[0] or x.shape[2:] != in_shape[1:]:
        c, h, w = in_shape
        raise ValueError(
            f"The movie must be (channels, time, height, width) = ({c}, T, {h}, {w}), got {x.shape}."
        )
    x = _normalise(x, (info or {}).get("stimulus_normalisation"))
    return predict_sessions(model, x, [session], chunk_frames=chunk_frames)[session]


@torch.no_grad()
def predict_sessions(
    model: nn.Module, movie: np.ndarray, sessions: Sequence[str], *, chunk_frames: int = 2048
) -> dict[str, np.ndarray]:
    """Responses `(T - warmup_frames, N)` per session to one already-normalised movie `(C, T, H, W)`.

    Runs in eval mode on the model's device and restores the model's mode afterwards. A model whose
    layers pad time (imported from 1.x) runs on the whole movie in one pass. Models with
    a `forward_sessions` method (every registered architecture) compute their core once per chunk
    for all `sessions`.
    """
    warmup = int(model.warmup_frames)
    total = movie.shape[1]
    if total <= warmup:
        raise ValueError(
            f"The movie has {total} frames; the model needs more than {warmup} (its warmup_frames). "
            "Use longer movies, or a model with shorter temporal kernels."
        )
    # Layers that pad time (only in models imported from openretina 1.x) see past a chunk's borders,
    # so chunks would not add up to one pass: such models get the whole movie at once.
    step = total if sees_ahead(model) else max(int(chunk_frames) - warmup, 1)
    device = next(iter(model.parameters())).device
    forward_sessions = getattr(model, "forward_sessions", None)
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in sessions}
    was_training = model.training
    model.eval()
    try:
        for start in range(0, total - warmup, step):
            stop = min(start + warmup + step, total)
            chunk = torch.from_numpy(np.ascontiguousarray(movie[None, :, start:stop], dtype=np.float32))
            chunk = chunk.to(device)
            if forward_sessions is not None:
                results = forward_sessions(chunk, list(sessions))
            else:
                results = {name: model(chunk, name) for name in sessions}
            for name in sessions:
                outputs[name].append(results[name][0].float().cpu().numpy())
    finally:
        model.train(was_training)
    return {name: np.concatenate(parts, axis=0) for name, parts in outputs.items()}


def sees_ahead(model: nn.Module) -> bool:
    """Whether any layer of `model` pads time, i.e. its output depends on later frames."""
    return any(any(getattr(module, "time_pads", ())) for module in model.modules())


def _normalise(x: np.ndarray, normalisation: Mapping[str, Any] | None) -> np.ndarray:
    if not normalisation:
        return x
    shape = (-1, 1, 1, 1)
    mean = np.asarray(normalisation.get("mean", 0.0), dtype=np.float32).reshape(-1)
    std = np.asarray(normalisation.get("std", 1.0), dtype=np.float32).reshape(-1)
    if mean.size not in (1, x.shape[0]) or std.size not in (1, x.shape[0]):
        raise ValueError(
            f"stimulus_normalisation has {mean.size} means and {std.size} stds "
            f"for a {x.shape[0]}-channel movie."
        )
    return (x - mean.reshape(shape)) / std.reshape(shape)
