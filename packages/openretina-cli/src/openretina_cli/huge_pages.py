"""Let PyTorch put its large CPU tensors on transparent huge pages (issue 24: training's memory).

With `THP_MEM_ALLOC_ENABLE=1` PyTorch aligns every CPU tensor of 2 MiB or more to 2 MiB and asks
the kernel for huge pages there (`madvise`; a kernel whose setting is `never` ignores it). On 1.x's
tutorial benchmark that lowered training's peak resident memory by ~18 MiB (~408 to ~390 MiB) at
the same CPU time per step (docs/benchmarks.md, issue 24). PyTorch reads the variable once, at its
first allocation, so the console script sets it before any command imports torch; a value the user
set (`0` turns it off) is kept, and child processes (DDP workers) inherit it.
"""

from __future__ import annotations

import os

VARIABLE = "THP_MEM_ALLOC_ENABLE"


def allow_torch_huge_pages() -> None:
    """Ask PyTorch for huge pages for large CPU tensors, unless the user already chose."""
    os.environ.setdefault(VARIABLE, "1")
