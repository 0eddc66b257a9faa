"""What a person sees: the quality report, and the final table of scores."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def quality_rows(report: Any) -> list[dict[str, Any]]:
    """The report as plain rows, whatever shape openretina_data gives it."""
    if hasattr(report, "to_dict"):
        data = report.to_dict()
    elif isinstance(report, Mapping):
        data = dict(report)
    else:
        data = {"report": str(report)}
    rows = data.get("rows")
    return [dict(row) for row in rows] if isinstance(rows, list) else [data]


def write_quality_report(report: Any, notes: list[str], directory: Path) -> Path:
    """``quality_report.json`` (and ``.txt`` when the report can render itself) in the run dir."""
    data = report.to_dict() if hasattr(report, "to_dict") else {"report": str(report)}
    data = {**data, "data_notes": list(notes)}
    path = directory / "quality_report.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    if hasattr(report, "to_text"):
        (directory / "quality_report.txt").write_text(str(report.to_text()) + "\n")
    return path


def print_quality_report(report: Any, dataset: Any, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title="Quality checks", show_lines=False)
    rows = quality_rows(report)
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(str(key))
    columns = [c for c in columns if c != "dropped_ids"]
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*[_cell(row.get(column)) for column in columns])
    console.print(table)
    if dataset is not None:
        neurons = sum(dataset.n_neurons.values())
        console.print(f"{len(dataset.sessions)} sessions, {neurons} neurons kept.")
        for note in getattr(dataset, "notes", []):
            console.print(f"  note: {note}", highlight=False)


def print_stimuli(survey: Any, tests: set[str], console: Console | None = None) -> None:
    """Every stimulus of a directory: its role, length, repeats and the sessions that saw it."""
    console = console or Console()
    table = Table(title="Stimuli")
    for column in ("stimulus", "role", "frames", "trials", "sessions"):
        table.add_column(column)
    for stimulus in survey:
        table.add_row(
            stimulus.name,
            "test" if stimulus.name in tests else "training",
            str(stimulus.frames),
            "" if stimulus.trials is None else str(stimulus.trials),
            _cell(list(stimulus.sessions)),
        )
    console.print(table)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) if len(value) <= 8 else f"{len(value)} items"
    return "" if value is None else str(value)


def print_summary(scores: Mapping[str, float], run_dir: Path, console: Console | None = None) -> None:
    """One table: overall scores first, then per stimulus, then per session (when there are few)."""
    console = console or Console()
    table = Table(title=f"Results ({run_dir})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    sessions = {key.split("/")[-2] for key in scores if key.count("/") >= 2}
    show_sessions = len(sessions) <= 8
    for key in sorted(scores, key=lambda k: (k.count("/"), k)):
        if key.count("/") >= 3 and not show_sessions:
            continue
        value = scores[key]
        table.add_row(key, "nan" if value is None or math.isnan(value) else f"{value:.4f}")
    console.print(table)
