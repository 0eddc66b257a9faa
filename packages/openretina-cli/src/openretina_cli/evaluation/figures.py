"""The report's figures, drawn with matplotlib's object API on the Agg canvas (no display, no
pyplot state). matplotlib is imported here only, so nothing pays for it until a report is drawn.

Every function writes one PNG and returns its path, or returns None when the figure does not
apply (say, no repeated trials for the oracle plot) and tells why through ``notes``.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FixedLocator, MaxNLocator, ScalarFormatter

from openretina_cli.evaluation.figure_data import (  # noqa: F401 (their home before issue 24)
    TRACE_FRAMES,
    ReadoutView,
    TraceData,
    channel_names,
    labels_by_session,
    readout_view,
    response_unit,
    splits_with_trials,
    trace_data,
)
from openretina_cli.evaluation.model_geometry import (  # noqa: F401 (their home before issue 24)
    SHIFT_SHOWN,
    ReadoutGeometry,
    first_layer,
    full_kernel,
    readout_geometries,
    readout_geometry,
    true_centres,
)
from openretina_cli.evaluation.png_writer import save_png
from openretina_cli.evaluation.results import Evaluation, SplitResult
from openretina_cli.evaluation.run_facts import read_learning_curves

DPI = 150
SESSION_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
MAX_BOXES = 40  # sessions or cell types shown in one distribution panel
CROWDED = 60  # neurons per session above which readout extents are drawn faint and unlinked


def _save(figure: Figure, path: Path) -> Path:
    return save_png(figure, path, DPI)


def _title(ax: Any, text: str, **style: Any) -> None:
    """An axes title at a fixed height: left to place itself, each title measures its axes' tick
    labels to dodge them at every draw, a third of the drawing time of a small panel; nothing of
    ours is drawn above an axes, so there is nothing to dodge."""
    ax.set_title(text, y=1.0, **style)


def _freeze_ticks(*axes: Any) -> None:
    """Fix each axis's major ticks and their labels where its locator and formatter put them now,
    keeping only those in view: left alone, matplotlib locates and formats them again twice per
    draw (once more to place the axis label) and makes a tick (five artists) for every location
    it finds, in view or not, which was a third of the drawing (issue 24). The figure shows the
    same ticks and labels. Call it when the axes' place, size, aspect and limits are final;
    axes with fixed ticks already, or whose labels need an offset or a power of ten, are left."""
    for ax in axes:
        ax.apply_aspect()
        for axis in (ax.xaxis, ax.yaxis):
            if not axis.label.get_text():  # nothing to place beside the tick labels: skip measuring them
                axis.set_label_coords(0.0, 0.0)
            formatter = axis.get_major_formatter()
            if isinstance(axis.get_major_locator(), FixedLocator) or type(formatter) is not ScalarFormatter:
                continue
            locations = axis.get_majorticklocs()
            labels = formatter.format_ticks(locations)
            if formatter.get_offset():
                continue
            low, high = sorted(axis.get_view_interval())
            slack = 1e-10 * (high - low)
            shown = [
                (loc, label)
                for loc, label in zip(locations, labels, strict=True)
                if low - slack <= loc <= high + slack
            ]
            axis.set_ticks([loc for loc, _ in shown], [label for _, label in shown])


def _fixed_margins(
    figure: Figure, columns: int, *, left: float, right: float, top: float, bottom: float, gap: float
) -> None:
    """Place one row of `columns` panels with margins and gaps in inches. Constrained layout would
    draw the figure twice (once to measure its texts, once to render); figures whose texts have a
    known size are laid out here instead, and drawn once."""
    width, height = figure.get_size_inches()
    panel = (width - left - right - gap * (columns - 1)) / columns
    figure.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        top=1 - top / height,
        bottom=bottom / height,
        wspace=gap / panel,
    )


def split_title(split: SplitResult) -> str:
    return "validation clips" if not split.is_test else f"test: {split.name}"


def score_label(split: SplitResult) -> str:
    """What this split's `correlation` is measured against, in a reader's words: single trials for
    the validation clips, the trial mean for a test stimulus with repeats."""
    if not split.is_test:
        return "correlation with single trials"
    trials = [r.trials.shape[0] for r in split.sessions.values() if r.trials is not None]
    if trials:
        return f"correlation with the mean of {max(trials)} trials"
    return "correlation with the recording"


def data_limits(
    values: Sequence[np.ndarray], pad: float = 0.06, top: float | None = 1.0
) -> tuple[float, float]:
    """Axis limits that cover every defined value with a margin (and at most `top` when the data
    stay below it), so boxes of correlations between 0.8 and 0.95 do not collapse to lines."""
    defined = [v[~np.isnan(v)] for v in (np.asarray(x, dtype=float).reshape(-1) for x in values)]
    defined = [v for v in defined if v.size]
    if not defined:
        return (0.0, 1.0)
    low = min(float(v.min()) for v in defined)
    high = max(float(v.max()) for v in defined)
    span = max(high - low, 0.1)
    low, high = low - pad * span, high + pad * span
    if top is not None and high > top and max(float(v.max()) for v in defined) <= top:
        high = top + pad * span * 0.5
    return low, high


def correlation_distributions(evaluation: Evaluation, path: Path) -> Path:
    """Per split: the per-neuron correlation of each session (box, and every neuron as a dot), each
    split on its own axis, labelled with what it is measured against."""
    splits = evaluation.splits
    sessions = max(len(split.sessions) for split in splits)
    if sessions > 6:  # long or rotated session names: let the layout engine measure them
        figure = Figure(figsize=(max(5.0, 4.2 * len(splits)), 3.9), layout="constrained")
    else:
        figure = Figure(figsize=(max(5.0, 4.2 * len(splits)), 3.9))
        _fixed_margins(figure, len(splits), left=0.75, right=0.15, top=0.62, bottom=0.75, gap=0.8)
    axes = figure.subplots(1, len(splits), squeeze=False)[0]
    for ax, split in zip(axes, splits, strict=True):
        by_session = {name: result.scores["correlation"] for name, result in sorted(split.sessions.items())}
        _boxes(ax, by_session, "session", score_label(split))
        _title(ax, split_title(split), fontsize=10)
    if sessions <= 6:
        _freeze_ticks(*axes)
    figure.suptitle("Per-neuron correlation of prediction and recording", fontsize=11)
    return _save(figure, path)


def correlation_by_cell_type(
    evaluation: Evaluation, labels: dict[str, np.ndarray], label_name: str, path: Path
) -> Path:
    """The per-neuron correlation of each cell type, on the main split (the first test stimulus,
    else the validation clips)."""
    split = (evaluation.test_splits or evaluation.splits)[0]
    names = sorted(split.sessions)
    values = np.concatenate([split.sessions[name].scores["correlation"] for name in names])
    groups = np.concatenate([labels[name] for name in names]).astype(str)
    order = sorted(np.unique(groups), key=_natural)
    by_type = {label: values[groups == label] for label in order}
    shown = order[:MAX_BOXES]
    figure = Figure(figsize=(max(6.0, 0.42 * len(shown) + 1.5), 4.0))
    if len(shown) > 6:  # tick labels "name (n=k)" turned upright: the longest sets the bottom margin
        longest = max(len(f"{label} (n={by_type[label].size})") for label in shown)
        bottom = 0.55 + _text_inches(longest, 7)
    else:
        bottom = 0.8
    figure.set_size_inches(figure.get_size_inches()[0], 3.4 + bottom)
    _fixed_margins(figure, 1, left=0.75, right=0.15, top=0.35, bottom=bottom, gap=0.0)
    ax = figure.subplots()
    _boxes(ax, by_type, label_name, score_label(split))
    _title(ax, f"Per-neuron correlation by {label_name} ({split_title(split)})", fontsize=10)
    _freeze_ticks(ax)
    return _save(figure, path)


def _text_inches(characters: int, points: float) -> float:
    """A generous width of a line of `characters` at `points` in the default font (DejaVu Sans
    averages about 0.6 em per character), for margins laid out without measuring."""
    return characters * points * 0.62 / 72


def _natural(label: str) -> tuple[int, float | str]:
    """Numeric labels in numeric order, then the others alphabetically."""
    try:
        return (0, float(label))
    except ValueError:
        return (1, label)


def _boxes(ax: Any, groups: dict[str, np.ndarray], xlabel: str, ylabel: str) -> None:
    names = list(groups)[:MAX_BOXES]
    data = [np.asarray(groups[name], dtype=float) for name in names]
    data = [values[~np.isnan(values)] for values in data]
    positions = np.arange(len(names))
    _draw_boxes(ax, positions, data)
    rng = np.random.default_rng(0)
    jitter = [
        position + rng.uniform(-0.18, 0.18, v.size) for position, v in zip(positions, data, strict=True)
    ]
    if any(values.size for values in data):
        ax.scatter(np.concatenate(jitter), np.concatenate(data), s=9, alpha=0.6, color="#1f77b4")
    many = len(names) > 6
    ticks = [
        f"{name} (n={d.size})" if many else f"{name}\n(n={d.size})"
        for name, d in zip(names, data, strict=True)
    ]
    ax.set_xticks(positions, ticks)
    ax.tick_params(axis="x", labelsize=7, rotation=90 if many else 0)
    ax.set_xlabel(xlabel + ("" if len(groups) <= MAX_BOXES else f" (first {MAX_BOXES} of {len(groups)})"))
    ax.set_ylabel(ylabel)
    low, high = data_limits(data)
    if low < 0 < high:
        ax.axhline(0, color="grey", linewidth=0.6)
    ax.set_ylim(low, high)
    ax.grid(axis="y", color="0.92", linewidth=0.6)


def _draw_boxes(ax: Any, positions: np.ndarray, data: list[np.ndarray], width: float = 0.6) -> None:
    """Tukey box plots (quartile box, median, whiskers to the furthest value within 1.5 IQR, no
    fliers) as two line collections: `Axes.boxplot` makes six artists per box, which costs more
    than the rest of a panel with dozens of boxes."""
    from matplotlib import cbook
    from matplotlib.collections import LineCollection

    outline, medians = [], []
    half, cap = width / 2, width / 4
    for position, values in zip(positions, data, strict=True):
        if not values.size:
            continue
        stats = cbook.boxplot_stats(values, whis=1.5)[0]
        left, right = position - half, position + half
        q1, q3, low, high = stats["q1"], stats["q3"], stats["whislo"], stats["whishi"]
        outline.append([(left, q1), (right, q1), (right, q3), (left, q3), (left, q1)])
        outline += [[(position, q1), (position, low)], [(position, q3), (position, high)]]
        outline += [
            [(position - cap, low), (position + cap, low)],
            [(position - cap, high), (position + cap, high)],
        ]
        medians.append([(left, stats["med"]), (right, stats["med"])])
    ax.add_collection(LineCollection(outline, colors="black", linewidths=1.0))
    ax.add_collection(LineCollection(medians, colors="C1", linewidths=1.0))
    ax.set_xlim(-0.5, len(positions) - 0.5)


def correlation_vs_max(evaluation: Evaluation, path: Path, notes: list[str]) -> Path | None:
    """Per test stimulus with repeated trials: each neuron's correlation with the trial mean against
    the highest correlation the trials' noise allows (CC_max, estimated from their signal power).
    On the diagonal CC_norm = 1; points above it lie within the estimate's noise."""
    splits = splits_with_trials(evaluation)
    if not splits:
        notes.append(
            "No test stimulus has repeated trials: the noise-corrected scores (CC_norm, FEVE) need them."
        )
        return None
    figure = Figure(figsize=(4.4 * len(splits) + 1.4, 4.3), layout="constrained")
    axes = figure.subplots(1, len(splits), squeeze=False)[0]
    handles: dict[str, Any] = {}
    for ax, split in zip(axes, splits, strict=True):
        xs, ys = [], []
        for i, (name, result) in enumerate(sorted(split.sessions.items())):
            if "max_correlation" not in result.scores:
                continue
            x, y = result.scores["max_correlation"], result.scores["correlation"]
            xs.append(x)
            ys.append(y)
            colour = SESSION_COLOURS[i % len(SESSION_COLOURS)]
            handles[name] = ax.scatter(x, y, s=12, color=colour, alpha=0.8)
        x_low, x_high = data_limits(xs, top=None)
        y_low, y_high = data_limits(ys, top=None)
        low, high = min(x_low, y_low), max(x_high, y_high)
        line = ax.plot([low, high], [low, high], color="grey", linewidth=0.8, linestyle="--")[0]
        handles["model = estimated maximum (CC_norm = 1)"] = line
        ax.set_xlim(x_low, x_high)
        ax.set_ylim(y_low, y_high)
        ax.set_xlabel("estimated maximum correlation (CC_max)")
        ax.set_ylabel(score_label(split).replace("correlation", "model correlation", 1))
        _title(ax, split_title(split), fontsize=10)
    if len(handles) <= 9:
        axes[-1].legend(
            list(handles.values()), list(handles), fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0)
        )
    figure.suptitle("Model vs the noise-allowed maximum, per neuron", fontsize=11)
    return _save(figure, path)


