"""Our post-training phase on the tutorial case, two versions of our code alternating (issue 24).

Each version is a source tree (a folder holding ``packages/openretina-{cli,data,models}/src`` and
``configs``, say the repository, or ``git archive <commit> packages configs | tar -x -C DIR``) put
first on PYTHONPATH of one environment (default: .bench/ours-venv), so both run on the same
installed dependencies. Every run is the tutorial case's run of ours (`cases.train_run`: 1.x's
tutorial architecture, 3 epochs, the timer callback); after one unmeasured run of each version,
pairs alternate ABBA. Writes ``<out>/post_training.json`` (every run's metrics: ``post_fit_s`` is
the end of training to the process exit, ``phase_*_s`` the run's own phases) and prints medians
per version.

    uv run python tools/bench/post_training.py --tree before=/tmp/old --tree after=. --pairs 5 \\
        --out tools/bench/results/issue24/post_s8
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import contenders as ct
from cases import train_run
from peer import REPO_ROOT

PACKAGES = ("openretina-cli", "openretina-data", "openretina-models")
SHOWN = (
    "post_fit_s",
    "phase_evaluation_s",
    "phase_baseline_s",
    "phase_report_s",
    "phase_exit_s",
    "wall_s",
    "peak_rss_mib",
)


class _Runs:
    """What `cases.train_run` needs of a case context: the contender of the version now running."""

    def __init__(self, run_root: Path) -> None:
        self.run_root = run_root
        self.current: ct.Contender | None = None

    def contender(self, tool: str) -> ct.Contender:
        assert tool == "ours", tool
        assert self.current is not None
        return self.current


def version(tree: Path, venv: Path, cache_dir: Path) -> ct.Contender:
    """Our contender from `venv`, importing our packages from `tree` first."""
    sources = [str(tree / "packages" / name / "src") for name in PACKAGES]
    missing = [s for s in sources if not Path(s).is_dir()]
    if missing:
        raise SystemExit(f"--tree {tree}: no {missing[0]}; pass a folder holding packages/<name>/src")
    ct.compile_bytecode(venv / "bin" / "python", *map(Path, sources))
    base = ct.ours(cache_dir, venv)
    env = {**base.env, "PYTHONPATH": os.pathsep.join([*sources, str(ct.HOOKS)])}
    python = venv / "bin" / "python"
    prefix = (
        str(python),
        "-c",
        "import sys; from openretina_cli.main import main; sys.exit(main())",
        "train",
    )
    return ct.Contender("ours", python, prefix, REPO_ROOT / "configs", env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", required=True, help="NAME=FOLDER, twice")
    parser.add_argument("--venv", type=Path, default=REPO_ROOT / ".bench" / "ours-venv")
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT / ".bench" / "data" / "tutorial")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    trees = dict(item.split("=", 1) for item in args.tree)
    if len(trees) != 2:
        raise SystemExit("--tree NAME=FOLDER exactly twice (two different names)")
    args.out.mkdir(parents=True, exist_ok=True)
    runs = _Runs(REPO_ROOT / ".bench" / "runs" / f"post-{time.strftime('%Y%m%d-%H%M%S')}")
    versions = {
        name: version(Path(folder).resolve(), args.venv, args.out / "cache") for name, folder in trees.items()
    }
    overrides = [
        *ct.tutorial_overrides(args.data_dir),
        f"trainer.max_epochs={args.epochs}",
        *ct.PEER_TUTORIAL_ARCHITECTURE,
    ]
    first, second = list(versions)
    record: dict[str, Any] = {"trees": trees, "venv": str(args.venv), "overrides": overrides, "runs": []}
    for name, contender in versions.items():  # unmeasured: file caches warm for both versions
        runs.current = contender
        train_run(runs, "ours", f"warm-up-{name}", "hdf5_core_readout", overrides)
    for pair in range(args.pairs):
        for name in (first, second) if pair % 2 == 0 else (second, first):
            runs.current = versions[name]
            load = Path("/proc/loadavg").read_text().split()[:3]
            metrics, _ = train_run(runs, "ours", f"{name}-{pair}", "hdf5_core_readout", overrides)
            record["runs"].append({"pair": pair, "version": name, "loadavg_before": load, "metrics": metrics})
            (args.out / "post_training.json").write_text(json.dumps(record, indent=1) + "\n")
    for name in versions:
        ours = [r["metrics"] for r in record["runs"] if r["version"] == name]
        cells = []
        for key in SHOWN:
            values = [m[key] for m in ours if key in m]
            if values:
                cells.append(f"{key} {statistics.median(values):.3g} [{min(values):.3g}-{max(values):.3g}]")
        print(f"{name}: " + ", ".join(cells))


if __name__ == "__main__":
    main()
