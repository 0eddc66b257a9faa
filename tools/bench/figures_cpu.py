"""CPU seconds of drawing a run's report figures in one process, two versions of ``figures.py``
alternating (issue 24).

The run is evaluated once (with the linear-nonlinear baseline, as `openretina eval` does), outside
the timing; then every figure of the report is drawn in this process (no helpers) ROUNDS times
per version, the versions alternating, and each figure's `time.process_time` is kept. The other
version is a ``figures.py`` file (e.g. ``git show <commit>:packages/openretina-cli/src/
openretina_cli/evaluation/figures.py > /tmp/figures_before.py``); it is loaded in place of ours for
its rounds, with everything else (the jobs, ``png_writer``) shared. ``--profile FILE`` writes a
cProfile of one extra round of this tree's version.

    uv run python tools/bench/figures_cpu.py RUN_DIR --before /tmp/figures_before.py --rounds 5
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import importlib.util
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FIGURES = "openretina_cli.evaluation.figures"


def evaluated(run: str, out: Path) -> dict[str, Any]:
    """What `write_report` gets for this run: the evaluation, dataset, model and inputs."""
    from openretina_cli.commands import eval as ev
    from openretina_cli.config import model_source
    from openretina_cli.evaluation import report

    captured: dict[str, Any] = {}

    def keep(_out: Any, evaluation: Any, dataset: Any, model: Any, inputs: Any, **_: Any) -> dict[str, Any]:
        captured.update(evaluation=evaluation, dataset=dataset, model=model, inputs=inputs)
        return {}

    parser = argparse.ArgumentParser()
    ev.add_parser(parser.add_subparsers())
    parsed = parser.parse_args(["eval", run, "--out", str(out)])
    source = model_source.resolve(parsed.model)
    cfg = ev.eval_config(source, None, [], None)
    folder = ev.plan_report(str(out), None, source.inputs(cfg))
    model = model_source.load(source, device="cpu")
    report.write_report = keep  # type: ignore[assignment]
    ev.evaluate_and_report(model, cfg, source, folder, parsed)
    return captured


def jobs(directory: Path, got: dict[str, Any]) -> list[tuple[str, Any]]:
    """(file stem, job) of every figure, as the run's helpers get them (kernel measured before)."""
    from openretina_cli.evaluation import report
    from openretina_cli.evaluation.model_geometry import first_layer_kernel, readout_geometries
    from openretina_cli.evaluation.run_facts import kept_epoch

    model, dataset, inputs = got["model"], got["dataset"], got["inputs"]
    found = report._evaluation_jobs(directory, got["evaluation"], dataset, model, inputs.cell_type_key)
    found += report._model_jobs(
        directory,
        model,
        dataset,
        inputs.run_dir,
        inputs.cell_type_key,
        got["evaluation"].truth,
        readout_geometries(model),
        first_layer_kernel(model),
        kept_epoch(inputs.run_dir, None),
    )
    return [(f"figure{i}", job) for i, (_, job) in enumerate(found)]


def use(module: Any) -> None:
    import openretina_cli.evaluation as package

    sys.modules[FIGURES] = module
    package.figures = module  # type: ignore[attr-defined]


def draw_round(got: dict[str, Any], keep: Path | None) -> dict[str, float]:
    """CPU seconds per figure file of one round (files kept in `keep` when given)."""
    directory = Path(tempfile.mkdtemp(prefix="figures-cpu-"))
    seconds: dict[str, float] = {}
    try:
        for name, job in jobs(directory, got):
            started = time.process_time()
            path = job.draw([])
            seconds[path.name if path is not None else name] = time.process_time() - started
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            for png in directory.glob("*.png"):
                shutil.copy(png, keep / png.name)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a finished run directory")
    parser.add_argument("--before", type=Path, help="another version's figures.py")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="copy each version's PNGs into KEEP/<version>")
    parser.add_argument("--profile", type=Path, help="write a cProfile of one round of this tree")
    args = parser.parse_args()

    with contextlib.redirect_stdout(sys.stderr):  # the run's messages; stdout is the result
        got = evaluated(args.run, Path(tempfile.mkdtemp()) / "eval")
    versions = {"after": importlib.import_module(FIGURES)}
    if args.before is not None:
        spec = importlib.util.spec_from_file_location(FIGURES + "_before", args.before)
        assert spec is not None
        assert spec.loader is not None
        before = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(before)
        versions = {"before": before, **versions}
    for name, module in versions.items():  # unmeasured: fonts and caches warm for both
        use(module)
        draw_round(got, None if args.keep is None else args.keep / name)
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in versions}
    names = list(versions)
    for index in range(args.rounds):
        for name in names if index % 2 == 0 else names[::-1]:
            use(versions[name])
            rounds[name].append(draw_round(got, None))
    if args.profile is not None:
        use(versions["after"])
        profile = cProfile.Profile()
        profile.enable()
        draw_round(got, None)
        profile.disable()
        profile.dump_stats(args.profile)
    load = Path("/proc/loadavg").read_text().split()[:3]
    result: dict[str, Any] = {"load_at_end": load, "rounds": args.rounds}
    for name, per_round in rounds.items():
        totals = [sum(r.values()) for r in per_round]
        figures = {f: round(statistics.median(r[f] for r in per_round), 3) for f in per_round[0]}
        result[name] = {
            "total_cpu_s_median": round(statistics.median(totals), 3),
            "total_cpu_s_min": round(min(totals), 3),
            "totals": [round(t, 3) for t in totals],
            "per_figure_median": figures,
        }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
