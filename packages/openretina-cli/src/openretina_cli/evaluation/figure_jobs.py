"""Draw a report's figures in two processes at once where the system allows it.

matplotlib draws in Python, one figure at a time, and a report's figures cost more than the rest
of the report together; on Linux a forked copy of this process draws part of them meanwhile, so
the report takes about half as long on two free cores (issue 24). Everything the copy needs is
already in memory, so nothing is pickled: it writes its PNGs and sends back only their paths and
notes. Figures that call torch are drawn here (torch's thread pool is not safe in a forked copy),
and any figure the copy did not deliver (it failed, crashed or hung) is drawn here again, so the
result and its errors are those of drawing everything in this process.

When a training command started a figure zygote (`figure_zygote`, matplotlib loaded), jobs that
are plain data (`FigureCall`) are drawn by drawers it forks instead, so this process need not
import matplotlib at all; the guarantees are the same.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import select
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openretina_cli.evaluation import figure_zygote
from openretina_cli.evaluation.figure_zygote import draw_quietly, send_results

# Longest wait for the helper beyond the time this process spent on its own share, and at least.
PATIENCE_FACTOR = 5.0
MIN_PATIENCE_S = 60.0

Drawn = tuple[Path | None, list[str]]  # the figure's file (None: it does not apply) and its notes


def import_in_background(module: str) -> threading.Thread:
    """Import `module` (matplotlib's, for figures) on a thread while this process runs torch code,
    which releases the GIL: the import then mostly uses an otherwise idle core. Errors are left
    to the code that imports it again to draw, which reports them."""

    def load() -> None:
        with contextlib.suppress(Exception):
            importlib.import_module(module)

    thread = threading.Thread(target=load, name=f"openretina-import-{module}", daemon=True)
    thread.start()
    return thread


@dataclass(frozen=True)
class FigureCall:
    """A figure as plain data: ``module:function`` and its arguments (arrays, paths, numbers),
    picklable, so that a figure zygote can draw it; the function is imported only when drawn. With
    `notes`, the notes list is passed as ``notes=``."""

    function: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    notes: bool = False

    def __call__(self, notes: list[str]) -> Path | None:
        module, name = self.function.split(":")
        draw = getattr(importlib.import_module(module), name)
        return draw(*self.args, **self.kwargs, **({"notes": notes} if self.notes else {}))


@dataclass
class FigureJob:
    """One figure: `draw(notes)` writes it and returns its path (None when it does not apply)."""

    draw: Callable[[list[str]], Path | None]
    cost: float = 1.0  # relative drawing time, to share the work evenly
    uses_torch: bool = False  # drawn in this process
    needs_baseline: bool = False  # draws the baseline's scores: not before they exist


def can_fork() -> bool:
    """Whether a forked helper may draw: Linux only (fork is unsafe on macOS, absent on Windows),
    and only with a second CPU to draw on (on one, a helper only adds the cost of forking)."""
    return sys.platform.startswith("linux") and hasattr(os, "fork") and len(os.sched_getaffinity(0)) > 1


def draw_all(jobs: Sequence[FigureJob], parallel: bool | None = None, extra_cost: float = 0.0) -> list[Drawn]:
    """Every job's result, in the jobs' order. `parallel` (default: `can_fork()`) shares them with
    a forked helper; `extra_cost` is work this process does after the figures (the cards, the page),
    counted on its side when sharing."""
    if parallel is None:
        parallel = can_fork()
    helper = None
    if parallel and _zygote() is not None:  # its drawer draws every figure it can: none is drawn here
        mine = [i for i, job in enumerate(jobs) if job.uses_torch]
        theirs = [i for i, job in enumerate(jobs) if not job.uses_torch]
        helper = next(iter(_from_zygote(jobs, [theirs])), None) if theirs else None
    if helper is None:
        mine, theirs = share(jobs, extra_cost) if parallel and len(jobs) > 1 else (list(range(len(jobs))), [])
        helper = _Helper.start(jobs, theirs) if theirs else None
    if helper is None:
        mine, theirs = sorted(mine + theirs), []
    results: dict[int, Drawn] = {}
    try:
        started = time.perf_counter()
        for index in mine:
            results[index] = _draw(jobs[index])
        if helper is not None:
            patience = max(MIN_PATIENCE_S, PATIENCE_FACTOR * (time.perf_counter() - started))
            results.update(helper.collect(patience))
    finally:
        if helper is not None:
            helper.stop()
    for index in theirs:
        if index not in results:  # the helper did not deliver it: draw it here (and raise its error)
            results[index] = _draw(jobs[index])
    return [results[index] for index in range(len(jobs))]


class Background:
    """Jobs drawn by forked helpers (two: the work is shared by cost) while this process goes on
    with other work (say, fitting the baseline); `results()` waits for them, drawing here whatever
    a helper did not deliver. Without fork (or with `parallel=False`) nothing starts, and
    `results()` draws them all here."""

    def __init__(self, jobs: Sequence[FigureJob], parallel: bool | None = None) -> None:
        self.jobs = list(jobs)
        self.started = time.perf_counter()
        wanted = can_fork() if parallel is None else parallel
        groups: list[list[int]] = [[], []]  # torch jobs stay out: `results()` draws them here
        loads = [0.0, 0.0]
        free = [i for i, job in enumerate(self.jobs) if not job.uses_torch] if wanted else []
        for index in sorted(free, key=lambda i: -self.jobs[i].cost):
            side = 0 if loads[0] <= loads[1] else 1
            groups[side].append(index)
            loads[side] += self.jobs[index].cost
        groups = [sorted(group) for group in groups if group]
        helpers = _from_zygote(self.jobs, groups) if groups and _zygote() is not None else []
        self.helpers = helpers or [h for group in groups if (h := _Helper.start(self.jobs, group))]

    def results(self) -> list[Drawn]:
        delivered: dict[int, Drawn] = {}
        try:
            for helper in self.helpers:
                patience = max(MIN_PATIENCE_S, PATIENCE_FACTOR * (time.perf_counter() - self.started))
                delivered.update(helper.collect(patience))
        finally:
            self.close()
        return [delivered[i] if i in delivered else _draw(job) for i, job in enumerate(self.jobs)]

    def close(self) -> None:
        """Stop the helpers (killed when not finished) without waiting for their results."""
        for helper in self.helpers:
            helper.stop()
        self.helpers = []


def share(jobs: Sequence[FigureJob], extra_cost: float = 0.0) -> tuple[list[int], list[int]]:
    """(indices drawn here, indices for the helper), both in order: torch figures here, the rest
    dealt largest first to the side with less work."""
    mine = [i for i, job in enumerate(jobs) if job.uses_torch]
    load = [extra_cost + sum(jobs[i].cost for i in mine), 0.0]
    theirs: list[int] = []
    for index in sorted((i for i, job in enumerate(jobs) if not job.uses_torch), key=lambda i: -jobs[i].cost):
        side = 0 if load[0] < load[1] else 1
        (mine if side == 0 else theirs).append(index)
        load[side] += jobs[index].cost
    return sorted(mine), sorted(theirs)


def _draw(job: FigureJob) -> Drawn:
    notes: list[str] = []
    path = job.draw(notes)
    return path, notes


def _zygote() -> figure_zygote.Zygote | None:
    return figure_zygote.current()


def _from_zygote(jobs: Sequence[FigureJob], groups: list[list[int]]) -> list[_Helper]:
    """One drawer forked by the figure zygote per group; none when a job is not plain data or the
    zygote is gone (the caller then draws another way). A drawer that did not start delivers
    nothing (its figures are drawn here)."""
    zygote = _zygote()
    if zygote is None:
        return []
    started = zygote.start_drawers([[(i, jobs[i]) for i in group] for group in groups])
    if started is None:
        return []
    return [_Helper(pid, pipe, child=False) for pid, pipe in started]


class _Helper:
    """A process drawing some jobs (a forked copy of this process, or a figure zygote's drawer),
    and the pipe its results come back on."""

    def __init__(self, pid: int, pipe: int, child: bool = True) -> None:
        self.pid, self.pipe = pid, pipe
        self.child = child  # ours to reap (a zygote's drawers are reaped by the kernel)
        self.finished = False  # it sent everything and is exiting

    @classmethod
    def start(cls, jobs: Sequence[FigureJob], indices: list[int]) -> _Helper | None:
        read_end, write_end = os.pipe()
        try:
            with warnings.catch_warnings():  # Python >= 3.12 warns about forking a threaded process:
                warnings.simplefilter("ignore", DeprecationWarning)  # the copy runs no other thread
                pid = os.fork()
        except OSError:
            os.close(read_end)
            os.close(write_end)
            return None
        if pid == 0:  # the copy: draw, send the results, leave without running any exit handler
            try:
                os.close(read_end)
                gc.disable()  # never finalise the parent's objects here (open files would flush twice)
                send_results(write_end, draw_quietly(jobs, indices))
            finally:
                os._exit(0)
        os.close(write_end)
        return cls(pid, read_end)

    def collect(self, patience_s: float) -> dict[int, Drawn]:
        """What the helper delivered; nothing when it failed or took longer than `patience_s`."""
        chunks, deadline = [], time.monotonic() + patience_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.pipe], [], [], left)[0]:
                return {}  # hung: stop() ends it and its figures are drawn here
            chunk = os.read(self.pipe, 1 << 16)
            if not chunk:
                self.finished = True
                break
            chunks.append(chunk)
        try:
            delivered = json.loads(b"".join(chunks))
        except ValueError:  # it died while writing
            return {}
        return {int(i): (None if p is None else Path(p), list(notes)) for i, (p, notes) in delivered.items()}

    def stop(self) -> None:
        """Reap the helper; one that has not finished is killed first."""
        if not self.child:  # reaped by the kernel once it exits: kill it only while it has not
            self._drain()  # (its pipe at its end), never a process that reused its pid
        os.close(self.pipe)
        if not self.finished and self.pid > 0:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, signal.SIGKILL)
        if self.child:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)

    def _drain(self) -> None:
        """Read what is waiting on the pipe without blocking; at its end, the helper finished."""
        while not self.finished and select.select([self.pipe], [], [], 0)[0]:
            if not os.read(self.pipe, 1 << 16):
                self.finished = True
