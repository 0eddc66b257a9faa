"""Benchmark our `openretina` against openretina 1.1.1 (PyPI), side by side, on the same data.

    uv run python tools/bench/run.py --cases all --pairs 3 --out tools/bench/results/
    uv run python tools/bench/run.py --quick            # 1 pair, tiny sizes: smoke-tests the harness

Every case runs the two tools alternately (ours, 1.1.1, ours, 1.1.1, …) and reports, per metric,
each tool's median and min–max over pairs and the per-pair ratio ours/1.1.1. Results go to
<out>/results.json (schema in report.py), a Markdown summary to <out>/summary.md and plots to
docs/assets/benchmarks/. The peer's venv is built on first use in .bench/peer-venv, ours in
.bench/ours-venv (user_install.py: what `pip install openretina-cli` installs, on the peer's torch).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cases
import zoo
import zoo_case
from contenders import prepare_bytecode
from peer import BENCH_DIR, REPO_ROOT, ensure_peer, peer_versions
from report import SCHEMA, CaseResult, case_table, evaluate_targets, targets_table, write_results
from user_install import ensure_user_install

CASES: dict[str, Callable[[cases.Context], Iterable[CaseResult]]] = {
    "tutorial": cases.tutorial,
    "scaling": cases.scaling,
    "quality": cases.quality,
    "inference": cases.inference,
    "data": cases.data_pipeline,
    "zoo": zoo_case.zoo,
}
TARGETS = [*cases.TARGETS, *zoo_case.TARGETS]


# CPU features that decide how fast 1.1.1's default `16-mixed` (bfloat16 autocast on CPU) runs.
BF16_FLAGS = ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx_vnni")


def cpu_description(cpuinfo: str) -> dict[str, Any]:
    """Model name, family/model/stepping and the bfloat16-relevant flags of the first CPU.

    A hypervisor may show only "AMD EPYC" as the model name; family and model tell the generation
    (family 25 model 1: Zen 3, no bfloat16 instructions), the flags whether bfloat16 is native.
    """
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            if fields:
                break  # the end of the first processor's block
            continue
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    return {
        "cpu": fields.get("model name", "unknown"),
        "cpu_family_model": "/".join(fields.get(k, "?") for k in ("cpu family", "model", "stepping")),
        "cpu_flags": sorted(flags & {"avx2", *BF16_FLAGS}),
        "cpu_native_bf16": bool(flags & {"avx512_bf16", "amx_bf16"}),
    }


def machine() -> dict[str, Any]:
    """CPU model and features, cores, memory and OS: the machine description that goes with every number."""
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal"):
            mem_kib = int(line.split()[1])
    import os

    return {
        **cpu_description(Path("/proc/cpuinfo").read_text()),
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def ours_versions(venv: Path) -> dict[str, str]:
    code = (
        "import json, importlib.metadata as m; "
        "print(json.dumps({d: m.version(d) for d in "
        "('openretina-cli', 'openretina-data', 'openretina-models', "
        "'torch', 'lightning', 'hydra-core', 'numpy')}))"
    )
    done = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr.strip()[-300:]}


@dataclass
class Session:
    """Accumulates case results and rewrites the results file after every case."""

    out: Path
    header: dict[str, Any]
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, result: CaseResult) -> None:
        self.results[result.name] = result.to_dict()
        self.save()

    def save(self) -> dict[str, Any]:
        payload = {**self.header, "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        payload["load_at_finish"] = Path("/proc/loadavg").read_text().split()[:3]
        payload["cases"] = self.results
        payload["targets"] = evaluate_targets(self.results, TARGETS)
        write_results(self.out / "results.json", payload)
        return payload


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", default="all", help=f"comma-separated, from: {', '.join(CASES)}; or 'all'")
    parser.add_argument("--pairs", type=int, default=3, help="runs per tool, interleaved (default 3)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "tools" / "bench" / "results")
    parser.add_argument(
        "--quick", action="store_true", help="1 pair, tiny sizes: a smoke test of the harness"
    )
    parser.add_argument("--epochs", type=int, default=3, help="training epochs in the tutorial case")
    parser.add_argument(
        "--tutorial-model",
        choices=("peer", "default"),
        default="peer",
        help=(
            "tutorial case: ours with 1.x's tutorial architecture (peer, default) or with our own "
            "default config as a user runs it (default: issue 24's cost of the default config)"
        ),
    )
    parser.add_argument(
        "--peer-precision",
        default=None,
        help=(
            "1.1.1's trainer.precision in every run (e.g. 32); default: its configs' own (16-mixed "
            "in the tutorial, bfloat16 autocast on CPU: slow where the CPU has no bfloat16 instructions)"
        ),
    )
    parser.add_argument("--scaling-epochs", type=int, default=2, help="training epochs per scaling run")
    parser.add_argument(
        "--quality-budget-s", type=int, default=180, help="training time budget, quality case"
    )
    parser.add_argument("--zoo-budget-s", type=int, default=120, help="training time per zoo run")
    parser.add_argument(
        "--zoo-members", default=None, help="zoo case: comma-separated subset (zoo.py --list)"
    )
    parser.add_argument(
        "--zoo-tools", default="ours,peer", help="zoo case: ours,peer (default) or ours (1.1.1 not run)"
    )
    parser.add_argument(
        "--zoo-overrides",
        default="",
        help="zoo case: extra Hydra overrides for ours, space-separated (e.g. 'frame_counts_at_hz=null')",
    )
    parser.add_argument(
        "--scales", default=None, help="scaling case: comma-separated subset, e.g. sessions_4,length_8x"
    )
    parser.add_argument(
        "--ours-venv",
        type=Path,
        default=None,
        help=(
            "environment our tool runs from (default: .bench/ours-venv, built from the working tree "
            "as `pip install openretina-cli` installs it, on the peer's torch build; pass .venv for "
            "the workspace's developer environment)"
        ),
    )
    parser.add_argument("--append", action="store_true", help="keep the cases already in <out>/results.json")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: rewrite <out>/summary.md and the plots from <out>/results.json",
    )
    parser.add_argument("--plots", type=Path, default=REPO_ROOT / "docs" / "assets" / "benchmarks")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument(
        "--no-warm-up", action="store_true", help="skip the unmeasured first run (budget-bound cases)"
    )
    args = parser.parse_args(argv)

    if args.report_only:
        payload = json.loads((args.out / "results.json").read_text())
        payload["targets"] = evaluate_targets(payload["cases"], TARGETS)
        write_results(args.out / "results.json", payload)
        finish(payload, args)
        return 0
    selected = list(CASES) if args.cases == "all" else [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in selected if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)} or 'all'")
    if args.quick:
        args.pairs, args.epochs, args.scaling_epochs = 1, 1, 1
        args.quality_budget_s = min(args.quality_budget_s, 60)

    peer_env = ensure_peer(quiet=True)
    if args.ours_venv is None:
        args.ours_venv = ensure_user_install()
    print("preparing bytecode of both environments (skipped where up to date)", flush=True)
    prepare_bytecode(peer_env, args.ours_venv)
    ctx = cases.Context(
        peer_env=peer_env,
        pairs=args.pairs,
        quick=args.quick,
        epochs=args.epochs,
        scaling_epochs=args.scaling_epochs,
        quality_budget_s=args.quality_budget_s,
        data_root=BENCH_DIR / "data",
        run_root=BENCH_DIR / "runs" / dt.datetime.now().strftime("%Y%m%d-%H%M%S"),
        cache_dir=BENCH_DIR / "cache",
        scales=[x.strip() for x in args.scales.split(",")] if args.scales else None,
        ours_venv=args.ours_venv.resolve(),
        zoo_budget_s=args.zoo_budget_s,
        zoo_members=zoo.by_name(
            [x.strip() for x in args.zoo_members.split(",")] if args.zoo_members else None
        ),
        zoo_tools=tuple(x.strip() for x in args.zoo_tools.split(",")),
        zoo_overrides=shlex.split(args.zoo_overrides),
        tutorial_model=args.tutorial_model,
        peer_precision=args.peer_precision,
    )
    header = {
        "schema": SCHEMA,
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "uv run python tools/bench/run.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "pairs": args.pairs,
        "quick": args.quick,
        "settings": {
            "epochs": args.epochs,
            "tutorial_model": args.tutorial_model,
            "peer_precision": args.peer_precision or "config default",
            "scaling_epochs": args.scaling_epochs,
            "quality_budget_s": args.quality_budget_s,
            "zoo_budget_s": args.zoo_budget_s,
        },
        "machine": machine(),
        "versions": {"ours": ours_versions(args.ours_venv), "peer": peer_versions(peer_env)},
        "ours_venv": str(args.ours_venv),
    }
    session = Session(out=args.out, header=header)
    previous = args.out / "results.json"
    if args.append and previous.is_file():
        earlier = json.loads(previous.read_text())
        session.results.update(earlier.get("cases", {}))
        header["earlier_commands"] = [*earlier.get("earlier_commands", []), earlier.get("command")]
        for run in earlier.get("cases", {}).get("tutorial", {}).get("runs", []):
            if run.get("run_dir") and Path(run["run_dir"]).is_dir():
                ctx.trained[run["tool"]] = Path(run["run_dir"])  # for the latency case
    if not args.no_warm_up:
        print("== warm-up (not measured)", flush=True)
        only_ours = selected == ["zoo"] and "peer" not in ctx.zoo_tools
        cases.warm_up(ctx, ("ours",) if only_ours else ("ours", "peer"))
    for name in selected:
        t = time.time()
        print(f"== case {name}", flush=True)
        for result in CASES[name](ctx):
            session.add(result)
            print(case_table(result.name, session.results[result.name]), flush=True)
        print(f"== case {name} took {time.time() - t:.0f} s", flush=True)
    finish(session.save(), args)
    return 0


def finish(payload: dict[str, Any], args: argparse.Namespace) -> None:
    """Write summary.md (tables and target verdicts) and the plots of a results payload."""
    summary = [case_table(n, c) for n, c in payload["cases"].items()]
    summary.append("## Targets\n\n" + targets_table(payload["targets"]))
    (args.out / "summary.md").write_text("\n\n".join(summary) + "\n")
    print("\n## Targets\n" + targets_table(payload["targets"]))
    if not args.no_plots:
        from plots import make_plots

        for png in make_plots(payload, args.plots):
            print(f"plot: {png}")
    print(f"results: {args.out / 'results.json'}")


if __name__ == "__main__":
    sys.exit(main())