def model_vs_baseline(evaluation: Evaluation, path: Path) -> Path | None:
    """Per split: each neuron's model correlation against the linear-nonlinear baseline's; above
    the diagonal the model wins. None when no baseline was fitted."""
    splits = [
        s for s in evaluation.splits if any("baseline_correlation" in r.scores for r in s.sessions.values())
    ]
    if not splits:
        return None
    figure = Figure(figsize=(4.0 * len(splits) + 0.6, 4.3))
    _fixed_margins(figure, len(splits), left=0.65, right=0.15, top=0.85, bottom=0.55, gap=0.75)
    axes = figure.subplots(1, len(splits), squeeze=False)[0]
    for ax, split in zip(axes, splits, strict=True):
        results = [r for r in split.sessions.values() if "baseline_correlation" in r.scores]
        x = np.concatenate([r.scores["baseline_correlation"] for r in results]).astype(float)
        y = np.concatenate([r.scores["correlation"] for r in results]).astype(float)
        low, high = data_limits([x, y], top=None)
        ax.plot([low, high], [low, high], color="grey", linewidth=0.8, linestyle="--")
        ax.scatter(x, y, s=12, color="#1f77b4", alpha=0.8)
        both = ~(np.isnan(x) | np.isnan(y))
        wins = int((y[both] > x[both]).sum())
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        ax.set_aspect("equal")
        label = score_label(split)
        ax.set_xlabel(f"baseline: {label}", fontsize=8)
        ax.set_ylabel(f"model: {label}", fontsize=8)
        _title(ax, f"{split_title(split)}\nmodel better for {wins} of {int(both.sum())} neurons", fontsize=9)
    _freeze_ticks(*axes)
    figure.suptitle("Model vs linear-nonlinear baseline (above the diagonal: the model wins)", fontsize=10)
    return _save(figure, path)


