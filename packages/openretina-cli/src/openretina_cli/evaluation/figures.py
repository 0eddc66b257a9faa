"""The report's figures, drawn with matplotlib's object API on the Agg canvas (no display, no
pyplot state). matplotlib is imported here only, so nothing pays for it until a report is drawn.

Every function writes one PNG and returns its path, or returns None when the figure does not
apply (say, no repeated trials for the oracle plot) and tells why through ``notes``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from openretina_cli.evaluation.per_neuron import Evaluation, SplitResult

DPI = 100
SESSION_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
MAX_BOXES = 40  # sessions or cell types shown in one distribution panel
TRACE_FRAMES = 600  # frames of the example traces (enough to see single responses)


def _save(figure: Figure, path: Path) -> Path:
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=DPI)
    return path


def split_title(split: SplitResult) -> str:
    return "validation clips" if not split.is_test else f"test: {split.name}"


def channel_names(n: int, data_info: dict[str, Any] | None) -> list[str]:
    names = (data_info or {}).get("channel_names")
    if isinstance(names, list) and len(names) == n:
        return [str(name) for name in names]
    return [f"channel {i}" for i in range(n)]


def correlation_distributions(evaluation: Evaluation, path: Path) -> Path:
    """Per split: the per-neuron correlation of each session (box, and every neuron as a dot)."""
    splits = evaluation.splits
    figure = Figure(figsize=(max(5.0, 4.2 * len(splits)), 3.8), layout="constrained")
    axes = figure.subplots(1, len(splits), squeeze=False)[0]
    for ax, split in zip(axes, splits, strict=True):
        by_session = {name: result.scores["correlation"] for name, result in sorted(split.sessions.items())}
        _boxes(ax, by_session, "session")
        ax.set_title(split_title(split))
    figure.suptitle("Per-neuron correlation of prediction and recording")
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
    figure = Figure(figsize=(max(6.0, 0.42 * min(len(order), MAX_BOXES) + 1.5), 4.0), layout="constrained")
    ax = figure.subplots()
    _boxes(ax, by_type, label_name)
    ax.set_title(f"Per-neuron correlation by {label_name} ({split_title(split)})")
    return _save(figure, path)


def _natural(label: str) -> tuple[int, float | str]:
    """Numeric labels in numeric order, then the others alphabetically."""
    try:
        return (0, float(label))
    except ValueError:
        return (1, label)


def _boxes(ax: Any, groups: dict[str, np.ndarray], xlabel: str) -> None:
    names = list(groups)[:MAX_BOXES]
    data = [np.asarray(groups[name], dtype=float) for name in names]
    data = [values[~np.isnan(values)] for values in data]
    positions = np.arange(len(names))
    ax.boxplot([d if d.size else [np.nan] for d in data], positions=positions, widths=0.6, showfliers=False)
    rng = np.random.default_rng(0)
    for position, values in zip(positions, data, strict=True):
        ax.scatter(position + rng.uniform(-0.18, 0.18, values.size), values, s=9, alpha=0.6, color="#1f77b4")
    many = len(names) > 6
    ticks = [
        f"{name} (n={d.size})" if many else f"{name}\n(n={d.size})"
        for name, d in zip(names, data, strict=True)
    ]
    ax.set_xticks(positions, ticks)
    ax.tick_params(axis="x", labelsize=7, rotation=90 if many else 0)
    ax.set_xlabel(xlabel + ("" if len(groups) <= MAX_BOXES else f" (first {MAX_BOXES} of {len(groups)})"))
    ax.set_ylabel("correlation")
    ax.axhline(0, color="grey", linewidth=0.6)
    ax.set_ylim(min(-0.1, *(d.min() - 0.05 for d in data if d.size)), 1.0)


def correlation_vs_oracle(evaluation: Evaluation, path: Path, notes: list[str]) -> Path | None:
    """Single-trial correlation against the oracle, per test stimulus with repeated trials."""
    splits = [s for s in evaluation.test_splits if any("oracle" in r.scores for r in s.sessions.values())]
    if not splits:
        notes.append("correlation vs oracle: no test stimulus has repeated trials, so there is no oracle.")
        return None
    figure = Figure(figsize=(4.2 * len(splits), 4.2), layout="constrained")
    axes = figure.subplots(1, len(splits), squeeze=False)[0]
    for ax, split in zip(axes, splits, strict=True):
        for i, (name, result) in enumerate(sorted(split.sessions.items())):
            if "oracle" in result.scores:
                colour = SESSION_COLOURS[i % len(SESSION_COLOURS)]
                ax.scatter(
                    result.scores["oracle"],
                    result.scores["trial_correlation"],
                    s=12,
                    color=colour,
                    label=name,
                )
        ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--", label="at the ceiling")
        ax.set_xlim(min(0.0, ax.get_xlim()[0]), 1.0)
        ax.set_ylim(min(0.0, ax.get_ylim()[0]), 1.0)
        ax.set_aspect("equal")
        ax.set_xlabel("oracle correlation (leave one trial out)")
        ax.set_ylabel("model correlation with single trials")
        ax.set_title(split_title(split))
        if len(split.sessions) <= 8:
            ax.legend(fontsize=7, loc="upper left")
    return _save(figure, path)


def example_traces(
    split: SplitResult, ids: dict[str, np.ndarray], frame_rate: float | None, warmup: int, path: Path
) -> Path:
    """Recorded vs predicted responses of the best, median and worst neuron of one test stimulus
    (the first `TRACE_FRAMES` predicted frames; r is over the whole stimulus)."""
    entries = [
        (float(value), name, index)
        for name, result in split.sessions.items()
        for index, value in enumerate(result.scores["correlation"])
        if not math.isnan(value)
    ]
    entries.sort(reverse=True)
    picks = (
        [("best", entries[0]), ("median", entries[len(entries) // 2]), ("worst", entries[-1])]
        if entries
        else []
    )
    rows = max(len(picks), 1)
    height = 2.1 * rows + (1.5 if frame_rate else 0.9)
    figure = Figure(figsize=(10, height))  # fixed margins: constrained layout doubles the drawing time
    figure.subplots_adjust(
        left=0.07,
        right=0.98,
        top=1 - 0.75 / height,
        bottom=(1.2 if frame_rate else 0.5) / height,
        hspace=0.45,
    )
    axes = figure.subplots(rows, 1, squeeze=False)[:, 0]
    for ax, (which, (value, name, index)) in zip(axes, picks, strict=False):
        result = split.sessions[name]
        shown = min(result.target.shape[1], TRACE_FRAMES)
        frames = np.arange(shown) + warmup
        if result.trials is not None:
            trials = result.trials[:, index, :shown]
            ax.fill_between(
                frames, trials.min(axis=0), trials.max(axis=0), color="0.85", label="trials (min-max)"
            )
        recorded = "recorded (trial mean)" if result.trials is not None else "recorded"
        ax.plot(frames, result.target[index, :shown], color="black", linewidth=1.0, label=recorded)
        ax.plot(frames, result.prediction[index, :shown], color="#d62728", linewidth=1.0, label="predicted")
        ax.set_title(f"{which}: session {name}, neuron {ids[name][index]} (r = {value:.2f})", fontsize=9)
        ax.set_ylabel("response")
    if picks:
        axes[0].legend(fontsize=7, loc="upper right", ncols=3)
    if not picks:
        axes[0].text(
            0.5, 0.5, "no neuron with a defined correlation", ha="center", transform=axes[0].transAxes
        )
    axes[-1].set_xlabel("frame of the test stimulus")
    if frame_rate:
        seconds = axes[-1].secondary_xaxis(
            -0.42, functions=(lambda f: f / frame_rate, lambda s: s * frame_rate)
        )
        seconds.set_xlabel(f"time (s, {frame_rate:g} Hz)")
    total = next(iter(split.sessions.values())).target.shape[1]
    window = "" if total <= TRACE_FRAMES else f" (first {TRACE_FRAMES} of {total} predicted frames)"
    figure.suptitle(
        f"Recorded and predicted responses, test stimulus {split.name}{window}; r over the whole stimulus"
    )
    return _save(figure, path)


def learning_curves(run_dir: Path | None, path: Path, notes: list[str]) -> Path | None:
    """Training loss and validation correlation per epoch, from the run's CSV log."""
    log = None if run_dir is None else run_dir / "csv" / "metrics.csv"
    if log is None or not log.is_file():
        notes.append("learning curves: the run has no CSV log (csv/metrics.csv; add logger=csv).")
        return None
    curves: dict[str, dict[int, float]] = {"train/loss_epoch": {}, "val/loss": {}, "val/correlation": {}}
    with log.open(newline="") as handle:
        for row in csv.DictReader(handle):
            epoch = row.get("epoch")
            for key, points in curves.items():
                value = row.get(key)
                if epoch not in (None, "") and value not in (None, ""):
                    points[int(float(epoch))] = float(value)
    if not any(curves.values()):
        notes.append(f"learning curves: {log} has no epoch-level losses or correlations.")
        return None
    figure = Figure(figsize=(9, 3.4), layout="constrained")
    loss_ax, corr_ax = figure.subplots(1, 2)
    for key, label in (("train/loss_epoch", "training"), ("val/loss", "validation")):
        if curves[key]:
            epochs = sorted(curves[key])
            loss_ax.plot(epochs, [curves[key][e] for e in epochs], marker="o", markersize=3, label=label)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss")
    loss_ax.set_title("Loss")
    loss_ax.legend(fontsize=8)
    if curves["val/correlation"]:
        epochs = sorted(curves["val/correlation"])
        corr_ax.plot(epochs, [curves["val/correlation"][e] for e in epochs], marker="o", markersize=3)
    corr_ax.set_xlabel("epoch")
    corr_ax.set_ylabel("correlation")
    for ax in (loss_ax, corr_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    corr_ax.set_title("Validation correlation")
    return _save(figure, path)


def readout_positions(
    model: Any, labels: dict[str, np.ndarray] | None, label_name: str | None, path: Path, notes: list[str]
) -> Path | None:
    """Each neuron's readout position on the stimulus grid, per session."""
    sessions = [
        name
        for name in model.n_neurons
        if hasattr(model.readout[name], "position") and (labels is None or name in labels)
    ]
    if not sessions:
        notes.append("readout positions: this model's readout has no learned positions.")
        return None
    _, height, width = (int(s) for s in model.in_shape)
    columns = min(len(sessions), 4)
    rows = math.ceil(len(sessions) / columns)
    figure = Figure(figsize=(3.6 * columns, 3.2 * rows * height / max(width, 1) + 0.8), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).reshape(-1)
    legend: dict[str, Any] = {}
    all_labels = None if labels is None else sorted({str(v) for name in sessions for v in labels[name]})
    palette = "tab10" if len(all_labels or []) <= 10 else "tab20" if len(all_labels or []) <= 20 else "turbo"
    cmap = matplotlib.colormaps[palette]
    count = max(len(all_labels or []), 1)
    colours = {
        label: cmap(i if palette != "turbo" else i / max(count - 1, 1))
        for i, label in enumerate(all_labels or [])
    }
    for ax, name in zip(axes, sessions, strict=False):
        position = model.readout[name].position.detach().cpu().numpy()
        x = (position[:, 0] + 1) / 2 * (width - 1)
        y = (position[:, 1] + 1) / 2 * (height - 1)
        if labels is None:
            ax.scatter(x, y, s=14, color="#1f77b4")
        else:
            for label in np.unique(labels[name].astype(str)):
                chosen = labels[name].astype(str) == label
                legend[label] = ax.scatter(x[chosen], y[chosen], s=14, color=colours[label])
        # the stimulus grid, widened to show positions that drifted past its edge
        ax.set_xlim(min(-0.5, float(x.min()) - 0.5), max(width - 0.5, float(x.max()) + 0.5))
        ax.set_ylim(max(height - 0.5, float(y.max()) + 0.5), min(-0.5, float(y.min()) - 0.5))  # row 0 on top
        ax.add_patch(Rectangle((-0.5, -0.5), width, height, fill=False, edgecolor="0.6", linewidth=0.8))
        ax.set_aspect("equal")
        ax.set_title(f"session {name}", fontsize=9)
        ax.set_xlabel("x (pixel)")
        ax.set_ylabel("y (pixel)")
    for ax in axes[len(sessions) :]:
        ax.set_visible(False)
    title = f"Readout positions on the {height}x{width} stimulus grid"
    if legend and len(legend) <= 20:
        figure.legend(
            list(legend.values()), list(legend), title=label_name, fontsize=7, loc="outside right upper"
        )
    elif legend:
        title += f"\n(colour: {label_name}, {len(legend)} values; legend left out)"
    figure.suptitle(title, fontsize=10)
    return _save(figure, path)


def first_layer_filters(
    model: Any, frame_rate: float | None, data_info: dict[str, Any] | None, path: Path, notes: list[str]
) -> Path | None:
    """The first core layer's kernels: per output channel (row) and input channel (column) the
    spatial kernel at its strongest frame, and beside it the temporal profile at that kernel's
    strongest pixel, one trace per input channel."""
    convs = getattr(getattr(model, "core", None), "convs", None)
    if not convs:
        notes.append("core filters: this model has no convolutional core.")
        return None
    kernel = _full_kernel(convs[0])  # (out, in, kt, kh, kw)
    if kernel is None:
        notes.append(f"core filters: the first layer ({type(convs[0]).__name__}) exposes no kernel.")
        return None
    n_out, n_in, kt, kh, kw = kernel.shape
    names = channel_names(n_in, data_info)
    peak = (kernel**2).sum(axis=(3, 4)).argmax(axis=2)  # (out, in): each kernel's strongest frame
    # One image: input channels in rows, output channels in columns, a blank pixel between kernels.
    mosaic = np.full((n_in * (kh + 1) - 1, n_out * (kw + 1) - 1), np.nan)
    profiles = np.zeros((n_out, n_in, kt))
    for o in range(n_out):
        for i in range(n_in):
            spatial = kernel[o, i, peak[o, i]]
            mosaic[i * (kh + 1) : i * (kh + 1) + kh, o * (kw + 1) : o * (kw + 1) + kw] = spatial
            h, w = np.unravel_index(np.argmax(np.abs(spatial)), spatial.shape)
            profiles[o, i] = kernel[o, i, :, h, w]
    limit = float(np.nanmax(np.abs(mosaic))) or 1.0
    width = max(6.0, 0.55 * n_out + 2.0)
    figure = Figure(figsize=(width, 0.55 * n_in * width / max(n_out, 1) + 3.4), layout="constrained")
    image_ax, trace_ax = figure.subplots(
        2, 1, height_ratios=[max(n_in * width / max(n_out, 1) * 0.55, 0.8), 1.8]
    )
    shown = image_ax.imshow(mosaic, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    centres = [o * (kw + 1) + (kw - 1) / 2 for o in range(n_out)]
    image_ax.set_xticks(centres, [str(o) for o in range(n_out)], fontsize=7)
    image_ax.set_yticks([i * (kh + 1) + (kh - 1) / 2 for i in range(n_in)], names, fontsize=8)
    image_ax.set_xlabel("output channel", fontsize=8)
    image_ax.set_title(f"spatial kernels ({kh}x{kw} px) at each kernel's peak frame", fontsize=9)
    figure.colorbar(shown, ax=image_ax, shrink=0.8, label="weight")
    # Temporal profiles under their kernels: output channel o spans x in [o, o + 0.8], oldest frame
    # on the left, newest on the right; each output channel scaled to its largest weight.
    x = np.linspace(0.0, 0.8, kt)
    for o in range(n_out):
        scale = float(np.abs(profiles[o]).max()) or 1.0
        for i in range(n_in):
            label = names[i] if o == 0 else None
            trace_ax.plot(o + x, profiles[o, i] / scale, color=f"C{i}", linewidth=1.0, label=label)
    trace_ax.axhline(0, color="grey", linewidth=0.5)
    trace_ax.set_xticks([o + 0.4 for o in range(n_out)], [str(o) for o in range(n_out)], fontsize=7)
    trace_ax.set_xlim(-0.2, n_out)
    trace_ax.set_yticks([-1, 0, 1])
    trace_ax.set_ylabel("weight / max", fontsize=8)
    span = f"{(kt - 1) * 1000.0 / frame_rate:.0f} ms" if frame_rate else f"{kt - 1} frames"
    trace_ax.set_xlabel(
        f"output channel (each trace: the kernel's {kt} frames, {span} up to the newest)", fontsize=8
    )
    trace_ax.set_title("temporal profiles at each kernel's peak pixel", fontsize=9)
    trace_ax.legend(fontsize=7, loc="lower right", ncols=n_in)
    figure.suptitle("First core layer", fontsize=10)
    return _save(figure, path)


def _full_kernel(conv: Any) -> np.ndarray | None:
    """The layer's kernel as (out, in, kt, kh, kw), for either convolution type."""
    import torch

    with torch.no_grad():
        inner = getattr(conv, "conv", None)
        if isinstance(inner, torch.nn.Conv3d):
            return inner.weight.detach().cpu().numpy()
        if hasattr(conv, "spatial_weight") and hasattr(conv, "temporal_weight"):
            spatial = conv.spatial_weight().detach().cpu().numpy()  # (out, in, kh, kw)
            temporal = conv.temporal_weight().detach().cpu().numpy()  # (out, kt)
            if spatial.ndim == 4 and temporal.ndim == 2:
                return spatial[:, :, None] * temporal[:, None, :, None, None]
    return None


def labels_by_session(dataset: Any, key: str | None, sessions: Sequence[str]) -> dict[str, np.ndarray] | None:
    if key is None:
        return None
    return {name: np.asarray(dataset.sessions[name].neuron_metadata[key]) for name in sessions}
