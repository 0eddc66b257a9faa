"""``openretina compare RUN_OR_SWEEP_DIR...``: a leaderboard and figures of finished runs.

Writes into ``--out`` (default ``./comparison``): ``index.html`` (one self-contained page, figures
inlined), ``leaderboard.csv``, ``comparison.json`` and ``figures/``. Runs are ranked by
validation correlation; test scores are shown beside it, never used to rank. Unfinished or
half-written runs are skipped and named. The output is built in a hidden sibling folder and renamed
into place; an existing ``--out`` is replaced only when it holds an earlier comparison.
"""

from __future__ import annotations

import argparse
import html
import shutil
import tempfile
from pathlib import Path
from typing import Any

from openretina_cli.errors import ConfigError

DEFAULT_OUT = "comparison"
MARKER = "comparison.json"


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "compare",
        help="compare finished runs and sweeps: a leaderboard (ranked by validation), curves, scatter, HTML",
        description=(
            "Compare the finished runs in the given run or sweep directories (searched for runs). Writes "
            "index.html (self-contained), leaderboard.csv and comparison.json into --out. Runs are ranked by "
            "validation correlation; test scores are shown beside it and never used to rank."
        ),
    )
    parser.add_argument(
        "paths", nargs="+", metavar="RUN_OR_SWEEP_DIR", help="run directories or folders of runs"
    )
    parser.add_argument(
        "--out", default=DEFAULT_OUT, metavar="DIR", help=f"output directory (default: ./{DEFAULT_OUT})"
    )
    parser.add_argument(
        "--pair",
        nargs=2,
        metavar=("RUN_A", "RUN_B"),
        default=None,
        help="the two runs of the per-neuron scatter, x then y (labels as in the leaderboard, or paths); "
        "default: the runner-up and the best by validation",
    )


def run(args: argparse.Namespace) -> int:
    from openretina_cli.errors import reporting_errors

    with reporting_errors():
        out = Path(args.out).expanduser()
        _check_out(out)
        from openretina_cli.comparison.runs import discover

        found = discover(list(args.paths))
        summary = _build(out, found, args)
    _print(summary, found, out)
    return 0


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file; pass a directory for the comparison.")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise ConfigError(
            f"--out {out}: exists and holds files that are not an earlier comparison; nothing was written. "
            "Pass a new directory (an earlier comparison there would be replaced)."
        )
    resolved = out.resolve()
    for parent in [resolved, *resolved.parents]:
        if (parent / "results.json").is_file() or (parent / ".hydra").is_dir():
            raise ConfigError(
                f"--out {out}: lies inside the run directory {parent}; write the comparison elsewhere "
                "(a run's folder holds only what its run wrote)."
            )
    if not resolved.parent.is_dir():
        raise ConfigError(
            f"--out {out}: its parent folder {resolved.parent} does not exist; create it first."
        )


def _build(out: Path, found: Any, args: argparse.Namespace) -> dict[str, Any]:
    from openretina_cli.comparison import figures
    from openretina_cli.comparison.leaderboard import rank, write_csv, write_json
    from openretina_cli.comparison.page import Section, write_page
    from openretina_cli.comparison.study import read_sweep

    board = rank(found.runs)
    notes: list[str] = [f"* {run.label}: {note}" for run in board.runs for note in run.notes]
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.resolve().parent))
    _usual_permissions(staging)
    try:
        figure_dir = staging / "figures"
        figure_dir.mkdir()
        sections: list[Section] = []
        curves = figures.learning_curves(board.runs, figure_dir / "learning_curves.png", notes)
        if curves:
            sections.append(
                Section("Learning curves", [(curves, "Per epoch; best validation first in the legend.")])
            )
        pair = _pair(board.runs, args.pair)
        if pair is not None:
            a, b = pair
            scatter = figures.neuron_scatter(a, b, figure_dir / "neuron_scatter.png", notes)
            if scatter:
                sections.append(
                    Section(
                        f"Per neuron: {b.label} against {a.label}",
                        [
                            (
                                scatter,
                                f"Each point is a neuron; above the diagonal, {b.label} predicts it better.",
                            )
                        ],
                    )
                )
        else:
            notes.append("per-neuron scatter: needs two runs.")
        sweeps = []
        for index, sweep_path in enumerate(found.sweeps):
            sweep = read_sweep(sweep_path, found.runs)
            sweeps.append(sweep)
            images = []
            history = figures.sweep_history(sweep, figure_dir / f"sweep{index}_history.png", notes)
            if history:
                images.append((history, f"Trials from {sweep.source}."))
            importance = figures.sweep_importances(sweep, figure_dir / f"sweep{index}_importances.png", notes)
            if importance:
                images.append((importance, f"Method: {sweep.importance_method}."))
            text = [f"<p class='note'>{html.escape(note)}</p>" for note in sweep.notes]
            sections.append(Section(f"Sweep {sweep.path}", images, text))
        rows = board.rows()
        summary = {
            "ranked_by": "val/correlation",
            "inputs": list(args.paths),
            "leaderboard": rows,
            "config_keys_that_differ": board.config_keys,
            "skipped": [{"path": str(s.path), "reason": s.reason} for s in found.skipped],
            "sweeps": [
                {
                    "path": str(s.path),
                    "source": s.source,
                    "direction": s.direction,
                    "objective": s.objective,
                    "trials": [t.__dict__ for t in s.trials],
                    "importances": s.importances,
                    "importance_method": s.importance_method,
                    "notes": s.notes,
                }
                for s in sweeps
            ],
            "pair": None if pair is None else [pair[0].label, pair[1].label],
            "notes": notes,
        }
        write_csv(board, staging / "leaderboard.csv")
        write_json(_clean(summary), staging / MARKER)
        write_page(staging / "index.html", board, found.skipped, sections, sweeps, notes, list(args.paths))
        _replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return summary


