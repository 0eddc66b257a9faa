"""The native checkpoint format: weights in safetensors (cannot run code on load) plus JSON metadata.

A checkpoint is a directory with

- `model.safetensors`: every parameter and buffer (batch-norm running statistics included);
- `model.json`: `{"format", "format_version", "architecture": {"name", "kwargs"}, "sessions": {name: N},
  "data_info": {...} | null, "versions": {...}, "extra": {...}}`.

Loading rebuilds the model through the registry by name; nothing is imported from a path in a file.
This module knows only this format; `openretina_models.loading.load_model` also accepts a 1.x
checkpoint or a published name and picks the right reader.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from openretina_models._version import __version__
from openretina_models.errors import CheckpointError
from openretina_models.registry import create_model, list_models, to_json

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "METADATA_FILE",
    "WEIGHTS_FILE",
    "CheckpointError",
    "check_state",
    "load_checkpoint",
    "read_metadata",
    "save_model",
]

FORMAT = "openretina-model"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "model.json"


def save_model(
    model: nn.Module,
    directory: str | Path,
    data_info: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write `model.safetensors` and `model.json` into `directory` (created if needed); return it.

    `model` must come from `create_model` (it carries `model.architecture`). Sessions added with
    `model.readout.add_sessions` are recorded, so the loaded model has them too.
    """
    from safetensors.torch import save_file

    architecture = getattr(model, "architecture", None)
    if not isinstance(architecture, Mapping) or "name" not in architecture:
        raise ValueError(
            "save_model needs a model built by openretina_models.create_model (it has no .architecture)."
        )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    kwargs = dict(architecture["kwargs"])
    sessions = dict(getattr(model, "n_neurons", kwargs.get("n_neurons", {})))
    kwargs["n_neurons"] = sessions
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": {
            "name": architecture["name"],
            "kwargs": to_json(kwargs, where="architecture kwargs"),
        },
        "sessions": sessions,
        "data_info": to_json(data_info, where="data_info") if data_info is not None else None,
        "versions": _versions(),
        "extra": to_json(extra or {}, where="extra"),
    }
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    weights_tmp = directory / (WEIGHTS_FILE + ".tmp")
    metadata_tmp = directory / (METADATA_FILE + ".tmp")
    save_file(state, str(weights_tmp), metadata={"format": "pt", "openretina_format": FORMAT})
    metadata_tmp.write_text(json.dumps(metadata, indent=2, sort_keys=False) + "\n")
    # Rename only once both are written, so a crash never leaves a half-written pair.
    weights_tmp.replace(directory / WEIGHTS_FILE)
    metadata_tmp.replace(directory / METADATA_FILE)
    return directory


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The parsed and checked `model.json` of a checkpoint (directory, .json or .safetensors path)."""
    metadata_path, _ = _checkpoint_files(path)
    try:
        metadata = json.loads(metadata_path.read_text())
    except FileNotFoundError:
        raise CheckpointError(
            f"{metadata_path}: file not found; a checkpoint needs {METADATA_FILE}."
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{metadata_path}: not valid JSON ({error}); the file is corrupt.") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise CheckpointError(
            f'{metadata_path}: not an openretina model file (missing "format": {FORMAT!r}).'
        )
    version = metadata.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{metadata_path}: format_version {version!r} is not supported by "
            f"openretina-models {__version__} "
            f"(reads up to {FORMAT_VERSION}); upgrade openretina-models."
        )
    architecture = metadata.get("architecture")
    if (
        not isinstance(architecture, dict)
        or not isinstance(architecture.get("name"), str)
        or not isinstance(architecture.get("kwargs"), dict)
    ):
        raise CheckpointError(f'{metadata_path}: "architecture" must be {{"name": str, "kwargs": {{...}}}}.')
    return metadata


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a saved model through the registry, load its weights strictly, return it in eval mode.

    `path` is the checkpoint directory or its `model.json` / `model.safetensors`. The metadata's
    `data_info` is attached as `model.data_info` (used by `predict`).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    metadata_path, weights_path = _checkpoint_files(path)
    metadata = read_metadata(metadata_path)
    name = metadata["architecture"]["name"]
    if name not in list_models():
        raise CheckpointError(
            f"{metadata_path}: unknown architecture {name!r}; "
            f"this openretina-models knows {', '.join(list_models())}."
        )
    kwargs = dict(metadata["architecture"]["kwargs"])
    try:
        model = create_model(name, **kwargs)
    except (TypeError, ValueError, KeyError) as error:
        raise CheckpointError(f"{metadata_path}: cannot rebuild architecture {name!r}: {error}") from None
    try:
        state = load_file(str(weights_path), device="cpu")
    except FileNotFoundError:
        raise CheckpointError(f"{weights_path}: file not found; a checkpoint needs {WEIGHTS_FILE}.") from None
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"{weights_path}: unreadable safetensors file ({error}); it may be truncated."
        ) from None
    check_state(model, state, weights_path)
    model.load_state_dict(state, strict=True)
    model.data_info = metadata.get("data_info")
    model.checkpoint_metadata = metadata
    return model.to(device).eval()


def _checkpoint_files(path: str | Path) -> tuple[Path, Path]:
    path = Path(path)
    directory = path if path.is_dir() or path.suffix not in (".json", ".safetensors") else path.parent
    if not directory.exists():
        raise CheckpointError(f"{directory}: no such checkpoint directory.")
    return directory / METADATA_FILE, directory / WEIGHTS_FILE


def check_state(model: nn.Module, state: Mapping[str, torch.Tensor], weights_path: str | Path) -> None:
    """Raise a `CheckpointError` naming `weights_path` unless `state` fits `model` tensor by tensor.

    Checked before `load_state_dict`, so the message lists every missing, unexpected and mis-shaped
    tensor at once instead of PyTorch's first mismatch.
    """
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{name} {tuple(state[name].shape)} (expected {shape})"
        for name, shape in expected.items()
        if name in state and tuple(state[name].shape) != shape
    ]
    problems = []
    if missing:
        problems.append(f"missing tensors {_head(missing)}")
    if unexpected:
        problems.append(f"unexpected tensors {_head(unexpected)}")
    if wrong:
        problems.append(f"mis-shaped tensors {_head(wrong)}")
    if problems:
        raise CheckpointError(
            f"{weights_path}: weights do not match the architecture in {METADATA_FILE}: "
            + "; ".join(problems)
            + "."
        )


def _head(items: list[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def _versions() -> dict[str, str]:
    import safetensors

    return {
        "openretina_models": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "safetensors": safetensors.__version__,
        "python": platform.python_version(),
    }
