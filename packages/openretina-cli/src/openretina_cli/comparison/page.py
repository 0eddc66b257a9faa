"""The comparison page: one HTML file with its figures inlined, so it opens from disk or an e-mail."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openretina_cli.comparison.configs import show
from openretina_cli.comparison.leaderboard import COLUMNS, Leaderboard
from openretina_cli.comparison.runs import Skipped
from openretina_cli.comparison.study import Sweep

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1300px; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { padding: 3px 8px; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }
th { background: #f4f4f4; position: sticky; top: 0; }
td.text, th.text { text-align: left; }
tr.ensemble td { background: #eef6ee; }
tr.best td { font-weight: 600; }
.scroll { overflow-x: auto; }
.note { color: #555; font-size: 0.9em; }
.skipped { color: #a40000; }
img { max-width: 100%; }
"""


@dataclass
class Section:
    title: str
    images: list[tuple[Path, str]] = field(default_factory=list)  # (png, caption)
    text: list[str] = field(default_factory=list)  # HTML paragraphs (already escaped)


def write_page(
    path: Path,
    board: Leaderboard,
    skipped: list[Skipped],
    sections: list[Section],
    sweeps: list[Sweep],
    notes: list[str],
    inputs: list[str],
) -> None:
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>openretina compare</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Comparison of {len(board.runs)} runs</h1>",
        "<p class='note'>Inputs: " + ", ".join(f"<code>{html.escape(i)}</code>" for i in inputs) + "</p>",
        "<p class='note'>Ranked by <b>validation correlation</b> (val corr., mean over neurons). "
        "test / oracle and test / ceiling: the test correlation as a fraction of the oracle (repeated "
        "trials) and of the ground-truth ceiling (simulated data). fit: seconds of training. Test scores "
        "are shown "
        "beside it and never used to rank or pick: choosing by test would make the test score "
        "optimistic.</p>",
        _leaderboard(board),
    ]
    if board.config_keys:
        parts += [
            "<h2>Settings that differ between the runs</h2>",
            "<p class='note'>Config values (from each run's config.yaml) that are not the same in every "
            "run; paths and logger settings are left out. An ensemble's settings are its members'.</p>",
            _leaderboard(board, settings=True),
        ]
    if skipped:
        parts.append("<h2 class='skipped'>Skipped (unfinished or half-written)</h2><ul>")
        parts += [
            f"<li class='skipped'><code>{html.escape(str(s.path))}</code>: {html.escape(s.reason)}</li>"
            for s in skipped
        ]
        parts.append("</ul>")
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        parts += section.text
        for image, caption in section.images:
            data = base64.b64encode(image.read_bytes()).decode("ascii")
            parts.append(
                f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(caption)}'>"
                f"<figcaption class='note'>{html.escape(caption)}</figcaption></figure>"
            )
    del sweeps  # their notes are in their sections
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li class='note'>{html.escape(n)}</li>" for n in notes))
        parts.append("</ul>")
    parts.append("</body></html>")
    path.write_text("\n".join(parts) + "\n")


def _leaderboard(board: Leaderboard, settings: bool = False) -> str:
    """The scores table, or (``settings``) rank, run and the config values that differ."""
    text_columns = {"run", "kind"}
    columns = [(k, label) for k, label in COLUMNS if not settings or k in ("rank", "run")]
    if settings:
        columns += [(k, k) for k in board.config_keys]
    rows = ["<div class='scroll'><table><tr>"]
    rows += [
        f"<th class='{'text' if key in text_columns or key in board.config_keys else ''}'>"
        f"{html.escape(label)}</th>"
        for key, label in columns
    ]
    rows.append("</tr>")
    for row in board.rows():
        classes = []
        if str(row["kind"]).startswith("ensemble"):
            classes.append("ensemble")
        if row["rank"] == 1:
            classes.append("best")
        rows.append(f"<tr class='{' '.join(classes)}'>")
        for key, _ in columns:
            config = key in board.config_keys
            rows.append(
                _cell(key, row.get(key), key in text_columns or config, row.get("path"), config=config)
            )
        rows.append("</tr>")
    rows.append("</table></div>")
    return "".join(rows)


def _cell(key: str, value: Any, text: bool, path: str | None, config: bool = False) -> str:
    if value is None:
        shown = "—"
    elif config:
        shown = show(value)
    elif isinstance(value, float):
        shown = f"{value:.1f}" if key == "fit_s" else f"{value:.4f}"
    elif key == "n_parameters":
        shown = f"{value:,}"
    else:
        shown = str(value)
    title = f" title='{html.escape(path)}'" if path and key == "run" else ""
    return f"<td class='{'text' if text else ''}'{title}>{html.escape(shown)}</td>"
