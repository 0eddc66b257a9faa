"""Python's cyclic garbage collector around a training run.

Starting a run creates ~340 000 long-lived objects (torch, Lightning, Hydra) and almost no cyclic
garbage (~10 000 unreachable objects after the imports). The collector's passes over that heap
cost ~0.4 s of the imports and ~1 s of interpreter shutdown on a 2-core machine (measured with
torch 2.13 CPU, Lightning 2.6), and find next to nothing. So:

- the collector is off while a run starts (imports, composition, data, model);
- when training starts, everything alive is frozen (later passes skip it) and the collector is
  back on, so the training loop's garbage is collected as usual;
- when the run ends, the frozen objects go back under the collector (no leak across the jobs of a
  sweep, or for a caller that trains in-process);
- when a run of the ``openretina`` console script has succeeded, the process runs its exit
  handlers (loggers, logging), flushes its output and ends without the interpreter's teardown,
  which would otherwise spend ~1 s collecting that heap once more. (Freezing it instead makes
  nanobind-based extensions, such as Triton's, print pages of "leaked" objects at exit.)
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import sys
from collections.abc import Iterator
from typing import Any, NoReturn


def pause_for_startup() -> None:
    gc.disable()


def training_started() -> None:
    gc.freeze()
    gc.enable()


def run_ended() -> None:
    gc.unfreeze()
    gc.enable()


def exit_without_teardown(code: int = 0) -> NoReturn:
    atexit._run_exitfuncs()  # what normal shutdown runs first: loggers, logging.shutdown, ...
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def return_freed_memory() -> None:
    """Give the heap pages that training freed back to the operating system (glibc's malloc_trim).

    glibc keeps freed memory for reuse, so a process's resident size stays at its training peak
    and what comes after training (evaluation, the report's figures) can only add to it. Handing
    the free pages back first lets those allocations fill them again instead (a few milliseconds;
    nothing on other C libraries).
    """
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


# glibc's mallopt: M_MMAP_THRESHOLD (blocks this large or larger get their own mapping) and
# M_TRIM_THRESHOLD (free memory this large at the heap's top goes back to the system). Its adaptive
# rule, which any call to mallopt ends, moves the first up to the largest mapped block freed so far
# (at most 32 MiB) and the second to twice that.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MAPPED_FROM_DEFAULT = 128 * 1024
_MAPPED_FROM_LATER = 32 * 1024 * 1024
_MAPPED_FROM_AFTER_TRAINING = 8 * 1024 * 1024


@contextlib.contextmanager
def large_blocks_outside_heap() -> Iterator[None]:
    """Inside: every block of 128 KiB or more gets its own mapping, returned to the system when freed.

    So work done here leaves in the heap only what it allocated in small blocks (issue 24: the
    kernels a training step builds, `training.cpu_kernels`). Afterwards large blocks come from the
    heap again, up to 32 MiB, and the heap keeps up to 64 MiB of free memory at its top: training's
    steps reuse it instead of giving it back and faulting it in again at the next step (fewer page
    faults per step than glibc's adaptive rule gave). Nothing on other C libraries.
    """
    libc = _glibc()
    if libc is None:
        yield
        return
    libc.mallopt(_M_MMAP_THRESHOLD, _MAPPED_FROM_DEFAULT)
    try:
        yield
    finally:
        libc.mallopt(_M_MMAP_THRESHOLD, _MAPPED_FROM_LATER)
        libc.mallopt(_M_TRIM_THRESHOLD, 2 * _MAPPED_FROM_LATER)


def large_blocks_after_training() -> None:
    """After training: blocks of 8 MiB or more mapped, 16 MiB of free memory kept at the heap's top.

    What glibc's adaptive rule reaches in a run whose first training batch is mapped and freed
    (7.5 MiB on 1.x's tutorial), so evaluation, baseline and report use memory as they did before
    `large_blocks_outside_heap` ended that rule (issue 24: keeping training's 32 and 64 MiB raised
    the post-training peak by 9 MiB).
    """
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, _MAPPED_FROM_AFTER_TRAINING)
        libc.mallopt(_M_TRIM_THRESHOLD, 2 * _MAPPED_FROM_AFTER_TRAINING)


def _glibc() -> Any:
    """glibc through ctypes, or None (another C library or system)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    except (OSError, AttributeError):
        return None
    return libc