def draw_example_traces(
    data: TraceData,
    ids: dict[str, np.ndarray],
    frame_rate: float | None,
    warmup: int,
    path: Path,
    unit: str = "response",
) -> Path:
    """Recorded vs predicted responses of the best, median and worst neuron of one test stimulus
    (the first `TRACE_FRAMES` predicted frames; r is over the whole stimulus), for the neurons
    `figure_data.trace_data` picked."""
    picks = data.picks
    rows = max(len(picks), 1)
    height = 2.0 * rows + (1.9 if frame_rate else 1.3)
    figure = Figure(figsize=(10, height))  # fixed margins: constrained layout doubles the drawing time
    figure.subplots_adjust(
        left=0.08,
        right=0.98,
        top=1 - 1.05 / height,
        bottom=(1.2 if frame_rate else 0.6) / height,
        hspace=0.5,
    )
    axes = figure.subplots(rows, 1, squeeze=False, sharex=True)[:, 0]
    handles: list[Any] = []
    for ax, pick in zip(axes, picks, strict=False):
        which, value, name, index = pick.which, pick.correlation, pick.session, pick.index
        shown = pick.target.shape[0]
        frames = np.arange(shown) + warmup
        handles = []
        if pick.trials is not None:
            trials = pick.trials
            handles.append(
                ax.fill_between(
                    frames,
                    trials.min(axis=0),
                    trials.max(axis=0),
                    color="0.85",
                    label="single trials (range)",
                )
            )
        recorded = "recorded (trial mean)" if pick.trials is not None else "recorded"
        handles.append(ax.plot(frames, pick.target, color="black", linewidth=1.0, label=recorded)[0])
        handles.append(ax.plot(frames, pick.prediction, color="#d62728", linewidth=1.0, label="predicted")[0])
        _title(
            ax,
            f"{which}: session {name}, neuron {ids[name][index]} (r = {value:.2f})",
            fontsize=9,
            loc="left",
        )
        ax.set_ylabel(unit, fontsize=8)
        ax.margins(x=0)
    if picks:
        figure.legend(
            handles,
            [h.get_label() for h in handles],
            fontsize=8,
            loc="upper right",
            ncols=3,
            frameon=False,
            bbox_to_anchor=(0.98, 1 - 0.42 / height),
        )
    if not picks:
        axes[0].text(
            0.5, 0.5, "no neuron with a defined correlation", ha="center", transform=axes[0].transAxes
        )
    axes[-1].set_xlabel("frame of the test stimulus")
    if frame_rate:
        seconds = axes[-1].secondary_xaxis(
            -0.45, functions=(lambda f: f / frame_rate, lambda s: s * frame_rate)
        )
        seconds.set_xlabel(f"time (s, {frame_rate:g} Hz)")
    _freeze_ticks(*axes)
    total = data.total_frames
    window = "" if total <= TRACE_FRAMES else f"; shown: the first {TRACE_FRAMES} of {total} predicted frames"
    figure.text(
        0.08,
        1 - 0.3 / height,
        f"Recorded and predicted responses to test stimulus {data.stimulus}\n"
        f"r over the whole stimulus{window}",
        fontsize=10,
        ha="left",
        va="center",
    )
    return _save(figure, path)


