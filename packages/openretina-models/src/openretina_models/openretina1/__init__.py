"""Models trained with openretina 1.x: read their Lightning checkpoints safely and rebuild them here.

- `importer`: `load_openretina1(path)` reads a `.ckpt` without executing anything stored in it and
  rebuilds the model on a registered architecture; `convert_checkpoint` writes it in our format.
- `safe_pickle`: the restricted unpickler that reads a `.ckpt`.
- `architecture`: maps 1.x hyper-parameters and weights onto our architectures.
- `data_info`: carries a 1.x checkpoint's data information across.
- `published`: the models 1.x publishes, by name, downloaded and converted once into the cache.

The result predicts the same numbers as 1.x's model and saves with `save_model` like any of ours.
"""

from openretina_models.openretina1.importer import (
    convert_checkpoint,
    is_openretina1_checkpoint,
    load_openretina1,
)
from openretina_models.openretina1.published import PUBLISHED_MODELS, load_published

__all__ = [
    "PUBLISHED_MODELS",
    "convert_checkpoint",
    "is_openretina1_checkpoint",
    "load_openretina1",
    "load_published",
]
