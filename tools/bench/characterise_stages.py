"""CPU seconds of each stage of `openretina characterise ARGS`, run the way the console script runs it.

Wraps the command's own stage functions and reads `os.times()` (this process and the figure
helpers it has reaped) around them, so it shows where a user's command spends its time: starting
Python and importing torch, the model and stimuli, the characterisation, the functional types,
the files and figures, the refresh of the run's report. The harness's own cost is a few wrapper
calls. Prints one line to stderr at exit; compare the last stage's end with the process's total
(`/usr/bin/time`) to see what the interpreter's teardown costs.

    /usr/bin/time -f "%U+%S s" python tools/bench/characterise_stages.py RUN [options of the command]
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Callable
from typing import Any


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


marks: list[tuple[str, float]] = [("Python's start", cpu_seconds())]
last = marks[0][1]


def mark(name: str) -> None:
    global last
    now = cpu_seconds()
    marks.append((name, now - last))
    last = now


import openretina_cli.commands.characterise as command  # noqa: E402
import openretina_cli.main as cli  # noqa: E402

mark("importing openretina_cli (the command's module)")
import openretina_models  # noqa: E402, F401

mark("importing torch and openretina_models")


def timed(name: str, label: str) -> None:
    stage: Callable[..., Any] = getattr(command, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        mark("(between stages)")
        result = stage(*args, **kwargs)
        mark(label)
        return result

    setattr(command, name, wrapped)


timed("_plan", "model and stimuli")
timed("_characterise", "characterisation")
timed("_types", "functional types")
timed("_update_run_report", "refreshing the run's report")


def report() -> None:
    mark("(after the last stage)")
    shown = [f"{name}: {seconds:.2f}" for name, seconds in marks if seconds >= 0.005]
    print(" | ".join(shown) + f" | total so far: {cpu_seconds():.2f}", file=sys.stderr)


if __name__ == "__main__":
    atexit.register(report)  # the console script's fast exit still runs exit handlers
    sys.argv = ["openretina", "characterise", *sys.argv[1:]]
    cli.main()
