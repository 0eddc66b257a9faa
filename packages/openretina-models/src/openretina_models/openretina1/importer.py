"""Import a model trained with openretina 1.x: its Lightning checkpoint, read safely, rebuilt here.

`load_openretina1(path)` reads a `.ckpt` without executing anything stored in it (see
`safe_pickle`), maps its hyper-parameters and weights onto a registered architecture (see
`architecture`) and carries its data information across (see `data_info`). The result predicts
the same numbers as 1.x's model and saves with `save_model` like any of ours.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from openretina_models.checkpoint import METADATA_FILE, check_state, save_model
from openretina_models.errors import CheckpointError
from openretina_models.openretina1.architecture import convert
from openretina_models.openretina1.data_info import convert_data_info, jsonable
from openretina_models.openretina1.safe_pickle import load_checkpoint_dict, plain
from openretina_models.registry import create_model

__all__ = ["convert_checkpoint", "is_openretina1_checkpoint", "load_openretina1"]

_ZIP_MAGIC = b"PK\x03\x04"


def is_openretina1_checkpoint(path: str | Path) -> bool:
    """Whether `path` looks like a torch/Lightning checkpoint file (a `.ckpt`, or any zip file)."""
    path = Path(path)
    if not path.is_file():
        return False
    if path.suffix == ".ckpt":
        return True
    with path.open("rb") as handle:
        return handle.read(4) == _ZIP_MAGIC


def load_openretina1(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The model of a 1.x Lightning checkpoint, in eval mode, with `data_info` attached."""
    path = Path(path)
    where = str(path)
    content = load_checkpoint_dict(path)
    if not isinstance(content.get("state_dict"), dict) or not isinstance(
        content.get("hyper_parameters"), dict
    ):
        raise CheckpointError(
            f"{path}: a PyTorch file but not a Lightning checkpoint of an openretina 1.x model "
            "(no state_dict and hyper_parameters)."
        )
    hyper = plain(content["hyper_parameters"])
    state = {
        str(k): v.detach().clone() for k, v in content["state_dict"].items() if isinstance(v, torch.Tensor)
    }
    converted = convert(hyper, state, where)
    info = hyper.get("data_info") if isinstance(hyper.get("data_info"), dict) else {}
    in_shape = _in_shape(hyper, info, where)
    sessions = {str(k): int(v) for k, v in (hyper.get("n_neurons_dict") or info["n_neurons_dict"]).items()}
    try:
        model = create_model(converted.name, in_shape=in_shape, n_neurons=sessions, **converted.kwargs)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: cannot rebuild this 1.x model here: {error}") from None
    check_state(model, converted.state, path)
    model.load_state_dict(converted.state, strict=True)
    model.data_info = convert_data_info(info, sessions, in_shape)
    model.data_info["openretina1"]["hyper_parameters"] = {
        key: jsonable(value) for key, value in hyper.items() if key != "data_info"
    }
    model.checkpoint_metadata = {
        "source": "openretina 1.x Lightning checkpoint",
        "path": str(path),
        "lightning_version": jsonable(content.get("pytorch-lightning_version")),
        "epoch": jsonable(content.get("epoch")),
        "global_step": jsonable(content.get("global_step")),
    }
    return model.to(device).eval()


def _in_shape(hyper: dict[str, Any], info: dict[str, Any], where: str) -> tuple[int, int, int]:
    shape = info.get("input_shape")
    if shape is not None and len(shape) == 3:
        return tuple(int(s) for s in shape)  # type: ignore[return-value]
    shape = hyper.get("in_shape")
    if shape is not None and len(shape) == 4:
        c, _, h, w = (int(s) for s in shape)
        return c, h, w
    raise CheckpointError(f"{where}: the checkpoint does not record the stimulus shape (in_shape).")


def convert_checkpoint(checkpoint: str | Path, out: str | Path) -> Path:
    """Convert a 1.x checkpoint into our format (`model.safetensors` + `model.json`) in directory `out`.

    The model is converted completely before anything is written, then saved into a temporary
    folder beside `out` that is renamed into place, so a failure never leaves a partial `out`.
    `out` must not exist yet (or be an empty folder).
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} already exists and is not empty; choose a new output folder.")
    model = load_openretina1(checkpoint)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        save_model(
            model, staging, data_info=model.data_info, extra={"converted_from": model.checkpoint_metadata}
        )
        if out.is_dir():
            out.rmdir()  # empty (checked above); os.replace needs the name free
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    assert (out / METADATA_FILE).is_file()
    return out
