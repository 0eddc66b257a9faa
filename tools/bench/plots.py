"""Matplotlib figures of a results payload (report.py's schema), written as PNGs for the docs.

Every bar or point is a median over pairs; error bars span min–max. Nothing is drawn from a
single run except installed sizes, which do not vary between runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FormatStrFormatter, NullFormatter

COLOURS = {"ours": "#1b7837", "peer": "#762a83"}
LABELS = {"ours": "ours", "peer": "openretina 1.1.1"}


def _stat(case: dict[str, Any], metric: str, side: str) -> tuple[float, float, float] | None:
    s = case.get("summary", {}).get(metric, {}).get(side)
    if not s or not s["n"]:
        return None
    return s["median"], s["median"] - s["low"], s["high"] - s["median"]


def _bars(ax: Any, cases: dict[str, Any], items: list[tuple[str, str, str]], ylabel: str) -> None:
    """Grouped bars, ours beside 1.1.1, for (case, metric, label) items."""
    width = 0.38
    for offset, side in ((-width / 2, "ours"), (width / 2, "peer")):
        xs, ys, lo, hi = [], [], [], []
        for i, (case, metric, _) in enumerate(items):
            stat = _stat(cases.get(case, {}), metric, side)
            if stat is not None:
                xs.append(i + offset)
                ys.append(stat[0])
                lo.append(stat[1])
                hi.append(stat[2])
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, color=COLOURS[side], label=LABELS[side])
    ax.set_xticks(range(len(items)), [label for *_, label in items], fontsize=8)
    ax.set_ylabel(ylabel)


def tutorial_ratios(payload: dict[str, Any], out: Path) -> Path | None:
    case = payload["cases"].get("tutorial")
    if not case:
        return None
    metrics = [
        ("first_step_s", "time to\nfirst step", 0.5),
        ("throughput", "training\nthroughput", 3.0),
        ("epoch_s", "seconds\nper epoch", None),
        ("post_fit_s", "post-training\nevaluation", 0.3),
        ("peak_rss_mib", "peak RSS", 0.5),
    ]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    lowest = 0.2
    for i, (metric, _, target) in enumerate(metrics):
        stat = _stat(case, metric, "ratio")
        if stat is not None:
            lowest = min(lowest, (stat[0] - stat[1]) / 1.5)
            ax.bar(i, stat[0], 0.6, yerr=[[stat[1]], [stat[2]]], capsize=4, color=COLOURS["ours"])
            ax.annotate(f"{stat[0]:.2g}×", (i + 0.31, stat[0]), ha="left", va="center", fontsize=8)
        if target is not None:
            ax.plot([i - 0.35, i + 0.35], [target, target], color="black", ls="--", lw=1)
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_yscale("log")
    ax.set_ylim(lowest, 5)  # low enough for every bar: a ratio below the axis would vanish
    ax.set_yticks([t for t in (0.0625, 0.125, 0.25, 0.5, 1, 2, 4) if t >= lowest])
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(range(len(metrics)), [label for _, label, _ in metrics], fontsize=8)
    ax.set_ylabel("ours / 1.1.1 (median, min–max over pairs)")
    title = "Tutorial config, identical settings (dashed: target; throughput: higher is better)"
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = out / "tutorial_ratios.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _scale_x(key: str, prefix: str) -> int:
    """x of a scaling case: its session count, or its movie-length multiplier (sessions_2 is 1×)."""
    if prefix == "length_" and key == "sessions_2":
        return 1
    return int(key.split("_")[1].rstrip("x"))


def scaling(payload: dict[str, Any], out: Path) -> Path | None:
    cases = {k.split("/", 1)[1]: v for k, v in payload["cases"].items() if k.startswith("scaling/")}
    if not cases:
        return None
    if "sessions_2" not in cases and "tutorial" in payload["cases"]:
        cases["sessions_2"] = payload["cases"]["tutorial"]  # the same data (2 sessions, 1×) in case 1
    fig, axes = plt.subplots(2, 2, figsize=(8, 6))
    rows = (("sessions_", "sessions"), ("length_", "movie length (× tutorial)"))
    columns = (("epoch_s", "seconds per epoch"), ("peak_rss_mib", "peak RSS (MiB)"))
    for row, (prefix, xlabel) in enumerate(rows):
        keys = [k for k in cases if k.startswith(prefix) or (prefix == "length_" and k == "sessions_2")]
        keys.sort(key=lambda k, p=prefix: _scale_x(k, p))
        for col, (metric, ylabel) in enumerate(columns):
            ax = axes[row][col]
            for side in ("ours", "peer"):
                pts = [(_scale_x(k, prefix), _stat(cases[k], metric, side)) for k in keys]
                pts = [(x, st) for x, st in pts if st is not None]
                if pts:
                    ax.errorbar(
                        [x for x, _ in pts],
                        [st[0] for _, st in pts],
                        yerr=[[st[1] for _, st in pts], [st[2] for _, st in pts]],
                        marker="o",
                        capsize=3,
                        color=COLOURS[side],
                        label=LABELS[side],
                    )
            ax.set_xscale("log", base=2)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Data scaling (median, min–max over pairs)", fontsize=10)
    fig.tight_layout()
    path = out / "scaling.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def quality(payload: dict[str, Any], out: Path) -> Path | None:
    case = payload["cases"].get("quality")
    if not case:
        return None
    fig, ax = plt.subplots(figsize=(5, 3.6))
    _bars(ax, {"q": case}, [("q", "test_correlation", "test correlation"),
                           ("q", "fraction_of_ceiling", "fraction of ceiling")], "value")  # fmt: skip
    ax.axhline(0.9, color="black", ls="--", lw=1)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    budget = payload.get("settings", {}).get("quality_budget_s")
    ax.set_title(f"Simulated retina, same training budget ({budget} s)", fontsize=10)
    fig.tight_layout()
    path = out / "quality.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def inference_and_data(payload: dict[str, Any], out: Path) -> Path | None:
    cases = payload["cases"]
    panels = [
        ([("inference/import", "import_s", "import models\n(training env)")], "seconds"),
        ([("inference/import_models_only", "import_s", "import models\n(models-only env)")], "seconds"),
        ([("inference/latency", "latency_ms", "predict 300 frames")], "milliseconds"),
        ([("inference/installed_size", "venv_mib", "installed env")], "MiB"),
        ([("data", "open_to_first_batch_s", "open → first batch")], "seconds"),
        ([("data", "data_rss_mib", "data memory (tutorial)")], "MiB"),
    ]
    panels = [p for p in panels if p[0][0][0] in cases]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(2.3 * len(panels), 3.4))
    for ax, (items, ylabel) in zip([axes] if len(panels) == 1 else axes, panels, strict=True):
        _bars(ax, cases, items, ylabel)
    (axes if len(panels) == 1 else axes[0]).legend(fontsize=7)
    fig.suptitle("Inference and data pipeline (median, min–max)", fontsize=10)
    fig.tight_layout()
    path = out / "inference_data.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def make_plots(payload: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    made = [f(payload, out) for f in (tutorial_ratios, scaling, quality, inference_and_data)]
    return [p for p in made if p is not None]
