"""One card per neuron on the report: its test trace, its readout's place on the stimulus and,
when ``openretina mei`` was run, its most exciting input.

Cards must stay cheap for thousands of neurons, so nothing here uses matplotlib: traces are
small inline SVG drawn from binned arrays, stimulus maps are tiny PNGs encoded with zlib, all
computed with numpy for every neuron at once. The data behind the cards is kept in
``eval/cards.npz`` so that the page can be rebuilt (say, after ``openretina mei``) without
evaluating the model again.
"""

from __future__ import annotations

import base64
import html
import json
import re
import struct
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from openretina_cli.evaluation.per_neuron import Evaluation, SplitResult

CARDS_FILE = "cards.npz"
TRACE_POINTS = 150  # bins of a card's trace (the whole test stimulus)
S = 2  # SVG units per pixel of a trace: integer coordinates to half a pixel
TRACE_W, TRACE_H = 560, 150  # SVG user units of a trace
MARGIN_L, MARGIN_B, MARGIN_T = 46, 30, 8


def peak(stimulus: np.ndarray) -> tuple[int, int, int]:
    """(frame, row, column) of a (C, T, H, W) stimulus: its frame of most energy, and there the
    pixel of largest absolute value over channels."""
    frame = int((stimulus**2).sum(axis=(0, 2, 3)).argmax())
    row, column = np.unravel_index(np.abs(stimulus[:, frame]).max(axis=0).argmax(), stimulus.shape[2:])
    return frame, int(row), int(column)


def anchor(session: str, index: int) -> str:
    """The HTML id of a neuron's card (letters, digits, '-' and '_' only)."""
    return "n-" + re.sub(r"[^A-Za-z0-9_-]", "_", str(session)) + f"-{int(index)}"


# ------------------------------------------------------------------------------------------------
# the data behind the cards


def card_split(evaluation: Evaluation) -> SplitResult | None:
    """The split whose traces the cards show: the first test stimulus with repeated trials, else
    the first test stimulus, else the validation clips."""
    tests = evaluation.test_splits
    with_trials = [s for s in tests if any(r.trials is not None for r in s.sessions.values())]
    return (with_trials or tests or evaluation.splits or [None])[0]


