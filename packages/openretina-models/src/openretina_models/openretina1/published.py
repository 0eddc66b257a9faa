"""The models openretina 1.x publishes, by name: downloaded once from its Hugging Face mirror, converted
once, then loaded from the cache (offline).

The cache is `$OPENRETINA_CACHE_DIRECTORY`, else `$XDG_CACHE_HOME/openretina`, else
`~/.cache/openretina` (the same place `openretina_data` keeps datasets), laid out like the mirror:
`<cache>/model_checkpoints/<date>/<file>.ckpt`, with the converted model beside it in
`<file>.openretina/`. Downloads go through `huggingface_hub` (atomic and resumable), an optional
extra: `pip install "openretina-models[hub]"`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from openretina_models.checkpoint import METADATA_FILE, load_checkpoint
from openretina_models.errors import PublishedModelUnavailable
from openretina_models.openretina1.importer import convert_checkpoint

REPO_ID = "open-retina/open-retina"
REPO_TYPE = "dataset"
CACHE_ENV_VAR = "OPENRETINA_CACHE_DIRECTORY"
MIRROR = f"https://huggingface.co/datasets/{REPO_ID}/resolve/main"

PUBLISHED_MODELS: dict[str, str] = {
    "hoefling_2024_low_res": "model_checkpoints/2026-03-09/hoefling_2024_cnn_low_res.ckpt",
    "hoefling_2024_high_res": "model_checkpoints/2026-03-09/hoefling_2024_cnn_high_res.ckpt",
    "karamanlis_2024_mouse": "model_checkpoints/2026-03-09/karamanlis_2024_mouse.ckpt",
    "karamanlis_2024_marmoset": "model_checkpoints/2026-03-09/karamanlis_2024_marmoset.ckpt",
    "maheswaranathan_2023": "model_checkpoints/2026-03-09/maheswaranathan_2023.ckpt",
    "sridhar_2025": "model_checkpoints/2026-03-09/sridhar_2025.ckpt",
    "goldin_2022_axolotl": "model_checkpoints/2026-03-09/goldin_2022_axolotl.ckpt",
    "goldin_2022_mouse": "model_checkpoints/2026-03-09/goldin_2022_mouse.ckpt",
    "hoefling_2024_base_low_res": "model_checkpoints/27-11-2025/hoefling_2024_base_low_res.ckpt",
}


def cache_dir() -> Path:
    """Where downloaded and converted published models are kept."""
    explicit = os.environ.get(CACHE_ENV_VAR)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "openretina"


def _hub_download() -> Callable[..., str]:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ImportError(
            "Downloading published openretina models needs huggingface_hub: "
            'pip install "openretina-models[hub]"'
        ) from None
    return hf_hub_download


def fetch_checkpoint(name: str) -> Path:
    """The local `.ckpt` of published model `name`, downloaded into the cache on first use."""
    relative = PUBLISHED_MODELS[name]
    target = cache_dir() / relative
    if target.is_file():
        return target
    download = _hub_download()
    try:
        path = download(repo_id=REPO_ID, filename=relative, repo_type=REPO_TYPE, local_dir=str(cache_dir()))
    except Exception as error:  # any network or hub failure: say where the file can be put by hand
        raise PublishedModelUnavailable(
            f"cannot download published model {name!r} ({type(error).__name__}: {error}). "
            f"Without network, download {MIRROR}/{relative} elsewhere and put it at {target} "
            f"(or set {CACHE_ENV_VAR} to a folder laid out like the mirror)."
        ) from None
    return Path(path)


def load_published(name: str, device: str | torch.device = "cpu") -> nn.Module:
    """Published model `name` in our format: converted from its 1.x checkpoint the first time, then
    loaded from the converted copy in the cache."""
    converted = converted_path(name)
    if not (converted / METADATA_FILE).is_file():
        checkpoint = fetch_checkpoint(name)
        if not (converted / METADATA_FILE).is_file():  # another process may have converted it meanwhile
            with contextlib.suppress(FileExistsError):
                convert_checkpoint(checkpoint, converted)
    return load_checkpoint(converted, device=device)


def converted_path(name: str) -> Path:
    """Where the converted copy of published model `name` is cached."""
    return (cache_dir() / PUBLISHED_MODELS[name]).with_suffix(".openretina")
