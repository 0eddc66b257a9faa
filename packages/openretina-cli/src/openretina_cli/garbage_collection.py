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
from typing import NoReturn


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
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
