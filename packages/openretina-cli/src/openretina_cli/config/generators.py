"""The synthetic dataset writers behind ``create-data`` and ``data_io.generate``, by kind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def generator(kind: str) -> Callable[..., Any]:
    """The openretina_data writer for ``--kind``."""
    if kind == "tutorial":
        from openretina_data.synthetic import write_tutorial_dataset

        return write_tutorial_dataset
    from openretina_data.synthetic import write_retina_dataset

    return write_retina_dataset