def _bins(values: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of `values` (..., T) over `points` equal bins of time, and each bin's first frame."""
    t = values.shape[-1]
    edges = np.linspace(0, t, min(points, t) + 1).round().astype(int)
    sums = np.add.reduceat(values, edges[:-1], axis=-1)
    return sums / np.diff(edges), edges[:-1]


def card_data(
    evaluation: Evaluation,
    model: Any,
    frame_rate: float | None,
    unit: str,
    ids: Mapping[str, np.ndarray],
    geometry: Mapping[str, Any] | None = None,
) -> dict[str, np.ndarray]:
    """Arrays for every neuron's card, keyed ``<session>/<field>``, plus ``meta`` (JSON text).
    `geometry` is `model_geometry.readout_geometries(model)` when the caller has it already."""
    from openretina_cli.evaluation.model_geometry import readout_geometries, true_centres

    data: dict[str, np.ndarray] = {}
    split = card_split(evaluation)
    meta: dict[str, Any] = {"unit": unit, "split": None, "sessions": []}
    _, height, width = (int(s) for s in model.in_shape)
    meta["grid"] = [width, height]
    if split is not None:
        meta["split"] = split.name if split.is_test else "validation clips"
        meta["split_key"] = split.key
        meta["time_unit"] = "s" if frame_rate else "frames"
        for name, result in sorted(split.sessions.items()):
            meta["sessions"].append(name)
            mean, starts = _bins(result.target, TRACE_POINTS)
            prediction, _ = _bins(result.prediction, TRACE_POINTS)
            data[f"{name}/mean"] = mean.astype(np.float32)
            data[f"{name}/prediction"] = prediction.astype(np.float32)
            if result.trials is not None:
                trials, _ = _bins(result.trials, TRACE_POINTS)  # (R, N, P)
                data[f"{name}/low"] = trials.min(axis=0).astype(np.float32)
                data[f"{name}/high"] = trials.max(axis=0).astype(np.float32)
            frames = starts + evaluation.warmup_frames
            data[f"{name}/time"] = (frames / frame_rate if frame_rate else frames).astype(np.float32)
    placed = readout_geometries(model) if geometry is None else geometry
    for name in sorted(getattr(model, "n_neurons", {})):
        where = placed.get(name)
        if where is not None:
            data[f"{name}/x"], data[f"{name}/y"] = where[0], where[1]
            if where[2] is not None:
                data[f"{name}/sigma"] = where[2]
        centres = true_centres(evaluation.truth, name, ids[name]) if name in ids else None
        if centres is not None:
            data[f"{name}/true_x"], data[f"{name}/true_y"] = centres
    data["meta"] = np.array(json.dumps(meta))
    return data


def save_cards(data: Mapping[str, np.ndarray], path: Path) -> Path:
    np.savez_compressed(path, **dict(data))
    return path


def load_cards(path: Path) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as loaded:
        return {key: loaded[key] for key in loaded.files}


# ------------------------------------------------------------------------------------------------
# drawing: SVG and PNG text


def _points(x: np.ndarray, y: np.ndarray) -> str:
    """SVG points "x y x y ..." rounded to whole user units (the drawings are scaled to make that
    fine enough); formatting integers keeps a thousand cards fast."""
    pairs = np.rint(np.column_stack([x, y])).astype(np.int64).ravel().tolist()
    return " ".join(map(str, pairs))


def _tick(value: float) -> str:
    return f"{value:.3g}"


def trace_svg(
    time: np.ndarray,
    mean: np.ndarray,
    prediction: np.ndarray,
    low: np.ndarray | None,
    high: np.ndarray | None,
    unit: str,
    time_unit: str,
) -> str:
    """Recorded (black), predicted (red) and the single trials' range (grey band) of one neuron."""
    values = [mean, prediction] + ([low, high] if low is not None and high is not None else [])
    y_min = float(min(np.nanmin(v) for v in values))
    y_max = float(max(np.nanmax(v) for v in values))
    if not np.isfinite(y_min) or y_max <= y_min:
        y_max = y_min + 1.0 if np.isfinite(y_min) else 1.0
        y_min = 0.0 if not np.isfinite(y_min) else y_min
    t0, t1 = float(time[0]), float(time[-1]) if len(time) > 1 else float(time[0]) + 1.0
    span = (t1 - t0) or 1.0
    plot_w, plot_h = TRACE_W - MARGIN_L - 6, TRACE_H - MARGIN_B - MARGIN_T
    # coordinates in units of 1/S pixel, written as integers (short text, fine enough)
    sx = (MARGIN_L + (time - t0) / span * plot_w) * S

    def sy(v: np.ndarray) -> np.ndarray:
        return (MARGIN_T + (1 - (v - y_min) / (y_max - y_min)) * plot_h) * S

    parts = [
        f'<svg class="trace" viewBox="0 0 {TRACE_W * S} {TRACE_H * S}" role="img" '
        f'aria-label="recorded and predicted response">',
        f'<g font-size="{10 * S}" fill="#333">',
        f'<text x="{MARGIN_L * S - 3 * S}" y="{MARGIN_T * S + 7 * S}" text-anchor="end">'
        f"{_tick(y_max)}</text>",
        f'<text x="{MARGIN_L * S - 3 * S}" y="{(MARGIN_T + plot_h) * S}" text-anchor="end">'
        f"{_tick(y_min)}</text>",
        f'<text x="{MARGIN_L * S}" y="{TRACE_H * S - 4 * S}">{_tick(t0)}</text>',
        f'<text x="{(MARGIN_L + plot_w) * S}" y="{TRACE_H * S - 4 * S}" text-anchor="end">{_tick(t1)}</text>',
        f'<text x="{(MARGIN_L + plot_w / 2) * S}" y="{TRACE_H * S - 4 * S}" text-anchor="middle">'
        f"time ({time_unit})</text>",
        f'<text transform="translate({11 * S} {(MARGIN_T + plot_h / 2) * S}) rotate(-90)" '
        f'text-anchor="middle">{html.escape(unit)}</text></g>',
        f'<rect x="{MARGIN_L * S}" y="{MARGIN_T * S}" width="{plot_w * S}" height="{plot_h * S}" '
        f'fill="none" stroke="#bbb" stroke-width="{0.8 * S}"/>',
    ]
    if low is not None and high is not None:
        band = _points(np.concatenate([sx, sx[::-1]]), np.concatenate([sy(high), sy(low)[::-1]]))
        parts.append(f'<polygon points="{band}" fill="#ddd"/>')
    parts.append(f'<polyline points="{_points(sx, sy(mean))}" fill="none" stroke="#000" stroke-width="{S}"/>')
    parts.append(
        f'<polyline points="{_points(sx, sy(prediction))}" fill="none" stroke="#d62728" stroke-width="{S}"/>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _readout_frame(grid: Sequence[int]) -> tuple[float, float, float, float]:
    """(scale, pad, width, height) of a readout drawing on a `grid` (width, height) of pixels."""
    width, height = int(grid[0]), int(grid[1])
    scale = 150.0 / max(width, height, 1)
    pad = 26.0
    return scale, pad, width * scale + pad + 6, height * scale + 8


def readout_others(grid: Sequence[int], session_id: str, x: np.ndarray, y: np.ndarray) -> str:
    """One hidden SVG defining a session's readout centres (grey dots) once, for every card of
    the session to show with <use> instead of repeating them."""
    scale, pad, _, _ = _readout_frame(grid)
    cx = pad + (np.asarray(x) + 0.5) * scale
    cy = 4 + (np.asarray(y) + 0.5) * scale
    path = "".join(f"M{a:.1f} {b:.1f}h0" for a, b in zip(cx.tolist(), cy.tolist(), strict=True))
    return (
        '<svg width="0" height="0" style="position:absolute" aria-hidden="true"><defs>'
        f'<path id="{session_id}" d="{path}" stroke="#bbb" stroke-width="3.2" stroke-linecap="round"/>'
        "</defs></svg>"
    )


def readout_svg(
    grid: Sequence[int],
    x: float,
    y: float,
    sigma: float | None,
    others_id: str | None,
    true_xy: tuple[float, float] | None,
) -> str:
    """The neuron's readout centre (red dot), its extent (one sigma, red circle), the session's
    other neurons (grey dots, from `readout_others`) and the true centre (black cross) on the
    stimulus grid."""
    width, height = int(grid[0]), int(grid[1])
    scale, pad, w, h = _readout_frame(grid)

    def px(v: float) -> float:
        return pad + (v + 0.5) * scale

    def py(v: float) -> float:
        return 4 + (v + 0.5) * scale

    parts = [
        f'<svg class="readout" viewBox="0 0 {w:.0f} {h + 14:.0f}" role="img" aria-label="readout position">',
        f'<rect x="{pad}" y="4" width="{width * scale:.1f}" height="{height * scale:.1f}" fill="#fafafa" '
        'stroke="#999" stroke-width="1"/>',
    ]
    if others_id is not None:
        parts.append(f'<use href="#{others_id}"/>')
    if sigma is not None and np.isfinite(sigma):
        parts.append(
            f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="{max(sigma * scale, 1.0):.1f}" fill="none" '
            'stroke="#d62728" stroke-width="1.2"/>'
        )
    parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.6" fill="#d62728"/>')
    if true_xy is not None:
        tx, ty = px(true_xy[0]), py(true_xy[1])
        parts.append(
            f'<path d="M{tx - 4:.1f} {ty - 4:.1f}L{tx + 4:.1f} {ty + 4:.1f}M{tx - 4:.1f} {ty + 4:.1f}'
            f'L{tx + 4:.1f} {ty - 4:.1f}" stroke="#000" stroke-width="1.4"/>'
        )
    parts.append(
        f'<g font-size="9" fill="#333"><text x="{pad}" y="{h + 10:.0f}">x: 0–{width - 1} px</text>'
        f'<text transform="translate(10 {4 + height * scale / 2:.0f}) rotate(-90)" text-anchor="middle">'
        f"y: 0–{height - 1} px</text></g></svg>"
    )
    return "".join(parts)


def _png(rgb: np.ndarray) -> bytes:
    """A PNG file of an (H, W, 3) uint8 image (no compression tricks: these are a few pixels)."""
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + row.tobytes() for row in np.ascontiguousarray(rgb, dtype=np.uint8))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


# Blue-white-red, symmetric around 0 (as the MEI figures draw stimuli).
_ANCHORS = np.array(
    [[0.02, 0.19, 0.38], [0.57, 0.77, 0.87], [0.97, 0.97, 0.97], [0.96, 0.65, 0.51], [0.40, 0.0, 0.12]]
)


def diverging_png(image: np.ndarray, limit: float) -> str:
    """A data-URI PNG of a 2-D map, coloured blue (-limit) - white (0) - red (+limit)."""
    scaled = np.clip((image / (limit or 1.0) + 1.0) / 2.0, 0.0, 1.0) * (len(_ANCHORS) - 1)
    low = np.floor(scaled).astype(int).clip(0, len(_ANCHORS) - 2)
    frac = (scaled - low)[..., None]
    rgb = (_ANCHORS[low] * (1 - frac) + _ANCHORS[low + 1] * frac) * 255
    return "data:image/png;base64," + base64.b64encode(_png(rgb.round().astype(np.uint8))).decode("ascii")


def mei_views(stimulus: np.ndarray, names: Sequence[str], frame_rate: float | None) -> tuple[str, str]:
    """(spatial maps at the peak frame, one per channel, as <img>s; the time course at the peak
    pixel, one line per channel, as SVG) of an MEI (C, T, H, W)."""
    channels, frames = stimulus.shape[:2]
    frame, row, column = peak(stimulus)
    limit = float(np.abs(stimulus).max()) or 1.0
    maps = "".join(
        f'<figure class="mei-map"><img src="{diverging_png(stimulus[c, frame], limit)}" '
        f'alt="{html.escape(names[c])} at the peak frame">'
        f"<figcaption>{html.escape(names[c])}</figcaption></figure>"
        for c in range(channels)
    )
    width, height, pad = 240, 110, 30
    time = np.arange(frames) - (frames - 1)
    x = pad + (time - time[0]) / max(frames - 1, 1) * (width - pad - 6)
    lines = []
    colours = ("#2ca02c", "#7b3fbf", "#1f77b4", "#ff7f0e", "#d62728")
    for c in range(channels):
        y = 6 + (1 - (stimulus[c, :, row, column] / limit + 1) / 2) * (height - 30)
        points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(x, y, strict=True))
        lines.append(
            f'<polyline points="{points}" fill="none" stroke="{colours[c % len(colours)]}" '
            f'stroke-width="1.3"><title>{html.escape(names[c])}</title></polyline>'
        )
    span = f"{(frames - 1) * 1000.0 / frame_rate:.0f} ms" if frame_rate else f"{frames - 1} frames"
    legend = " ".join(
        f'<tspan fill="{colours[c % len(colours)]}">{html.escape(names[c])}</tspan>' for c in range(channels)
    )
    svg = (
        f'<svg class="mei-trace" viewBox="0 0 {width} {height}" role="img" aria-label="MEI time course">'
        f'<line x1="{pad}" x2="{width - 6}" y1="{6 + (height - 30) / 2}" y2="{6 + (height - 30) / 2}" '
        'stroke="#bbb" stroke-width="0.6"/>'
        + "".join(lines)
        + f'<g font-size="9" fill="#333"><text x="{pad}" y="{height - 12}">-{span}</text>'
        f'<text x="{width - 6}" y="{height - 12}" text-anchor="end">0 (newest frame)</text>'
        f'<text x="{pad}" y="{height - 1}">at pixel (x {column}, y {row}): {legend}</text></g></svg>'
    )
    return maps, svg
