"""``neurons.csv`` (one row per neuron) and ``summary.json`` (per split, session and cell type).

The per-neuron table holds every metric of every evaluated split as columns named like the run's
scores (``val/correlation``, ``test/<stimulus>/oracle``), next to every per-neuron metadata field
the dataset has. The variance-ratio cut-off only filters the summary's ``filtered`` block; the
table always lists every neuron.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from openretina_models.metrics import summarise

from openretina_cli.evaluation.per_neuron import TEST, Evaluation, SplitResult

NEURONS_CSV = "neurons.csv"
SUMMARY_JSON = "summary.json"
# Metadata fields that name a neuron's cell type, in the order they are looked for.
CELL_TYPE_KEYS = ("cell_type", "cell_types", "celltype", "celltypes", "group_assignment", "type")
DEFAULT_VAR_RATIO_CUTOFF = 0.15


def cell_type_key(dataset: Any, preferred: str | None = None) -> str | None:
    """The metadata field holding cell types (``preferred`` when given and present), or None."""
    keys = set.intersection(*(set(s.neuron_metadata) for s in dataset.sessions.values()))
    if preferred:
        return preferred if preferred in keys else None
    return next((key for key in CELL_TYPE_KEYS if key in keys), None)


def metadata_columns(dataset: Any) -> tuple[list[str], list[str]]:
    """(fields with one value per neuron in every session, fields left out of the table with why)."""
    columns: list[str] = []
    left_out: dict[str, str] = {}
    for session in dataset.sessions.values():
        for key, value in session.neuron_metadata.items():
            array = np.asarray(value)
            if array.ndim != 1 or array.shape[0] != session.n_neurons:
                left_out[key] = key
            elif key not in columns:
                columns.append(key)
    columns = [c for c in columns if c not in left_out and c != "neuron_ids"]
    if not left_out:
        return columns, []
    fields = ", ".join(sorted(left_out))
    return columns, [
        f"neurons.csv has one column per per-neuron metadata field; {fields} (several values "
        "per neuron, or one per session) stay in the data files."
    ]


def neuron_rows(evaluation: Evaluation, dataset: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per neuron of every evaluated session, and the notes on what the table leaves out."""
    columns, notes = metadata_columns(dataset)
    sessions = sorted({name for split in evaluation.splits for name in split.sessions})
    rows: list[dict[str, Any]] = []
    for name in sessions:
        session = dataset.sessions[name]
        ids = np.asarray(session.neuron_metadata["neuron_ids"])
        for index in range(session.n_neurons):
            row: dict[str, Any] = {"session": name, "neuron_index": index, "neuron_id": _plain(ids[index])}
            for column in columns:
                value = session.neuron_metadata.get(column)
                row[column] = None if value is None else _plain(np.asarray(value)[index])
            for split in evaluation.splits:
                result = split.sessions.get(name)
                for metric, values in (result.scores if result else {}).items():
                    row[f"{split.key}/{metric}"] = _plain(values[index])
            rows.append(row)
    return rows, notes


def write_neurons_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    fields: list[str] = []
    for row in rows:
        fields.extend(key for key in row if key not in fields)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: "" if value is None else value for key, value in row.items()})
    return path


def read_neurons_csv(path: Path) -> list[dict[str, Any]]:
    """``neurons.csv`` back as rows: numbers as floats (empty cells as None), the rest as text."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for key, text in row.items():
            if key in ("session", "neuron_id"):
                continue
            if text == "":
                row[key] = None
                continue
            with contextlib.suppress(ValueError):
                row[key] = float(text)
        row["neuron_index"] = int(row["neuron_index"])
    return rows


def summarise_evaluation(
    evaluation: Evaluation,
    dataset: Any,
    *,
    var_ratio_cutoff: float = DEFAULT_VAR_RATIO_CUTOFF,
    cell_types: str | None = None,
) -> dict[str, Any]:
    """Per split (and ``test``, every test stimulus pooled): each metric's mean, median and counts
    over all neurons, per session, per cell type, and over the neurons whose FEV (variance ratio)
    reaches ``var_ratio_cutoff``."""
    splits: dict[str, Any] = {}
    for split in evaluation.splits:
        splits[split.key] = _split_summary([split], dataset, var_ratio_cutoff, cell_types)
    if evaluation.test_splits:
        splits[TEST] = _split_summary(evaluation.test_splits, dataset, var_ratio_cutoff, cell_types)
    return {
        "var_ratio_cutoff": var_ratio_cutoff,
        "cell_type_key": cell_types,
        "warmup_frames": evaluation.warmup_frames,
        "splits": splits,
    }


def _split_summary(
    splits: list[SplitResult], dataset: Any, cutoff: float, cell_types: str | None
) -> dict[str, Any]:
    pooled = _pool(splits)
    summary: dict[str, Any] = {
        "n_neurons": sum(len(r.scores["correlation"]) for s in splits for r in s.sessions.values()),
        "metrics": {metric: summarise(values) for metric, values in pooled.items()},
        "sessions": {
            name: {metric: summarise(values)["mean"] for metric, values in _pool(splits, name).items()}
            for name in sorted({n for s in splits for n in s.sessions})
        },
    }
    trials = [r.trials.shape[0] for s in splits for r in s.sessions.values() if r.trials is not None]
    if trials:
        summary["n_trials"] = {"min": min(trials), "max": max(trials)}
    if "fev" in pooled:
        kept = pooled["fev"] >= cutoff
        summary["filtered"] = {
            "rule": f"fev >= {cutoff}",
            "n_neurons": int(kept.sum()),
            "metrics": {metric: summarise(values[kept]) for metric, values in pooled.items()},
        }
    if cell_types is not None:
        labels = np.concatenate(
            [
                np.asarray(dataset.sessions[name].neuron_metadata[cell_types])
                for s in splits
                for name in s.sessions
            ]
        )
        summary["cell_types"] = {
            str(_plain(label)): {
                "n_neurons": int((labels == label).sum()),
                **{metric: summarise(values[labels == label])["mean"] for metric, values in pooled.items()},
            }
            for label in np.unique(labels)
        }
    return summary


def _pool(splits: list[SplitResult], session: str | None = None) -> dict[str, np.ndarray]:
    """Each metric's per-neuron values over the splits' sessions (or one session), concatenated in
    one fixed (split, session) order, so different metrics line up neuron by neuron."""
    results = [
        result
        for split in splits
        for name, result in sorted(split.sessions.items())
        if session is None or name == session
    ]
    metrics = [m for m in results[0].scores if all(m in r.scores for r in results)] if results else []
    return {m: np.concatenate([np.asarray(r.scores[m], dtype=np.float64) for r in results]) for m in metrics}


def write_summary(summary: Mapping[str, Any], path: Path) -> Path:
    """Strict JSON: undefined values (NaN, inf) are written as null."""
    path.write_text(json.dumps(strict_json(summary), indent=2, allow_nan=False) + "\n")
    return path


def strict_json(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    value = _plain(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
