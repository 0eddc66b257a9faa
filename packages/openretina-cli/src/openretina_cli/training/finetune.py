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

from openretina_cli.config.model import check_compatible
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
