"""A run's characterisation (``<run>/characterisation/`` from ``openretina characterise``) as the
report shows it: counts of the classic cell classes, the command's figures (receptive-field
mosaic, chirp responses by functional type, direction selectivity) and one line per neuron for its
card. Reads only the files the command wrote, so the report never reruns a characterisation.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FOLDER = "characterisation"  # where `openretina characterise` writes into a run
SETTINGS_FILE = "characterisation.json"
COMMAND = "openretina characterise"
DSI_AT_LEAST = 0.3  # direction selective: DSI at least this and the shuffle test below P_BELOW
P_BELOW = 0.05
ON_OFF_AT_LEAST = 0.3  # ON cells: ON-OFF index above this; OFF cells: below minus this

# (figure file, caption) in reading order; only the ones the command drew are shown
FIGURES = (
    (
        "chirp_by_type.png",
        "Chirp responses of every characterised neuron, sorted by functional type, with each type's mean.",
    ),
    ("rf_mosaic_*.png", "Receptive-field mosaic: fitted 1σ ellipses of the model neurons' receptive fields."),
    (
        "direction_selectivity.png",
        "Direction selectivity to moving bars: the DSI distribution and the most selective neurons' "
        "polar plots.",
    ),
    ("indices_by_type.png", "The characterisation's indices by functional type."),
)


@dataclass
class CharacterisationView:
    source: str  # the folder, as shown on the page
    summary: dict[str, Any]
    figures: list[tuple[Path, str]] = field(default_factory=list)
    lines: dict[tuple[str, int], str] = field(default_factory=dict)  # (session, neuron index) -> text


def _rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "neurons.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def _number(row: dict[str, str], column: str) -> float | None:
    text = row.get(column)
    if text in (None, ""):
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def summary(directory: str | Path) -> dict[str, Any]:
    """What a run report can show about a characterisation folder: counts, indices and figures.

    Reads only the files the command wrote; returns {} when `directory` holds none.
    """
    folder = Path(directory)
    settings_path = folder / SETTINGS_FILE
    if not settings_path.is_file():
        return {}
    settings = json.loads(settings_path.read_text())
    rows = _rows(folder)
    tested = [r for r in rows if _number(r, "dsi") is not None and _number(r, "ds_p_value") is not None]
    selective = sum(
        1
        for r in tested
        if (_number(r, "dsi") or 0.0) >= DSI_AT_LEAST and (_number(r, "ds_p_value") or 1.0) < P_BELOW
    )
    on_off = [v for r in rows if (v := _number(r, "on_off_index")) is not None]
    return {
        "neurons": len(rows),
        "sessions": list(settings.get("sessions", {})),
        "stimuli": list(settings.get("stimuli", {})),
        "skipped": settings.get("skipped", {}),
        "functional_types": settings.get("functional_types"),
        "direction_selective": {"dsi_at_least": DSI_AT_LEAST, "p_below": P_BELOW, "count": selective}
        if tested
        else None,
        "on_cells": sum(1 for v in on_off if v > ON_OFF_AT_LEAST),
        "off_cells": sum(1 for v in on_off if v < -ON_OFF_AT_LEAST),
        "figures": sorted(str(p.relative_to(folder)) for p in (folder / "figures").glob("*.png")),
    }


def neuron_line(row: dict[str, str]) -> str:
    """One neuron's characterisation in a line: type, polarity, transience, direction selectivity,
    receptive field and preferred channel, each only when it was measured."""
    parts = []
    if row.get("functional_type", "") != "":
        parts.append(f"functional type {row['functional_type']}")
    if (v := _number(row, "on_off_index")) is not None:
        kind = "ON" if v > ON_OFF_AT_LEAST else "OFF" if v < -ON_OFF_AT_LEAST else "ON-OFF"
        parts.append(f"{kind} (ON-OFF index {v:+.2f})")
    if (v := _number(row, "transience_index")) is not None:
        parts.append(f"transience {v:.2f}")
    if (v := _number(row, "dsi")) is not None:
        p = _number(row, "ds_p_value")
        text = f"DSI {v:.2f}" + (f" (p {p:.3g})" if p is not None else "")
        angle = _number(row, "preferred_direction_deg")
        if angle is not None and p is not None and p < P_BELOW and v >= DSI_AT_LEAST:  # direction selective
            text += f", prefers {angle:.0f}°"
        parts.append(text)
    major, minor = _number(row, "rf_sigma_major_um"), _number(row, "rf_sigma_minor_um")
    if major is not None and minor is not None:
        r2 = _number(row, "rf_fit_r2")
        parts.append(f"RF σ {major:.0f} × {minor:.0f} µm" + (f" (fit r² {r2:.2f})" if r2 is not None else ""))
    names = [k.removeprefix("chromatic_preference_") for k in row if k.startswith("chromatic_preference_")]
    channel = _number(row, "preferred_channel")
    if channel is not None and 0 <= int(channel) < len(names):
        parts.append(f"prefers {names[int(channel)]}")
    return " · ".join(parts)


def load_characterisation_view(folder: Path) -> CharacterisationView | None:
    """The characterisation in ``folder``; None when there is none (or it cannot be read)."""
    try:
        brief = summary(folder)
        rows = _rows(folder) if brief else []
    except (OSError, ValueError, KeyError):
        return None
    if not brief:
        return None
    view = CharacterisationView(source=str(folder), summary=brief)
    for pattern, caption in FIGURES:
        for path in sorted((folder / "figures").glob(pattern)):
            if pattern.startswith("rf_mosaic"):
                session = path.stem.removeprefix("rf_mosaic_")
                view.figures.append((path, f"{caption[:-1]} (session {session})."))
            else:
                view.figures.append((path, caption))
    for row in rows:
        try:
            key = (str(row["session"]), int(row["neuron"]))
        except (KeyError, ValueError):
            continue
        view.lines[key] = neuron_line(row)
    return view
