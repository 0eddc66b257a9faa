"""``report.html``: one self-contained page (figures embedded as data URIs, no scripts, no server)
with the summary tables, the figures, the notes, the run's config and the package versions."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# Summary columns, in order, with the words a reader sees.
COLUMNS = (
    ("correlation", "correlation"),
    ("trial_correlation", "single-trial corr."),
    ("oracle", "oracle"),
    ("fraction_oracle", "fraction of oracle"),
    ("fev", "FEV"),
    ("feve", "FEVE"),
    ("mse", "MSE"),
    ("poisson_loss", "Poisson loss"),
    ("truth_correlation", "corr. with true rate"),
)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.8em; }
.note { color: #8a5a00; }
"""


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_number(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _columns(metrics: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(key, label) for key, label in COLUMNS if key in metrics]


def _split_section(key: str, split: Mapping[str, Any]) -> str:
    metrics = split["metrics"]
    columns = _columns(metrics)
    parts = [f"<h3>{html.escape(key)} ({split['n_neurons']} neurons)</h3>"]
    rows = [
        ["mean", *(metrics[m]["mean"] for m, _ in columns)],
        ["median", *(metrics[m]["median"] for m, _ in columns)],
    ]
    filtered = split.get("filtered")
    if filtered:
        rows.append(
            [
                f"mean, {filtered['rule']} ({filtered['n_neurons']} neurons)",
                *(filtered["metrics"][m]["mean"] for m, _ in columns),
            ]
        )
    parts.append(_table(["", *(label for _, label in columns)], rows))
    sessions = split["sessions"]
    parts.append(
        _table(
            ["session", *(label for _, label in columns)],
            [[n, *(v.get(m) for m, _ in columns)] for n, v in sessions.items()],
        )
    )
    cell_types = split.get("cell_types")
    if cell_types:
        parts.append(
            _table(
                ["cell type", "neurons", *(label for _, label in columns)],
                [[t, v["n_neurons"], *(v.get(m) for m, _ in columns)] for t, v in cell_types.items()],
            )
        )
    return "\n".join(parts)


def _image(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    label = html.escape(caption)
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{label}">'
        f"<figcaption>{label}</figcaption></figure>"
    )


def render(
    *,
    title: str,
    summary: Mapping[str, Any],
    figures: Sequence[tuple[Path, str]],
    notes: Sequence[str],
    config_text: str | None,
    versions: Mapping[str, str],
    files: Sequence[str],
) -> str:
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>',
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<p>Files: " + ", ".join(f'<a href="{html.escape(f)}">{html.escape(f)}</a>' for f in files) + "</p>",
        "<h2>Scores</h2>",
        "<p>Means and medians over neurons; neurons whose score is undefined (constant responses) "
        "are left out of a mean and counted in summary.json. The variance-ratio filter is applied to the "
        "filtered row only, never to neurons.csv.</p>",
    ]
    for key, split in summary["splits"].items():
        parts.append(_split_section(key, split))
    parts.append("<h2>Figures</h2>")
    parts.extend(_image(path, caption) for path, caption in figures)
    if notes:
        parts.append("<h2>Notes</h2><ul>")
        parts.extend(f'<li class="note">{html.escape(note)}</li>' for note in notes)
        parts.append("</ul>")
    if config_text:
        parts.append(f"<h2>Run config</h2><pre>{html.escape(config_text)}</pre>")
    parts.append("<h2>Versions</h2>")
    parts.append(_table(["package", "version"], list(versions.items())))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
