"""Time a data pipeline from opening the files to the end of one training epoch.

Standard library only: both tools' helper scripts (``ours_run.py`` in our environment and
``peer_run.py`` in 1.1.1's) import it from this folder, so the two are measured the same way
without either importing the other's code.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Iterable
from typing import Any


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def probe_epoch(open_batches: Callable[[], Iterable[Any]]) -> dict[str, float]:
    """Open the data with ``open_batches()``, fetch the first batch, then run the rest of the epoch."""
    rss_before = _peak_rss_mib()
    t0 = time.perf_counter()
    iterator = iter(open_batches())
    next(iterator)
    first_batch_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    n = 1
    for _ in iterator:
        n += 1
    return {
        "open_to_first_batch_s": first_batch_s,
        "rest_of_epoch_s": time.perf_counter() - t1,
        "batches_per_epoch": n,
        "rss_before_mib": rss_before,
        "peak_rss_mib": _peak_rss_mib(),
    }
