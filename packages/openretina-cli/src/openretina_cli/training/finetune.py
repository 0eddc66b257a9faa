"""Fine-tuning: start from a trained model (``paths.load_model_path``) instead of a fresh one.

The trained model keeps its architecture and weights; sessions of this run's data that it has not
seen get new readouts, initialised from their neurons' mean activity. With
``only_train_readout=true`` the core is frozen, batch-norm running statistics included (see
`openretina_cli.training.lightning_module.freeze_core`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from openretina_cli.errors import ConfigError


def start_from(path: str | Path, dataset: Any) -> nn.Module:
    """The model saved at ``path`` (a directory from ``save_model``), ready to train on ``dataset``."""
    from openretina_models import load_model
    from openretina_models.errors import CheckpointError

    try:
        model = load_model(path)
    except CheckpointError as ex:
        raise ConfigError(
            f"paths.load_model_path={path}: {ex} Point it at a trained model directory "
            "(a run's model/ folder, holding model.json and model.safetensors)."
        ) from None
    check_compatible(model, dataset, f"paths.load_model_path={path}")
    known = dict(model.n_neurons)
    new_sessions = {name: n for name, n in dataset.n_neurons.items() if name not in known}
    if new_sessions:
        means = dataset.mean_activity()
        model.readout.add_sessions(new_sessions, mean_activity={name: means[name] for name in new_sessions})
    return model.train()


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
