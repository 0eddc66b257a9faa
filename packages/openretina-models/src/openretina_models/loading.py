"""`load_model`: one entry point for every model source, above the formats it chooses between.

A path or name is one of

- a native checkpoint folder (or its `model.json` / `model.safetensors`): read by `checkpoint`;
- an openretina 1.x Lightning checkpoint (a `.ckpt`, or any zip file): converted on the fly by
  `openretina1.importer`, without executing anything stored in it;
- the name of a model 1.x publishes (e.g. `"hoefling_2024_high_res"`): downloaded and converted once
  into the cache by `openretina1.published` (needs `openretina-models[hub]`).

Keeping the choice here lets the native format know nothing about 1.x, and the 1.x importer write
and read the native format without importing its caller. The 1.x importer is imported on first
use, so `import openretina_models` does not pay for it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from openretina_models.checkpoint import load_checkpoint

__all__ = ["load_model"]


def load_model(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The model saved at `path` (or published as `path`), its weights loaded strictly, in eval mode.

    `path` is our checkpoint directory or its `model.json` / `model.safetensors`; the metadata's
    `data_info` is attached as `model.data_info` (used by `predict`). `path` may also be an
    openretina 1.x Lightning checkpoint (`.ckpt`, read without executing anything stored in it and
    converted on the fly) or the name of a model 1.x publishes (e.g. `"hoefling_2024_high_res"`,
    downloaded once into the cache; needs `openretina-models[hub]`).
    """
    from openretina_models import openretina1

    if openretina1.is_openretina1_checkpoint(path):
        return openretina1.load_openretina1(path, device)
    if not Path(path).exists() and str(path) in openretina1.PUBLISHED_MODELS:
        return openretina1.load_published(str(path), device)
    return load_checkpoint(path, device)
