"""Running small tensor work on one thread.

Fitting a few thousand numbers (receptive-field fits, a linear baseline) is dominated by the cost
of starting each operation, not by arithmetic: more intra-op threads only add synchronisation,
which on a busy machine makes such work several times slower.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["one_thread"]


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch on one intra-op thread inside the block; the previous number afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
