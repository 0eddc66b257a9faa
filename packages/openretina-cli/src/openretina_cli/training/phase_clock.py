"""Where a run's time and memory go, phase by phase (``timing_s``, ``cpu_s`` and ``peak_rss_mib`` of
results.json).

A short run is dominated by fixed costs (imports, reading the data, the STAs, the report) rather than
by its epochs; recording each phase lets a person (and ``tools/bench``) see which one grew. CPU
seconds (all threads) stay meaningful on a busy machine, where wall seconds mostly measure the load.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path
from typing import Any


def process_age_s() -> float | None:
    """Seconds since this process started (from /proc on Linux; None where there is no /proc)."""
    try:
        after_name = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started_ticks = float(after_name[19])  # field 22, starttime, in clock ticks since boot
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return round(uptime - started_ticks / os.sysconf("SC_CLK_TCK"), 3)
    except (OSError, ValueError, IndexError):
        return None


def peak_rss_mib() -> float:
    """The largest resident set this process has had so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)  # bytes on macOS


class PhaseClock:
    """Wall and CPU seconds of each named phase, in the order they ran, and the peak RSS at its end."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self._last = self.started
        self._last_cpu = time.process_time()
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.peak_mib: dict[str, float] = {}

    def lap(self, phase: str) -> float:
        """End `phase` now (time since the previous lap; repeated names add up); its seconds."""
        now, cpu = time.perf_counter(), time.process_time()
        spent = now - self._last
        self.cpu[phase] = self.cpu.get(phase, 0.0) + cpu - self._last_cpu
        self._last, self._last_cpu = now, cpu
        self.seconds[phase] = self.seconds.get(phase, 0.0) + spent
        self.peak_mib[phase] = peak_rss_mib()
        return spent

    def rounded(self, *phases: str) -> dict[str, float]:
        """`phases` (all, when none is named) rounded to milliseconds."""
        names = [name for name in (phases or self.seconds) if name in self.seconds]
        return {name: round(self.seconds[name], 3) for name in names}

    def record(self, results: dict[str, Any]) -> None:
        """Put the CPU seconds and peak RSS per phase into a run's results (its timing_s is set apart)."""
        results["cpu_s"] = {name: round(value, 3) for name, value in self.cpu.items()}
        results["peak_rss_mib"] = dict(self.peak_mib)
