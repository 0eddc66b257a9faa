"""Running small tensor work on one thread, and independent such jobs side by side.

Fitting a few thousand numbers (receptive-field fits, a linear baseline) is dominated by the cost
of starting each operation, not by arithmetic: more intra-op threads only add synchronisation,
which on a busy machine makes such work several times slower. Independent jobs (the batches of a
characterisation) use the other cores instead, one thread each.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

__all__ = ["OneThreadWorkers", "one_thread"]

T = TypeVar("T")


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch on one intra-op thread inside the block; the previous number afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class OneThreadWorkers:
    """Independent torch jobs run by `count` Python threads at once, each with torch on one thread.

    Many small operations (a forward pass on a batch of eight short movies) use cores better side
    by side, one per core, than each split over all cores: split, every operation waits for its
    slowest part, and on a busy machine that wait is most of its time. Each worker sets torch's
    thread count itself, as that count is kept per thread (a new thread starts with all cores).
    A job's result is what it gives on one thread in the caller's. With `count` 1 nothing starts:
    each job runs in the caller's thread, with its torch threads as they are, when its result is
    first asked for. Use as a context manager; `submit(job)` returns a function giving its result
    (and raising its error)."""

    def __init__(self, count: int) -> None:
        self.count = max(1, int(count))
        self._pool: ThreadPoolExecutor | None = None
        self._threads = contextlib.ExitStack()

    def __enter__(self) -> OneThreadWorkers:
        if self.count > 1:
            self._threads.enter_context(one_thread())
            self._pool = ThreadPoolExecutor(self.count, "openretina-torch", torch.set_num_threads, (1,))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._threads.close()

    def submit(self, job: Callable[[], T]) -> Callable[[], T]:
        if self._pool is not None:
            return self._pool.submit(job).result
        return functools.cache(job)