def _pair(runs: list[Any], requested: list[str] | None) -> tuple[Any, Any] | None:
    if requested is None:
        return (runs[1], runs[0]) if len(runs) >= 2 else None  # x: the runner-up, y: the best
    chosen = []
    for name in requested:
        matches = [
            r for r in runs if name in (r.label, str(r.path)) or Path(name).resolve() == r.path.resolve()
        ]
        if not matches:
            labels = ", ".join(r.label for r in runs[:12])
            raise ConfigError(f"--pair {name}: not one of the compared runs. Runs: {labels}.")
        chosen.append(matches[0])
    if chosen[0] is chosen[1]:
        raise ConfigError("--pair: name two different runs.")
    return chosen[0], chosen[1]


def _replace(staging: Path, out: Path) -> None:
    """Move the finished comparison into place; an earlier comparison (ours: it has MARKER) is
    moved aside first and removed only after the new one is in place."""
    old = None
    if out.is_dir() and any(out.iterdir()):
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.resolve().parent))
        out.rename(old / out.name)
    elif out.is_dir():
        out.rmdir()  # empty: nothing of the user's is lost
    staging.rename(out)
    if old is not None:
        shutil.rmtree(old)


def _clean(value: Any) -> Any:
    """NaN and infinities become null, so comparison.json is strict JSON."""
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _print(summary: dict[str, Any], found: Any, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 120))  # a log file: keep each row on one line
    table = Table(title="Runs, best validation first (test shown, never used to rank)")
    for name in ("rank", "run", "kind", "val corr", "test corr", "frac. oracle", "frac. ceiling", "epochs"):
        table.add_column(
            name, justify="left" if name in ("run", "kind") else "right", overflow="fold", min_width=4
        )
    for row in summary["leaderboard"][:20]:
        table.add_row(
            str(row["rank"]),
            row["run"],
            row["kind"],
            *(
                _fmt(row[k])
                for k in (
                    "val_correlation",
                    "test_correlation",
                    "test_fraction_oracle",
                    "test_fraction_ceiling",
                )
            ),
            "—" if row["epochs"] is None else str(row["epochs"]),
        )
    console.print(table)
    if len(summary["leaderboard"]) > 20:
        console.print(f"... and {len(summary['leaderboard']) - 20} more in the page.")
    for skipped in found.skipped:
        console.print(
            f"Skipped {skipped.path}: {skipped.reason}", style="red", highlight=False, soft_wrap=True
        )
    console.print(
        f"Wrote {out / 'index.html'} (and leaderboard.csv, {MARKER})", highlight=False, soft_wrap=True
    )


def _fmt(value: Any) -> str:
    return "—" if value is None else f"{value:.4f}"


def _usual_permissions(directory: Path) -> None:
    """mkdtemp makes a private folder; the output gets the permissions of any new folder."""
    import os

    umask = os.umask(0)
    os.umask(umask)
    directory.chmod(0o777 & ~umask)