def learning_curves(
    run_dir: Path | None, path: Path, notes: list[str], best_epoch: int | None = None
) -> Path | None:
    """Training loss and validation correlation per epoch, from the run's CSV log, with the epoch
    whose weights were kept marked."""
    curves = read_learning_curves(run_dir)
    if curves is None:
        notes.append("Learning curves: the run has no CSV log (csv/metrics.csv; add logger=csv).")
        return None
    if not any(curves.values()):
        notes.append("Learning curves: the run's csv/metrics.csv has no epoch-level losses or correlations.")
        return None
    figure = Figure(figsize=(9, 3.4))
    _fixed_margins(figure, 2, left=0.75, right=0.15, top=0.35, bottom=0.55, gap=0.85)
    loss_ax, corr_ax = figure.subplots(1, 2)
    for key, label in (("train/loss_epoch", "training"), ("val/loss", "validation")):
        if curves[key]:
            epochs = sorted(curves[key])
            loss_ax.plot(epochs, [curves[key][e] for e in epochs], marker="o", markersize=3, label=label)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss (training objective)")
    _title(loss_ax, "Loss", fontsize=10)
    loss_ax.legend(fontsize=8, loc="best")
    if curves["val/correlation"]:
        epochs = sorted(curves["val/correlation"])
        corr_ax.plot(epochs, [curves["val/correlation"][e] for e in epochs], marker="o", markersize=3)
    if best_epoch is not None:
        for ax in (loss_ax, corr_ax):
            ax.axvline(best_epoch, color="#2ca02c", linewidth=0.9, linestyle=":")
        corr_ax.annotate(
            "kept",
            (best_epoch, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -10),
            textcoords="offset points",
            fontsize=7,
            color="#2ca02c",
        )
    corr_ax.set_xlabel("epoch")
    corr_ax.set_ylabel("correlation with single trials")
    for ax in (loss_ax, corr_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _title(corr_ax, "Validation correlation", fontsize=10)
    _freeze_ticks(loss_ax, corr_ax)
    return _save(figure, path)


def draw_readout_positions(
    view: ReadoutView,
    labels: dict[str, np.ndarray] | None,
    label_name: str | None,
    path: Path,
    notes: list[str],
    centres: dict[str, tuple[np.ndarray, np.ndarray] | None],
    geometry: dict[str, ReadoutGeometry | None],
) -> Path | None:
    """Each neuron's readout position (dot) and extent (circle of one sigma) on the stimulus grid,
    per session on the same axes; with a simulated retina also the true centres (crosses). From
    plain data: `figure_data.readout_view`, the true centres per session
    (`model_geometry.true_centres`) and the readouts' geometry (`readout_geometries`)."""
    sessions = view.sessions
    if not sessions:
        notes.append("Readout positions: this model's readout has no learned positions.")
        return None
    from matplotlib.collections import EllipseCollection, LineCollection

    _, height, width = view.in_shape
    geometry = {name: geometry.get(name) for name in sessions}
    all_labels = (
        None if labels is None else sorted({str(v) for name in sessions for v in labels[name]}, key=_natural)
    )
    palette = "tab10" if len(all_labels or []) <= 10 else "tab20" if len(all_labels or []) <= 20 else "turbo"
    cmap = matplotlib.colormaps[palette]
    count = max(len(all_labels or []), 1)
    colours = {
        label: cmap(i if palette != "turbo" else i / max(count - 1, 1))
        for i, label in enumerate(all_labels or [])
    }
    xs = [g[0] for g in geometry.values() if g] + [np.array([-0.5, width - 0.5])]
    ys = [g[1] for g in geometry.values() if g] + [np.array([-0.5, height - 0.5])]
    x_low, x_high = min(float(x.min()) for x in xs) - 0.5, max(float(x.max()) for x in xs) + 0.5
    y_low, y_high = min(float(y.min()) for y in ys) - 0.5, max(float(y.max()) for y in ys) + 0.5
    any_truth = any(c is not None for c in centres.values())
    extent = (
        "; circles: one sigma of the readout's Gaussian"
        if any(g and g[2] is not None for g in geometry.values())
        else ""
    )
    truth_text = "; crosses: true centres" if any_truth else ""
    title = f"Readout positions on the {width}x{height} (x by y) stimulus grid\n{extent[2:]}{truth_text}"
    shifts = {name: g.shift for name, g in geometry.items() if g and max(map(abs, g.shift)) >= SHIFT_SHOWN}
    if shifts:
        # no-break spaces keep each "name (dx, dy)" on one line when the title is wrapped
        listed = "; ".join(f"{name}\u00a0({dx:+.1f},\u00a0{dy:+.1f})" for name, (dx, dy) in shifts.items())
        title += f"\nmoved by the offset the core learned, to where the fields peak (x, y px): {listed}"
    entries = [*(all_labels or [])] + (["true centre"] if any_truth else [])
    legend_shown = 0 < len(entries) <= 21
    if entries and not legend_shown:
        title += f"\n(colour: {label_name}, {len(entries)} values; legend left out)"
    # Fixed margins in inches (constrained layout would draw the figure twice): panels keep the
    # shown area's aspect, the legend gets the width of its longest entry, the title its lines.
    columns = min(len(sessions), 4)
    rows = math.ceil(len(sessions) / columns)
    span_x, span_y = x_high - x_low, y_high - y_low
    panel_w = 3.4 if span_x >= span_y else max(1.2, 3.4 * span_x / span_y)
    panel_h = panel_w * span_y / span_x
    longest = max((len(str(e)) for e in [*entries, label_name or ""]), default=0)
    legend_w = 0.5 + _text_inches(longest, 7) if legend_shown else 0.0
    left, right, gap, vgap, bottom = 0.75, 0.15 + legend_w, 0.25, 0.4, 0.55
    wide = left + columns * panel_w + (columns - 1) * gap + right
    per_line = max(20, int(wide * 72 / (9 * 0.62)))  # characters of 9-point text across the figure
    lines = [part for line in title.split("\n") for part in textwrap.wrap(line, per_line)]
    top = 0.42 + 0.17 * len(lines)
    tall = top + rows * panel_h + (rows - 1) * vgap + bottom
    figure = Figure(figsize=(wide, tall))
    grid = figure.add_gridspec(
        rows,
        columns,
        left=left / wide,
        right=1 - right / wide,
        top=1 - top / tall,
        bottom=bottom / tall,
        wspace=gap / panel_w,
        hspace=vgap / panel_h,
    )
    axes = grid.subplots(sharex=True, sharey=True, squeeze=False).reshape(-1)
    legend: dict[str, Any] = {}
    for ax, name in zip(axes, sessions, strict=False):
        x, y, sigma, _ = geometry[name]  # type: ignore[misc]
        neuron_colours = (
            np.array([colours[str(v)] for v in labels[name]])
            if labels is not None
            else np.array(["#1f77b4"] * len(x))
        )
        if sigma is not None:
            ax.add_collection(
                EllipseCollection(
                    2 * sigma,
                    2 * sigma,
                    np.zeros_like(sigma),
                    units="xy",
                    offsets=np.column_stack([x, y]),
                    offset_transform=ax.transData,
                    facecolors="none",
                    edgecolors=neuron_colours,
                    linewidths=0.6,
                    alpha=0.7 if len(x) <= CROWDED else 0.15,
                )
            )
        if labels is None:
            ax.scatter(x, y, s=10, color="#1f77b4", zorder=3)
        else:
            for label in np.unique(labels[name].astype(str)):
                chosen = labels[name].astype(str) == label
                legend[label] = ax.scatter(x[chosen], y[chosen], s=10, color=colours[label], zorder=3)
        found = centres[name]
        if found is not None:
            legend["true centre"] = ax.scatter(
                found[0], found[1], marker="x", s=14, color="black", linewidths=0.8, zorder=4
            )
            if len(x) <= CROWDED:  # with many neurons the links would hide the data
                segments = np.stack([np.column_stack(found), np.column_stack([x, y])], axis=1)
                ax.add_collection(LineCollection(segments, colors="0.5", linewidths=0.4, zorder=2))
        ax.add_patch(Rectangle((-0.5, -0.5), width, height, fill=False, edgecolor="0.6", linewidth=0.8))
        _title(ax, name if name.lower().startswith("session") else f"session {name}", fontsize=9)
    for index, ax in enumerate(axes[: len(sessions)]):
        ax.set_xlim(x_low, x_high)
        ax.set_ylim(y_high, y_low)  # y = 0 (the top row of the stimulus) at the top
        ax.set_aspect("equal")
        for axis, inches in ((ax.xaxis, panel_w), (ax.yaxis, panel_h)):  # whole pixels, 0.4 in apart at least
            axis.set_major_locator(MaxNLocator(nbins=max(2, int(inches / 0.4)), integer=True))
        if index + columns >= len(sessions):  # the lowest panel of its column
            ax.set_xlabel("x (pixels)")
            ax.xaxis.set_tick_params(labelbottom=True)
        if index % columns == 0:
            ax.set_ylabel("y (pixels)")
    _freeze_ticks(*axes[: len(sessions)])
    for ax in axes[len(sessions) :]:
        ax.set_visible(False)
    order = [label for label in (all_labels or []) if label in legend] + [
        k for k in legend if k not in colours
    ]
    if legend_shown and legend:
        axes[len(sessions) - 1].legend(
            [legend[k] for k in order],
            order,
            title=label_name,
            fontsize=7,
            loc="upper left",
            bbox_to_anchor=(1.03, 1.0),
        )
    figure.text(0.5, 1 - 0.15 / tall, "\n".join(lines), fontsize=9, ha="center", va="top")
    return _save(figure, path)


def draw_first_layer_filters(
    layer: str | None,
    kernel: np.ndarray | None,
    frame_rate: float | None,
    data_info: dict[str, Any] | None,
    path: Path,
    notes: list[str],
) -> Path | None:
    """The first core layer's kernels: per input channel (row) and output channel (column) the
    spatial kernel at its strongest frame; below, per output channel a small panel with the
    temporal profile at that kernel's strongest pixel, one line per named input channel, on a
    millisecond axis (0 = the newest frame). From `model_geometry.first_layer(model)`: the layer's
    class name (None: no convolutional core) and its kernel (None: the layer exposes none)."""
    if layer is None:
        notes.append("Core filters: this model has no convolutional core.")
        return None
    if kernel is None:
        notes.append(f"Core filters: the first layer ({layer}) exposes no kernel.")
        return None
    n_out, n_in, kt, kh, kw = kernel.shape
    names = channel_names(n_in, data_info)
    peak = (kernel**2).sum(axis=(3, 4)).argmax(axis=2)  # (out, in): each kernel's strongest frame
    mosaic = np.full((n_in * (kh + 1) - 1, n_out * (kw + 1) - 1), np.nan)
    profiles = np.zeros((n_out, n_in, kt))
    for o in range(n_out):
        for i in range(n_in):
            spatial = kernel[o, i, peak[o, i]]
            mosaic[i * (kh + 1) : i * (kh + 1) + kh, o * (kw + 1) : o * (kw + 1) + kw] = spatial
            h, w = np.unravel_index(np.argmax(np.abs(spatial)), spatial.shape)
            profiles[o, i] = kernel[o, i, :, h, w]
    limit = float(np.nanmax(np.abs(mosaic))) or 1.0
    columns = min(n_out, 8)
    rows = math.ceil(n_out / columns)
    # Fixed margins (in inches), not constrained layout: with a panel per output channel the
    # layout engine costs more than the drawing.
    width = max(7.0, 1.05 * columns + 1.2)
    image_h = max(0.9, min(3.2, mosaic.shape[0] / mosaic.shape[1] * (width - 2.6)))
    panel_h = 1.25
    top_pad, gap, bottom_pad = 0.75, 0.55, 0.75
    height = top_pad + image_h + 0.55 + gap + rows * (panel_h + 0.35) + bottom_pad
    figure = Figure(figsize=(width, height))

    def box(left: float, top: float, w: float, h: float) -> list[float]:
        """[left, bottom, width, height] in figure fractions from inches measured from the top."""
        return [left / width, 1 - (top + h) / height, w / width, h / height]

    image_ax = figure.add_axes(box(1.1, top_pad, width - 2.6, image_h))
    shown = image_ax.imshow(
        mosaic, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest", aspect="auto"
    )
    centres = [o * (kw + 1) + (kw - 1) / 2 for o in range(n_out)]
    image_ax.set_xticks(centres, [str(o) for o in range(n_out)], fontsize=7)
    image_ax.set_yticks([i * (kh + 1) + (kh - 1) / 2 for i in range(n_in)], names, fontsize=8)
    image_ax.set_xlabel("output channel", fontsize=8)
    _title(image_ax, f"Spatial kernels ({kw}x{kh} px) at each kernel's peak frame", fontsize=9)
    colour_ax = figure.add_axes(box(width - 1.3, top_pad, 0.12, image_h))
    figure.colorbar(shown, cax=colour_ax).set_label("weight (a.u.)", fontsize=8)
    colour_ax.tick_params(labelsize=7)
    if frame_rate:
        time = (np.arange(kt) - (kt - 1)) * 1000.0 / frame_rate
        unit = "time (ms, 0 = newest frame)"
    else:
        time = np.arange(kt) - (kt - 1.0)
        unit = "time (frames, 0 = newest)"
    grid_top = top_pad + image_h + 0.55 + gap
    grid = figure.add_gridspec(
        rows,
        columns,
        left=0.75 / width,
        right=1 - 0.15 / width,
        top=1 - grid_top / height,
        bottom=bottom_pad / height,
        wspace=0.15,
        hspace=0.45,
    )
    axes = grid.subplots(sharex=True, sharey=True, squeeze=False).reshape(-1)
    lines: list[Any] = []
    for o, ax in enumerate(axes):
        if o >= n_out:
            ax.set_visible(False)
            continue
        scale = float(np.abs(profiles[o]).max()) or 1.0
        lines = [
            ax.plot(time, profiles[o, i] / scale, color=f"C{i}", linewidth=1.0, label=names[i])[0]
            for i in range(n_in)
        ]
        ax.axhline(0, color="grey", linewidth=0.5)
        _title(ax, f"out {o}", fontsize=7, pad=2)
        ax.tick_params(labelsize=6)
        ax.set_ylim(-1.1, 1.1)
    shown_axes = axes[:n_out]
    # weight / max lies in [-1, 1]: five ticks say as much as the nine the locator would place
    shown_axes[0].set_yticks([-1.0, -0.5, 0.0, 0.5, 1.0], ["\u22121.0", "\u22120.5", "0.0", "0.5", "1.0"])
    _freeze_ticks(*shown_axes)
    figure.text(0.5, 0.22 / height, unit, ha="center", fontsize=8)
    figure.text(0.2 / width, bottom_pad / height, "weight / max", rotation=90, va="bottom", fontsize=8)
    figure.text(
        0.75 / width,
        1 - (grid_top - 0.45) / height,
        "Temporal profiles at each kernel's peak pixel",
        fontsize=9,
    )
    figure.legend(
        lines,
        names,
        fontsize=7,
        loc="lower right",
        bbox_to_anchor=(1 - 0.15 / width, 1 - (grid_top - 0.12) / height),
        ncols=min(n_in, 4),
        frameon=False,
    )
    figure.suptitle("First core layer", fontsize=10, y=1 - 0.2 / height)
    return _save(figure, path)
