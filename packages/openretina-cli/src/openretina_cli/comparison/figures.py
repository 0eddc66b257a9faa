"""The comparison page's figures (matplotlib's object API on the Agg canvas, no pyplot state).

Each function writes one PNG and returns its path, or returns None and says why through ``notes``.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from openretina_cli.comparison.runs import Run
from openretina_cli.comparison.study import Sweep

DPI = 150
NAMED_CURVES = 10  # the best runs get a colour and a legend entry; the rest are drawn in grey


def _save(figure: Figure, path: Path) -> Path:
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=DPI)
    return path


def learning_curves(runs: list[Run], path: Path, notes: list[str]) -> Path | None:
    """Validation correlation and training loss per epoch, every run overlaid (ranked order)."""
    curves = [(run, run.curves()) for run in runs if run.kind != "ensemble"]
    curves = [(run, c) for run, c in curves if c["val/correlation"] or c["train/loss_epoch"]]
    if not curves:
        notes.append("learning curves: no run has a CSV log (csv/metrics.csv; logger=csv).")
        return None
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    val_ax, loss_ax = figure.subplots(1, 2)
    for index, (run, curve) in enumerate(curves):
        named = index < NAMED_CURVES
        style = {
            "color": f"C{index}" if named else "0.75",
            "linewidth": 1.6 if named else 0.8,
            "zorder": 3 if named else 1,
        }
        for ax, key in ((val_ax, "val/correlation"), (loss_ax, "train/loss_epoch")):
            points = curve[key]
            if points:
                epochs, values = zip(*points, strict=True)
                ax.plot(
                    np.array(epochs) + 1,
                    values,
                    marker="o",
                    markersize=2.5,
                    label=run.label if named and ax is val_ax else None,
                    **style,
                )
    val_ax.set_xlabel("epoch")
    val_ax.set_ylabel("validation correlation (mean over neurons)")
    val_ax.set_title("Validation correlation")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("training loss (per epoch)")
    loss_ax.set_title("Training loss")
    for ax in (val_ax, loss_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    rest = len(curves) - NAMED_CURVES
    if rest > 0:
        val_ax.plot([], [], color="0.75", label=f"{rest} more runs")
    figure.legend(
        loc="outside right upper", fontsize=7, title="run (best validation first)", title_fontsize=7
    )
    return _save(figure, path)


def _neuron_rows(run: Run) -> dict[tuple[str, str], dict[str, str]]:
    path = run.neurons_csv()
    if path is None:
        return {}
    with path.open(newline="") as handle:
        return {
            (row.get("session", ""), row.get("neuron_id") or row.get("neuron_index", "")): row
            for row in csv.DictReader(handle)
        }


def neuron_scatter(a: Run, b: Run, path: Path, notes: list[str]) -> Path | None:
    """Per-neuron correlation of run ``b`` against run ``a``, on validation and on each test stimulus
    both runs were evaluated on: points above the diagonal are neurons ``b`` predicts better."""
    from openretina_cli.comparison.records import data_difference

    if isinstance(a.data_info, dict) and isinstance(b.data_info, dict) and "sessions" in a.data_info:
        difference = data_difference(a.data_info, b.data_info)
        if difference:
            notes.append(
                f"per-neuron scatter: {a.label} and {b.label} were trained on different data ({difference})."
            )
            return None
    rows_a, rows_b = _neuron_rows(a), _neuron_rows(b)
    shared = sorted(set(rows_a) & set(rows_b))
    if not shared:
        missing = [run.label for run, rows in ((a, rows_a), (b, rows_b)) if not rows]
        why = (
            f"no eval/neurons.csv in {', '.join(missing)} (run `openretina eval RUN`)"
            if missing
            else "the two runs share no neurons (different data?)"
        )
        notes.append(f"per-neuron scatter of {a.label} and {b.label}: {why}.")
        return None
    columns = [c for c in rows_a[shared[0]] if c.endswith("/correlation") and c in rows_b[shared[0]]]
    columns = [c for c in columns if c == "val/correlation" or (c.startswith("test/") and c.count("/") == 2)]
    if not columns:
        notes.append(f"per-neuron scatter: {a.label} and {b.label} have no correlation column in common.")
        return None
    cell_key = next(
        (k for k in ("cell_type", "celltypes", "group_assignment") if k in rows_a[shared[0]]), None
    )
    kinds = sorted({rows_a[key].get(cell_key, "") for key in shared}) if cell_key else [""]
    figure = Figure(figsize=(4.6 * len(columns) + 1.8, 4.6), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(columns)))
    for ax, column in zip(axes, columns, strict=True):
        x = np.array([_float(rows_a[k][column]) for k in shared])
        y = np.array([_float(rows_b[k][column]) for k in shared])
        ok = np.isfinite(x) & np.isfinite(y)
        for index, kind in enumerate(kinds):
            mask = ok & np.array([(rows_a[k].get(cell_key, "") if cell_key else "") == kind for k in shared])
            ax.scatter(
                x[mask],
                y[mask],
                s=14,
                alpha=0.8,
                color=f"C{index}",
                label=(kind or None) if ax is axes[0] else None,
            )
        if ok.any():
            low = min(x[ok].min(), y[ok].min())
            high = max(x[ok].max(), y[ok].max())
            pad = 0.05 * (high - low or 1.0)
            ax.plot([low - pad, high + pad], [low - pad, high + pad], color="0.4", linewidth=0.8, zorder=0)
            ax.set_xlim(low - pad, high + pad)
            ax.set_ylim(low - pad, high + pad)
        better = int((y[ok] > x[ok]).sum())
        split = "validation" if column == "val/correlation" else "test: " + column.split("/")[1]
        ax.set_title(f"{split}\n{better} of {int(ok.sum())} neurons above the diagonal", fontsize=9)
        ax.set_xlabel(f"correlation, {a.label}", fontsize=8)
        ax.set_ylabel(f"correlation, {b.label}", fontsize=8)
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
    if cell_key and len(kinds) > 1:
        figure.legend(loc="outside right upper", fontsize=7, title=cell_key, title_fontsize=7)
    return _save(figure, path)


def sweep_history(sweep: Sweep, path: Path, notes: list[str]) -> Path | None:
    """Each trial's objective in trial order, with the best so far."""
    scored = [t for t in sweep.trials if t.value is not None]
    if not scored:
        notes.append(f"optimisation history of {sweep.path.name}: no trial has a score yet.")
        return None
    figure = Figure(figsize=(7, 4), layout="constrained")
    ax = figure.subplots()
    for state, marker, colour in (("complete", "o", "C0"), ("pruned", "x", "C3"), ("fail", "v", "0.5")):
        chosen = [t for t in scored if t.state == state]
        if chosen:
            ax.scatter(
                [t.number for t in chosen],
                [t.value for t in chosen],
                marker=marker,
                color=colour,
                s=22,
                label=f"{state} ({len(chosen)})",
                zorder=3,
            )
    complete = sorted(sweep.complete, key=lambda t: t.number)
    if complete:
        pick = max if sweep.direction == "maximize" else min
        best, xs, ys = None, [], []
        for t in complete:
            best = t.value if best is None else pick(best, t.value)
            xs.append(t.number)
            ys.append(best)
        last = max(t.number for t in sweep.trials)
        if last > xs[-1]:  # carry the best to the last trial, pruned or not
            xs.append(last)
            ys.append(ys[-1])
        ax.step(xs, ys, where="post", color="C1", label="best so far (complete trials)", zorder=2)
    ax.set_xlabel("trial number")
    ax.set_ylabel(f"objective: {sweep.objective} ({sweep.direction})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.set_title(f"Optimisation history ({len(sweep.trials)} trials)", fontsize=10)
    figure.legend(loc="outside right upper", fontsize=7)
    return _save(figure, path)


def sweep_importances(sweep: Sweep, path: Path, notes: list[str]) -> Path | None:
    if not sweep.importances:
        notes.append(f"parameter importances of {sweep.path.name}: {sweep.importance_method}.")
        return None
    names = list(sweep.importances)[::-1]
    values = [sweep.importances[n] for n in names]
    figure = Figure(figsize=(7, 0.45 * len(names) + 1.4), layout="constrained")
    ax = figure.subplots()
    ax.barh(names, values, color="C0")
    for y, value in enumerate(values):
        ax.text(value, y, f" {value:.2f}", va="center", fontsize=8)
    ax.set_xlim(0, 1.08)
    ax.set_xlabel("share of the objective's variance")
    ax.set_title(f"Parameter importances ({len(sweep.complete)} complete trials)", fontsize=10)
    ax.tick_params(axis="y", labelsize=8)
    return _save(figure, path)


def _float(text: Any) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return math.nan
    return value
