"""Measuring a command from outside: wall clock and peak memory of its whole process tree.

Two memory figures per run:
- `peak_rss_mib`: the largest resident set any single process of the run reached, from the kernel's
  own accounting (`wait4` rusage of the child, which covers its waited-for descendants). Exact, and
  what "peak RSS" means for a single-process trainer.
- `peak_tree_rss_mib`: the largest *sum* of RSS over the process tree, sampled every 50 ms with
  psutil; it matters when a tool spawns worker processes. Sampling can miss short spikes.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

MIB = 1024 * 1024


@dataclass
class RunResult:
    """What one subprocess run cost, seen from outside."""

    returncode: int
    t_start: float  # time.time() just before the process was spawned
    wall_s: float
    peak_rss_mib: float
    peak_tree_rss_mib: float
    log_path: Path | None = None
    extra: dict[str, float] = field(default_factory=dict)


class _TreeSampler(threading.Thread):
    def __init__(self, pid: int, interval_s: float) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._halt.is_set():
            total = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for proc in procs:
                try:
                    total += proc.memory_info().rss
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue
            self.peak_bytes = max(self.peak_bytes, total)
            self._halt.wait(self.interval_s)

    def stop(self) -> None:
        self._halt.set()


def run_measured(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path | None = None,
    timeout_s: float | None = None,
    sample_interval_s: float = 0.05,
) -> RunResult:
    """Run `cmd` to completion, recording wall time and peak memory; output goes to `log_path`.

    `t_start` is exported to the child as BENCH_T0 so in-process timers share the same origin.
    A run over `timeout_s` is killed and reported with return code -9.
    """
    env = dict(env)
    log_file = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115 - closed below
    try:
        t_start = time.time()
        env["BENCH_T0"] = repr(t_start)
        proc = subprocess.Popen(
            [os.fspath(c) for c in cmd], env=env, cwd=cwd, stdout=log_file, stderr=subprocess.STDOUT
        )
        sampler = _TreeSampler(proc.pid, sample_interval_s)
        sampler.start()
        deadline = None if timeout_s is None else t_start + timeout_s
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.time() > deadline:
                for child in psutil.Process(proc.pid).children(recursive=True):
                    child.kill()
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.01)
        wall = time.time() - t_start
        sampler.stop()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from waiting again
    finally:
        if log_path:
            log_file.close()  # type: ignore[union-attr]
    # ru_maxrss is in KiB on Linux.
    return RunResult(
        returncode=proc.returncode,
        t_start=t_start,
        wall_s=wall,
        peak_rss_mib=usage.ru_maxrss / 1024,
        peak_tree_rss_mib=sampler.peak_bytes / MIB,
        log_path=log_path,
    )
