"""Compare two shared-sweep directories (with and without pruning): epochs, fit time, best scores.

    uv run python tools/bench/pruning_savings.py SWEEP_WITH_PRUNING SWEEP_WITHOUT_PRUNING [--first N]

Reads each trial's ``results.json`` (epochs trained, fit seconds, validation and test scores) and
``trial.json`` (complete or pruned). ``--first N`` compares the first N finished trials of each
sweep (by trial number), for sweeps stopped before their end.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def finished_trials(sweep: Path) -> list[dict[str, Any]]:
    rows = []
    for record_path in sorted(sweep.glob("*/trial.json"), key=lambda p: int(p.parent.name)):
        record = json.loads(record_path.read_text())
        results_path = record_path.parent / "results.json"
        if record["state"] not in ("complete", "pruned") or not results_path.is_file():
            continue
        results = json.loads(results_path.read_text())
        rows.append(
            {
                "trial": record["trial"],
                "state": record["state"],
                "epochs": int(results["epochs"]),
                "fit_s": float(results["timing_s"]["fit"]),
                "val": results["metrics"].get("val/correlation"),
                "test": results["metrics"].get("test/natural_test/correlation"),
                "test_ceiling": results["metrics"].get("test/natural_test/fraction_ceiling"),
            }
        )
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    best = max(rows, key=lambda r: r["val"] if r["val"] is not None else float("-inf"))
    return {
        "trials": len(rows),
        "pruned": sum(r["state"] == "pruned" for r in rows),
        "epochs": sum(r["epochs"] for r in rows),
        "fit_s": round(sum(r["fit_s"] for r in rows), 1),
        "best_trial": best["trial"],
        "best_val_correlation": round(best["val"], 4),
        "its_test_correlation": round(best["test"], 4) if best["test"] is not None else None,
        "its_test_fraction_ceiling": round(best["test_ceiling"], 4)
        if best["test_ceiling"] is not None
        else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("with_pruning", type=Path)
    parser.add_argument("without_pruning", type=Path)
    parser.add_argument("--first", type=int, help="compare the first N finished trials of each")
    args = parser.parse_args()
    sweeps = {
        "with pruning": finished_trials(args.with_pruning),
        "without": finished_trials(args.without_pruning),
    }
    first = args.first or min(len(rows) for rows in sweeps.values())
    report = {name: summary(rows[:first]) for name, rows in sweeps.items()}
    saved = 1 - report["with pruning"]["epochs"] / report["without"]["epochs"]
    saved_s = 1 - report["with pruning"]["fit_s"] / report["without"]["fit_s"]
    print(
        json.dumps(
            {
                "first_trials": first,
                **report,
                "epochs_saved": round(saved, 3),
                "fit_s_saved": round(saved_s, 3),
            },
            indent=2,
        )
    )
    for name, rows in sweeps.items():
        print(name, [(r["trial"], r["state"], r["epochs"], round(r["val"], 3)) for r in rows[:first]])


if __name__ == "__main__":
    main()
