"""CPU seconds of drawing each figure of ``openretina characterise`` in one process (issue 22).

Characterises RUN's model once with the command's defaults (outside the timing), sorts the
functional types, then draws every figure ROUNDS times in this process (no helpers) and prints
each figure's best `time.process_time` and their sum. For the code before a change, run it with
PYTHONPATH set to that code's package sources (``git archive <commit> packages | tar -x -C DIR``):

    uv run python tools/bench/characterise_figures_cpu.py RUN_DIR --rounds 3
    PYTHONPATH=DIR/packages/openretina-cli/src:DIR/packages/openretina-models/src \\
        uv run python tools/bench/characterise_figures_cpu.py RUN_DIR --rounds 3
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import openretina_cli.commands.characterise as command
import torch
from openretina_cli.commands import characterise_figures as figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", help="a trained run (its model is characterised once)")
    parser.add_argument("--rounds", type=int, default=3, help="draws of every figure (default 3)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        commands = argparse.ArgumentParser().add_subparsers()
        command.add_parser(commands)
        options = commands.choices["characterise"].parse_args([args.run, "--out", str(Path(tmp) / "c")])
        plan = command._plan(options)
        results = (
            command._characterise(plan, options, 1)
            if _takes_workers()
            else command._characterise(plan, options)
        )
        types = command._types(plan, results, options)
        (getattr(figures, "_matplotlib", None) or figures._pyplot)()  # imported before timing
        out = Path(tmp) / "figures"
        jobs = figures.untyped_jobs(out, plan, results) + figures.typed_jobs(out, plan, results, types)
        best: dict[str, float] = {}
        for _ in range(args.rounds):
            for job in jobs:
                start = time.process_time()
                path = job.draw([])
                seconds = time.process_time() - start
                if path is not None:
                    best[path.name] = min(best.get(path.name, float("inf")), seconds)
    best = {name: round(seconds, 3) for name, seconds in best.items()}
    print(json.dumps({"figures_cpu_s": best, "sum_s": round(sum(best.values()), 3)}, indent=2))


def _takes_workers() -> bool:
    import inspect

    return "workers" in inspect.signature(command._characterise).parameters


if __name__ == "__main__":
    main()
