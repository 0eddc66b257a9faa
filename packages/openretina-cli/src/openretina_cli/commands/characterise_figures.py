"""Figures of ``openretina characterise``: the classic retina figures, drawn from the results.

chirp responses as a heat map sorted by functional type with the type means; direction polar
plots of the most direction-selective neurons with the DSI distribution; the receptive-field
mosaic per session (fitted 1σ ellipses coloured by type); tuning curves; index distributions by
type. Each figure is drawn only when its stimulus was shown.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from openretina_cli.evaluation import figure_jobs
from openretina_cli.evaluation.figure_jobs import Drawn, FigureJob
from openretina_cli.evaluation.png_writer import save_png

DPI = 160


def _matplotlib() -> None:
    """Import what the figures draw with (matplotlib's object API and the Agg canvas: no pyplot)."""
    from matplotlib.backends import backend_agg  # noqa: F401

    from openretina_cli.evaluation import figures  # noqa: F401


def _freeze_ticks(*axes: Any) -> None:
    """The report's fixed ticks (`evaluation.figures._freeze_ticks`), imported with matplotlib."""
    from openretina_cli.evaluation.figures import _freeze_ticks as freeze

    freeze(*axes)


def _type_colours(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(max(n, 1))]


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _grid(
    figure: Any,
    rows: int,
    columns: int,
    *,
    left: float,
    right: float,
    top: float,
    bottom: float,
    wspace: float = 0.0,
    hspace: float = 0.0,
    **ratios: Any,
) -> Any:
    """A grid of panels with margins and gaps in inches. Constrained layout would measure every
    text of the figure first, about half of its drawing; these figures' texts have known sizes."""
    width, height = figure.get_size_inches()
    panel_w = (width - left - right - wspace * (columns - 1)) / columns
    panel_h = (height - top - bottom - hspace * (rows - 1)) / rows
    return figure.add_gridspec(
        rows,
        columns,
        left=left / width,
        right=1 - right / width,
        top=1 - top / height,
        bottom=bottom / height,
        wspace=wspace / panel_w,
        hspace=hspace / panel_h,
        **ratios,
    )


def job(path: Path, draw: Callable[[], Any], cost: float = 1.0) -> FigureJob:
    """The figure `draw` writes at `path` (it may write nothing: the figure does not apply);
    `cost`: its drawing time relative to the others', so that the figures shared with a second
    process make two equal halves (the costs below: CPU s on the default experiment, issue 22)."""

    def run(notes: list[str]) -> Path | None:
        draw()
        return path if path.is_file() else None

    return FigureJob(draw=run, cost=cost)


def draw_all(folder: Path, plan: Any, results: dict[str, Any], types: Any) -> list[str]:
    """Draw every figure the results allow into `folder`; return their paths."""
    jobs = untyped_jobs(folder, plan, results) + typed_jobs(folder, plan, results, types)
    return drawn(draw(jobs))


def untyped_jobs(folder: Path, plan: Any, results: dict[str, Any]) -> list[FigureJob]:
    """The figures that do not show the functional types, so can be drawn while they are sorted."""
    folder.mkdir(parents=True, exist_ok=True)
    sessions = list(plan.sessions)
    jobs: list[FigureJob] = []
    if all("bar_tuning" in results[s].traces for s in sessions):
        path = folder / "direction_selectivity.png"
        jobs.append(job(path, partial(_directions, path, results, sessions), 0.27))
    if plan.labels is not None:
        known = [str(v) for s in sessions for v in plan.labels[s]]
        names = sorted(set(known))
        codes = np.array([names.index(v) for v in known])
        path = folder / "indices_by_cell_type.png"
        grouping = f"cell type ({plan.label_key})"
        draw = partial(_indices, path, results, sessions, codes, len(names), names, grouping)
        jobs.append(job(path, draw, 0.37))
    return jobs


def typed_jobs(folder: Path, plan: Any, results: dict[str, Any], types: Any) -> list[FigureJob]:
    """The figures coloured or grouped by functional type (`types` None: all of one type)."""
    folder.mkdir(parents=True, exist_ok=True)
    sessions = list(plan.sessions)
    labels = (
        np.concatenate([types.labels[s] for s in sessions])
        if types is not None
        else np.zeros(sum(len(plan.sessions[s]) for s in sessions), dtype=int)
    )
    n_types = int(labels.max()) + 1 if labels.size else 1
    jobs: list[FigureJob] = []
    if all("chirp" in results[s].traces for s in sessions):
        path = folder / "chirp_by_type.png"
        jobs.append(job(path, partial(_chirp, path, plan, results, labels, n_types), 0.29))
    if all("rf_x_um" in results[s].table for s in sessions) and plan.space.pixel_size_um is not None:
        for i, s in enumerate(sessions):
            start = sum(len(plan.sessions[t]) for t in sessions[:i])
            session_labels = labels[start : start + len(plan.sessions[s])]
            path = folder / f"rf_mosaic_{s}.png"
            jobs.append(job(path, partial(_mosaic, path, plan, results[s], session_labels, n_types), 0.15))
    path = folder / "tuning_curves.png"  # drawn only when a tuning stimulus was shown
    jobs.append(job(path, partial(_tuning, path, results, sessions, labels, n_types), 0.21))
    path = folder / "indices_by_type.png"
    jobs.append(job(path, partial(_indices, path, results, sessions, labels, n_types), 0.27))
    return jobs


def drawn(results: list[Drawn]) -> list[str]:
    """The files the jobs wrote."""
    return [str(path) for path, _ in results if path is not None]


def draw(jobs: list[FigureJob]) -> list[Drawn]:
    """Draw `jobs`, shared with a forked helper where that is safe (see `figure_jobs`)."""
    return figure_jobs.draw_all(jobs)


def start(jobs: list[FigureJob], importing: threading.Thread | None = None) -> figure_jobs.Background:
    """Start drawing `jobs` in forked helpers while this process goes on; `.results()` collects
    them (drawing here what a helper did not deliver), `.close()` abandons them. `importing`:
    the thread importing pyplot, finished first (a helper is never forked amid an import)."""
    if importing is not None:
        importing.join()
    if jobs:
        _matplotlib()  # imported once, before the fork, not by each helper
    return figure_jobs.Background(jobs)


def _save(figure: Any, path: Path) -> Path:
    """Write the figure (drawn once, see `save_png`)."""
    return save_png(figure, path, DPI)


def _chirp(path: Path, plan: Any, results: dict[str, Any], labels: np.ndarray, n_types: int) -> Path:
    traces = np.concatenate([results[s].traces["chirp"][:, 0] for s in plan.sessions])  # (N, T)
    stim = plan.stimulus_sets["chirp"]
    rate = stim.frame_rate_hz
    t = np.arange(traces.shape[1]) / rate
    baseline = traces[:, :1]
    scaled = (traces - baseline) / np.maximum(np.abs(traces - baseline).max(axis=1, keepdims=True), 1e-12)
    order = np.lexsort((-scaled.mean(axis=1), labels))
    colours = _type_colours(n_types)
    figure = _figure(11, 7.5)
    left = _grid(figure, 2, 1, left=0.8, right=4.95, top=0.35, bottom=0.55, hspace=0.4, height_ratios=[1, 5])
    (bar,) = _grid(figure, 1, 1, left=6.15, right=4.6, top=1.95, bottom=2.0)
    (right,) = _grid(figure, 1, 1, left=7.25, right=0.15, top=0.35, bottom=0.55)
    ax_stim = figure.add_subplot(left[0])
    ax_heat = figure.add_subplot(left[1], sharex=ax_stim)
    ax_means = figure.add_subplot(right)
    contrast = stim.contrast[0, 0].numpy() if stim.contrast is not None else np.zeros_like(t)
    ax_stim.plot(t, contrast, color="black", lw=0.8)
    ax_stim.set_ylabel("contrast")
    ax_stim.set_title("Chirp stimulus", y=1.0)
    ax_stim.tick_params(labelbottom=False)
    image = ax_heat.imshow(
        scaled[order],
        aspect="auto",
        cmap="RdBu_r",
        vmin=-1,
        vmax=1,
        interpolation="nearest",
        extent=(t[0], t[-1] + 1 / rate, len(order), 0),
    )
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    for b in bounds:
        ax_heat.axhline(b, color="black", lw=0.8)
    ax_heat.set_xlabel("time (s)")
    ax_heat.set_ylabel("neuron (sorted by functional type)")
    ax_heat.set_title("Responses, each scaled to its largest change from its start", y=1.0)
    colour_bar = figure.colorbar(image, cax=figure.add_subplot(bar), label="scaled response")
    offset = 0.0
    for k in range(n_types):
        members = scaled[labels == k]
        if members.size == 0:
            continue
        mean = members.mean(axis=0)
        ax_means.plot(t, mean - offset, color=colours[k], lw=1.0)
        ax_means.text(
            t[0],
            -offset + 1.15,
            f"type {k} (n={len(members)})",
            ha="left",
            va="bottom",
            color=colours[k],
            fontsize=8,
        )
        offset += 2.7
    ax_means.set_ylim(-offset + 2.7 - 1.2, 1.6)
    ax_means.set_yticks([])
    ax_means.set_xlabel("time (s)")
    ax_means.set_title("Mean scaled response per functional type", y=1.0)
    for spine in ("left", "right", "top"):
        ax_means.spines[spine].set_visible(False)
    _freeze_ticks(ax_stim, ax_heat, ax_means, colour_bar.ax)
    return _save(figure, path)


def _directions(path: Path, results: dict[str, Any], sessions: list[str]) -> Path:
    tuning = np.concatenate([results[s].traces["bar_tuning"] for s in sessions])
    dsi = np.concatenate([results[s].table["dsi"] for s in sessions])
    pref = np.concatenate([results[s].table["preferred_direction_deg"] for s in sessions])
    pvals = np.concatenate([results[s].table.get("ds_p_value", np.full(len(dsi), np.nan)) for s in sessions])
    names = [f"{s} #{n}" for s in sessions for n in results[s].neurons]
    directions = np.asarray(results[sessions[0]].axes["bar_tuning"]["direction_deg"])
    top = np.argsort(-np.nan_to_num(dsi, nan=-1))[:6]
    figure = _figure(12, 5.2)
    polar = _grid(figure, 2, 3, left=0.45, right=3.6, top=0.85, bottom=0.45, wspace=0.75, hspace=0.95)
    for i, n in enumerate(top):
        ax = figure.add_subplot(polar[i // 3, i % 3])
        values = tuning[n] / max(tuning[n].max(), 1e-12)
        _polar_tuning(ax, directions, values, pref[n], dsi[n])
        p = "" if not np.isfinite(pvals[n]) else f", p={pvals[n]:.3f}"
        ax.set_title(f"{names[n]}: DSI {dsi[n]:.2f}{p}", fontsize=8, y=1.0, pad=20)
    (cell,) = _grid(figure, 1, 1, left=9.3, right=0.25, top=0.85, bottom=0.6)
    ax = figure.add_subplot(cell)
    ax.hist(dsi[np.isfinite(dsi)], bins=np.linspace(0, 1, 21), color="tab:gray", edgecolor="white")
    ax.set_xlabel("direction selectivity index (vector sum)")
    ax.set_ylabel("neurons")
    ax.set_xlim(0, 1)
    ax.set_title("DSI of every neuron", y=1.0)
    _freeze_ticks(ax)
    figure.suptitle(
        "Moving bars: the most direction-selective neurons (normalised response; red: vector sum)"
    )
    return _save(figure, path)


def _polar_tuning(
    ax: Any, directions_deg: np.ndarray, values: np.ndarray, preferred_deg: float, dsi: float
) -> None:
    """A direction tuning curve as a polar plot (0° right, counter-clockwise; rings at 0.5 and
    1), drawn on plain axes: a polar projection makes and places every tick and grid line anew
    and cost half of this figure's drawing."""
    ring = np.linspace(0, 2 * np.pi, 97)
    spokes = np.deg2rad(np.arange(0, 360, 45))
    grid_x = [*(0.5 * np.cos(ring)), np.nan, *np.cos(ring), np.nan]
    grid_y = [*(0.5 * np.sin(ring)), np.nan, *np.sin(ring), np.nan]
    for angle in spokes:
        grid_x += [0.0, 1.05 * np.cos(angle), np.nan]
        grid_y += [0.0, 1.05 * np.sin(angle), np.nan]
    ax.plot(grid_x, grid_y, color="#b0b0b0", lw=0.8)
    ax.plot(1.05 * np.cos(ring), 1.05 * np.sin(ring), color="black", lw=0.8)
    for angle in spokes:
        ax.text(
            1.3 * np.cos(angle), 1.3 * np.sin(angle), f"{np.rad2deg(angle):.0f}°", ha="center", va="center"
        )
    theta = np.deg2rad(np.append(directions_deg, directions_deg[0]))
    closed = np.append(values, values[0])
    ax.plot(closed * np.cos(theta), closed * np.sin(theta), color="tab:blue", lw=1.2)
    ax.fill(closed * np.cos(theta), closed * np.sin(theta), color="tab:blue", alpha=0.2)
    if np.isfinite(preferred_deg) and np.isfinite(dsi):
        angle = np.deg2rad(preferred_deg)
        ax.annotate(
            "",
            xy=(dsi * np.cos(angle), dsi * np.sin(angle)),
            xytext=(0, 0),
            arrowprops={"arrowstyle": "->", "color": "tab:red", "lw": 1.5},
        )
    ax.set_xlim(-1.08, 1.08)  # the direction labels lie outside, as on a polar plot
    ax.set_ylim(-1.08, 1.08)
    ax.set_aspect("equal")
    ax.set_axis_off()


def _mosaic(path: Path, plan: Any, result: Any, labels: np.ndarray, n_types: int) -> Path:
    from matplotlib.patches import Ellipse, Rectangle

    space = plan.space
    pixel = float(space.pixel_size_um)
    width_um, height_um = space.width * pixel, space.height * pixel
    colours = _type_colours(n_types)
    figure = _figure(6.4, 5.4 * height_um / width_um + 0.9)
    ax = figure.add_subplot(_grid(figure, 1, 1, left=0.8, right=0.95, top=0.65, bottom=0.55)[0])
    ax.add_patch(Rectangle((0, 0), width_um, height_um, fill=False, color="black", lw=0.8))
    table = result.table
    x, y = table["rf_x_um"], table["rf_y_um"]
    placed = np.isfinite(x) & np.isfinite(y)
    for k in sorted({int(v) for v in labels[placed]}):
        members = np.flatnonzero(placed & (labels == k))
        for i in members:
            ellipse = Ellipse(
                (x[i], y[i]),
                2 * table["rf_sigma_major_um"][i],
                2 * table["rf_sigma_minor_um"][i],
                angle=-table["rf_angle_deg"][i],  # y grows downwards in this plot, angles are drawn with y up
                fill=False,
                color=colours[k],
                lw=1.2,
                label=f"type {k}" if i == members[0] else None,
            )
            ax.add_patch(ellipse)
        ax.plot(x[members], y[members], ".", color=colours[k], ms=3)  # the centres, one line per type
    ax.set_xlim(-0.05 * width_um, 1.05 * width_um)
    ax.set_ylim(1.05 * height_um, -0.05 * height_um)
    ax.set_aspect("equal")
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("y (µm, downwards)")
    ax.set_title(
        f"Receptive-field mosaic, {result.session}\n(fitted 1σ ellipses, coloured by functional type)", y=1.0
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    _freeze_ticks(ax)
    return _save(figure, path)


def _tuning(
    path: Path, results: dict[str, Any], sessions: list[str], labels: np.ndarray, n_types: int
) -> Path | None:
    panels = []
    first = results[sessions[0]]
    if "chirp_frequency_response" in first.traces:
        panels.append(
            ("chirp_frequency_response", "frequency_hz", "temporal frequency (Hz)", "chirp: frequency sweep")
        )
        panels.append(("chirp_contrast_response", "contrast", "contrast", "chirp: contrast sweep"))
    if "grating_tuning" in first.traces:
        sf, tf = "spatial frequency", "temporal frequency"
        sf_key = "spatial_frequency_cycles_per_um"
        panels.append(("grating_sf", sf_key, f"{sf} (cycles/mm)", f"gratings: {sf}"))
        panels.append(("grating_tf", "temporal_frequency_hz", f"{tf} (Hz)", f"gratings: {tf}"))
    if not panels:
        return None
    colours = _type_colours(n_types)
    figure = _figure(3.6 * len(panels) + 1.2, 3.6)
    grid = _grid(figure, 1, len(panels), left=0.65, right=1.35, top=0.6, bottom=0.5, wspace=0.45)
    axes = [figure.add_subplot(cell) for cell in grid]
    for ax, (name, axis_key, xlabel, title) in zip(axes, panels, strict=True):
        if name.startswith("grating"):
            grid = np.concatenate([results[s].traces["grating_tuning"] for s in sessions])  # (N, SF, TF, D)
            x = np.asarray(first.axes["grating_tuning"][axis_key], dtype=float)
            curves = grid.max(axis=(2, 3)) if name == "grating_sf" else grid.max(axis=(1, 3))
            if name == "grating_sf":
                x = x * 1000.0
            ax.set_xscale("log", base=2)
            ax.set_xticks(x, [f"{v:.3g}" for v in x])
            ax.minorticks_off()
        else:
            curves = np.concatenate([results[s].traces[name] for s in sessions])
            x = np.asarray(first.axes[name][axis_key], dtype=float)
        curves = curves / np.maximum(curves.max(axis=1, keepdims=True), 1e-12)
        for k in range(n_types):
            members = curves[labels == k]
            if members.size:
                ax.plot(
                    x,
                    members.mean(axis=0),
                    "o-",
                    ms=3,
                    color=colours[k],
                    label=f"type {k} (n={len(members)})",
                )
        ax.set_xlabel(xlabel)
        ax.set_ylim(0, 1.05)
        ax.set_title(title, y=1.0)
    axes[0].set_ylabel("response / neuron's maximum")
    handles, names = axes[0].get_legend_handles_labels()
    figure.legend(handles, names, loc="upper right", fontsize=8, frameon=False)
    figure.suptitle("Tuning curves, mean per functional type")
    _freeze_ticks(*axes)
    return _save(figure, path)


def _indices(
    path: Path,
    results: dict[str, Any],
    sessions: list[str],
    labels: np.ndarray,
    n_types: int,
    names: list[str] | None = None,
    grouping: str = "functional type",
) -> Path:
    wanted = [
        ("on_off_index", "ON-OFF index", (-1, 1)),
        ("transience_index", "transience index", (0, 1)),
        ("dsi", "DSI", (0, 1)),
        ("osi", "OSI", (0, 1)),
        ("rf_sigma_major_um", "RF σ major (µm)", None),
        ("rf_surround_strength", "surround strength", None),
    ]
    present = [w for w in wanted if all(w[0] in results[s].table for s in sessions)]
    if not present:
        present = [("baseline", "baseline response", None)]
    colours = _type_colours(n_types)
    figure = _figure(2.6 * len(present) + 0.8, 3.6)
    # group names turned 60°: the longest sets the bottom margin
    longest = max((len(name) for name in names), default=0) if names is not None else 0
    bottom = 0.6 + longest * 7 * 0.62 / 72 * 0.87
    figure.set_size_inches(figure.get_size_inches()[0], 3.0 + bottom)
    grid = _grid(figure, 1, len(present), left=0.55, right=0.15, top=0.6, bottom=bottom, wspace=0.45)
    rng = np.random.default_rng(0)
    axes = [figure.add_subplot(cell) for cell in grid]
    for ax, (column, title, limits) in zip(axes, present, strict=True):
        values = np.concatenate([results[s].table[column] for s in sessions]).astype(float)
        groups = [(k, values[(labels == k) & np.isfinite(values)]) for k in range(n_types)]
        groups = [(k, v) for k, v in groups if v.size]
        if groups:  # one call for every group's box
            ax.boxplot([v for _, v in groups], positions=[k for k, _ in groups], widths=0.6, showfliers=False)
        for k, v in groups:
            ax.plot(k + rng.uniform(-0.2, 0.2, v.size), v, ".", color=colours[k], ms=3, alpha=0.8)
        if names is None:
            ax.set_xticks(range(n_types))
        else:
            ax.set_xticks(range(n_types), names, rotation=60, ha="right", fontsize=7)
        ax.set_xlim(-0.5, n_types - 0.5)
        ax.set_xlabel(grouping)
        ax.set_title(title, y=1.0)
        if limits is not None:
            ax.set_ylim(limits[0] - 0.05, limits[1] + 0.05)
    figure.suptitle(f"Indices by {grouping} (box: quartiles; dots: neurons)")
    _freeze_ticks(*axes)
    return _save(figure, path)
