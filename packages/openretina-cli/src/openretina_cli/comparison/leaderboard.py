"""The leaderboard: runs ranked by validation correlation, test beside it (never used to rank)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openretina_cli.comparison.configs import differing_keys, show
from openretina_cli.comparison.runs import Run

COLUMNS = (
    ("rank", "rank"),
    ("run", "run"),
    ("kind", "kind"),
    ("val_correlation", "val corr."),
    ("test_correlation", "test corr."),
    ("test_fraction_oracle", "test / oracle"),
    ("test_fraction_ceiling", "test / ceiling"),
    ("epochs", "epochs"),
    ("fit_s", "fit (s)"),
    ("n_parameters", "parameters"),
)


@dataclass
class Leaderboard:
    runs: list[Run]  # best validation first; runs without a validation score last
    config_keys: list[str]  # config values that differ between the (non-ensemble) runs

    def rows(self) -> list[dict[str, Any]]:
        rows = []
        for rank, run in enumerate(self.runs, start=1):
            row: dict[str, Any] = {
                "rank": rank,
                "run": run.label,
                "kind": run.kind
                if run.kind != "ensemble"
                else f"ensemble of {len(run.members)}" + (" *" if run.notes else ""),
                "val_correlation": run.val,
                "test_correlation": run.test,
                "test_fraction_oracle": run.fraction_oracle,
                "test_fraction_ceiling": run.fraction_ceiling,
                "epochs": run.epochs,
                "fit_s": run.fit_s,
                "n_parameters": run.n_parameters,
            }
            for key in self.config_keys:
                row[key] = None if run.kind == "ensemble" else run.config.get(key)
            row["path"] = str(run.path)
            rows.append(row)
        return rows


def rank(runs: list[Run]) -> Leaderboard:
    """Sort by validation correlation, best first (ties keep the given order)."""
    ordered = sorted(runs, key=lambda run: (run.val is None, -(run.val or 0.0)))
    keys = differing_keys([run.config for run in runs if run.kind != "ensemble" and run.config])
    return Leaderboard(ordered, keys)


def write_csv(board: Leaderboard, path: Path) -> None:
    rows = board.rows()
    fields = [key for key, _ in COLUMNS] + board.config_keys + ["path"]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {
                    k: "" if row.get(k) is None else (show(row[k]) if k in board.config_keys else row[k])
                    for k in fields
                }
            )


def as_json(board: Leaderboard) -> list[dict[str, Any]]:
    return board.rows()


def write_json(data: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(data, indent=2, default=str, allow_nan=False) + "\n")
