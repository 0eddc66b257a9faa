"""``report.html``: one self-contained page (figures embedded as data URIs, one small script that
sorts the neuron table, no server) that opens from disk.

Reading order: what a modeller checks first (the headline scores of each split, labelled for what
they are measured against, the warnings, the run's facts), then every score in detail, the
figures, a sortable table of every neuron whose rows link to that neuron's card, the MEIs grouped
by cell type when ``openretina mei`` was run, notes, and the run config folded away.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from openretina_cli.evaluation import cards as card

# Summary columns, in order, with the words a reader sees.
COLUMNS = (
    ("correlation", "correlation"),
    ("baseline_correlation", "baseline corr."),
    ("normalised_correlation", "CC_norm"),
    ("feve", "FEVE"),
    ("trial_correlation", "single-trial corr."),
    ("max_correlation", "CC_max"),
    ("oracle", "oracle (LOO)"),
    ("fraction_oracle", "single-trial corr. / oracle"),
    ("fev", "FEV"),
    ("truth_correlation", "corr. with true rate"),
    ("ceiling_correlation", "true-rate ceiling"),
    ("mse", "MSE"),
    ("poisson_loss", "Poisson loss"),
)
# Per-neuron columns left out of the page's table (they stay in neurons.csv).
TABLE_LEAVES_OUT = ("trial_correlation_std", "jackknife_oracle")

GLOSSARY = (
    (
        "correlation",
        "Pearson correlation of the prediction with the recording over time. On the "
        "validation clips the recording is a single trial; on a test stimulus with repeats it is the mean "
        "of the trials, which is less noisy, so test correlations are higher than validation ones for the "
        "same model. Compare a split with itself (or with the baseline on it), not validation with test.",
    ),
    (
        "baseline corr.",
        "The same correlation for a linear-nonlinear baseline fitted on the same "
        "training frames. A model that does not beat it has learned nothing a linear filter could not.",
    ),
    (
        "CC_norm",
        "Normalised correlation (Schoppe et al. 2016): the correlation with the trial mean "
        "divided by CC_max, the correlation a noise-free prediction of the true response would reach, "
        "estimated from the trials' signal power. About 1 for a model as good as the noise allows; it is "
        "not biased by the number of trials. An estimate: single neurons can exceed 1 by chance.",
    ),
    (
        "FEVE",
        "Fraction of the explainable variance explained (Cadena et al. 2019): 1 minus the "
        "prediction's error beyond the trial-to-trial noise, relative to the variance the noise leaves "
        "explainable. 1 is perfect, 0 is as good as a constant, negative is worse.",
    ),
    (
        "oracle (LOO)",
        "Leave-one-out oracle: the mean over trials of the correlation of one trial with "
        "the mean of the others. It is not a bound: the mean of the other trials is itself noisy, so a good "
        "model's single-trial correlation can exceed it (its ratio to the oracle can pass 1, most with few "
        "trials). Use CC_norm or FEVE to judge how close a model is to the noise limit.",
    ),
    ("FEV", "Fraction of the response variance that is repeatable across trials (1.x's var_ratio)."),
    (
        "true-rate ceiling",
        "Simulated data only: the correlation of the true firing rate with the trial "
        "mean, i.e. what a perfect model would score; 'fraction of ceiling' is the model's mean correlation "
        "over the ceiling's mean.",
    ),
)

STYLE = """
*, *::before, *::after { box-sizing: border-box; }
body { font-family: system-ui, sans-serif; margin: 0 auto; padding: 1em 24px 3em; max-width: 1200px;
  color: #222; line-height: 1.4; }
h1 { font-size: 1.45em; margin: 0.2em 0 0.3em; overflow-wrap: anywhere; }
h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.02em; margin: 1.2em 0 0.3em; }
nav { font-size: 0.9em; margin-bottom: 0.6em; } nav a { margin-right: 0.9em; }
.meta { font-size: 0.85em; color: #555; overflow-wrap: anywhere; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.4em 0 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th { background: #f4f4f4; font-weight: 600; }
th:first-child, td:first-child, td.text, th.text { text-align: left; }
td.name, td.text { white-space: nowrap; }
.warn { background: #fff4e0; border-left: 5px solid #e08a00; padding: 0.5em 0.9em; margin: 0.6em 0; }
.good { background: #eef8ee; border-left: 5px solid #3a9a3a; padding: 0.5em 0.9em; margin: 0.6em 0; }
.facts td { text-align: left; } .facts th { text-align: left; width: 13em; }
.explain { font-size: 0.88em; color: #333; max-width: 60em; }
details { margin: 0.6em 0; } summary { cursor: pointer; font-weight: 600; }
dl.glossary dt { font-weight: 600; margin-top: 0.5em; }
dl.glossary dd { margin-left: 1.2em; font-size: 0.9em; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #444; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.8em; max-height: 40em; }
ul.notes li { color: #333; }
#neuron-table { max-height: 36em; overflow: auto; }
#neuron-table table { margin: 0; }
#neuron-table th { position: sticky; top: 0; cursor: pointer; user-select: none; }
#neuron-table th[aria-sort="ascending"]::after { content: " ▲"; }
#neuron-table th[aria-sort="descending"]::after { content: " ▼"; }
.card { display: none; border: 1px solid #ccc; border-radius: 6px; padding: 0.6em 1em; margin: 1em 0; }
.card:target, #all-cards:checked ~ .cards .card { display: block; }
.card h3 { margin-top: 0.2em; }
.card-plots { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.card-plots > div { min-width: 0; }
.card-plots > div.side { width: 210px; }
svg.trace { width: 560px; max-width: 100%; height: auto; }
svg.readout { width: 190px; max-width: 100%; height: auto; }
svg.mei-trace { width: 240px; max-width: 100%; height: auto; }
.mei-maps { display: flex; gap: 0.4em; }
.mei-map { margin: 0; text-align: center; font-size: 0.8em; }
.mei-map img { width: 72px; image-rendering: pixelated; border: 1px solid #ccc; }
.mei-grid { display: flex; flex-wrap: wrap; gap: 0.6em; }
.mei-tile { display: block; text-decoration: none; color: #222; border: 1px solid #ddd; padding: 3px;
  font-size: 0.75em; }
.mei-tile img { width: 48px; image-rendering: pixelated; margin-right: 2px; }
.legend span { margin-right: 1em; white-space: nowrap; }
.swatch { display: inline-block; width: 1.6em; height: 0.35em; vertical-align: middle; margin-right: 0.3em; }
"""

SORT_SCRIPT = """
document.querySelectorAll('#neuron-table th').forEach(function (th, column) {
  th.addEventListener('click', function () {
    var body = th.closest('table').tBodies[0];
    var down = th.getAttribute('aria-sort') === 'ascending';
    th.closest('tr').querySelectorAll('th').forEach(function (o) { o.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', down ? 'descending' : 'ascending');
    var rows = Array.prototype.slice.call(body.rows);
    function key(row) {
      var text = row.cells[column].getAttribute('data-v') || row.cells[column].textContent;
      var number = parseFloat(text);
      return isNaN(number) ? text : number;
    }
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      if (typeof x !== typeof y) { return typeof x === 'number' ? -1 : 1; }
      return (x < y ? -1 : x > y ? 1 : 0) * (down ? -1 : 1);
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], css: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_number(v)}</td>" for v in row) + "</tr>" for row in rows)
    table = f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    return f'<div class="scroll">{table}</div>'


def _columns(metrics: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(key, label) for key, label in COLUMNS if key in metrics]


# ------------------------------------------------------------------------------------------------
# what each split is


def split_label(key: str, split: Mapping[str, Any]) -> str:
    """A split's name and what its scores are measured against."""
    if key == "val":
        return "validation clips: against single trials"
    trials = (split.get("n_trials") or {}).get("max")
    against = f"against the mean of {trials} trials" if trials else "against the recording"
    if key == "test":
        return f"all test stimuli pooled: {against}"
    return f"test stimulus {key.removeprefix('test/')}: {against}"


def shown_splits(summary: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The splits the page shows: the pooled ``test`` only when it pools two or more stimuli (with
    one test stimulus it is the same numbers twice)."""
    splits = summary.get("splits", {})
    stimuli = [key for key in splits if key.startswith("test/")]
    return [(k, v) for k, v in splits.items() if k != "test" or len(stimuli) > 1]


def _mean(split: Mapping[str, Any], metric: str) -> float | None:
    value = split["metrics"].get(metric, {}).get("mean")
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


# ------------------------------------------------------------------------------------------------
# first screen


def headline(summary: Mapping[str, Any]) -> str:
    """One row per split: neurons, the model's correlation, the baseline's, CC_norm, FEVE, and the
    true-rate ceiling with the fraction of it when the data carry the truth."""
    splits = shown_splits(summary)
    wanted = [
        ("correlation", "model corr."),
        ("baseline_correlation", "baseline corr."),
        ("normalised_correlation", "CC_norm"),
        ("feve", "FEVE"),
        ("ceiling_correlation", "true-rate ceiling"),
    ]
    present = [(m, label) for m, label in wanted if any(_mean(s, m) is not None for _, s in splits)]
    has_ceiling = any(m == "ceiling_correlation" for m, _ in present)
    header = ["split (scored against)", "neurons", *(label for _, label in present)]
    if has_ceiling:
        header.append("fraction of ceiling")
    rows = []
    for key, split in splits:
        row: list[Any] = [split_label(key, split), split["n_neurons"], *(_mean(split, m) for m, _ in present)]
        if has_ceiling:
            corr, ceiling = _mean(split, "correlation"), _mean(split, "ceiling_correlation")
            row.append(None if corr is None or not ceiling else corr / ceiling)
        rows.append(row)
    return _table(header, rows, "headline")


def warnings_html(summary: Mapping[str, Any]) -> str:
    """The flags a modeller must see first: a model that does not beat its baseline on a split, a
    run stopped while still improving."""
    flags: list[str] = []
    for key, split in shown_splits(summary):
        model, baseline = _mean(split, "correlation"), _mean(split, "baseline_correlation")
        if model is not None and baseline is not None and model <= baseline:
            flags.append(
                f"The model does not beat the linear-nonlinear baseline on the {split_label(key, split)} "
                f"(mean correlation {model:.3f} vs the baseline's {baseline:.3f})."
            )
    flags.extend(str(w) for w in (summary.get("run") or {}).get("warnings", []))
    if not flags:
        return ""
    return "".join(f'<p class="warn">⚠ {html.escape(flag)}</p>' for flag in flags)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def facts_html(summary: Mapping[str, Any]) -> str:
    """The run's facts as a two-column table: epochs, why it stopped, time, size of model and data."""
    facts = summary.get("run") or {}
    rows: list[tuple[str, str]] = []
    if "best_epoch" in facts:
        text = f"epoch {facts['best_epoch']} (counting from 0)"
        if "epochs_run" in facts:
            text += f" of {facts['epochs_run']} epochs run"
        if "max_epochs" in facts:
            text += f" (max_epochs {facts['max_epochs']})"
        if "best_val_correlation" in facts:
            text += f"; validation correlation {facts['best_val_correlation']:.3f}"
        rows.append(("weights kept", text))
    if facts.get("stopped"):
        rows.append(("training stopped", str(facts["stopped"])))
    if "training_time_s" in facts:
        rows.append(("training time", _duration(float(facts["training_time_s"]))))
    if facts.get("parameters") is not None:
        rows.append(("model parameters", f"{int(facts['parameters']):,}"))
    data = facts.get("data") or {}
    if data:
        shape = data.get("input") or {}
        rate = f" at {data['frame_rate_hz']:g} Hz" if data.get("frame_rate_hz") else ""
        rows.append(
            (
                "data",
                f"{data.get('sessions')} sessions, {data.get('neurons')} neurons; stimulus "
                f"{shape.get('channels')} channel(s) of {shape.get('width')}x{shape.get('height')} px "
                f"(x by y){rate}",
            )
        )
        minutes = ""
        if data.get("frame_rate_hz"):
            minutes = f" ({_duration(data['training_frames'] / data['frame_rate_hz'])} of recording)"
        rows.append(("training frames", f"{data.get('training_frames'):,} over all sessions{minutes}"))
        for name, test in (data.get("tests") or {}).items():
            trials = f", {test['trials']} trials" if test.get("trials") else ", no repeats"
            rows.append((f"test stimulus {name}", f"{test['frames']} frames{trials}"))
    baseline = summary.get("baseline") or {}
    if baseline.get("method"):
        rows.append(("baseline", str(baseline["method"])))
    if not rows:
        return ""
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f'<div class="scroll"><table class="facts"><tbody>{body}</tbody></table></div>'


def glossary_html() -> str:
    items = "".join(f"<dt>{html.escape(term)}</dt><dd>{html.escape(text)}</dd>" for term, text in GLOSSARY)
    return f'<details><summary>What each score means</summary><dl class="glossary">{items}</dl></details>'


# ------------------------------------------------------------------------------------------------
# scores in detail


def _split_section(key: str, split: Mapping[str, Any]) -> str:
    metrics = split["metrics"]
    columns = _columns(metrics)
    parts = [f"<h3>{html.escape(split_label(key, split))} ({split['n_neurons']} neurons)</h3>"]
    rows = [
        ["mean over neurons", *(metrics[m]["mean"] for m, _ in columns)],
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
    if len(sessions) > 1:
        parts.append(
            _table(
                ["session (mean)", *(label for _, label in columns)],
                [[n, *(v.get(m) for m, _ in columns)] for n, v in sessions.items()],
            )
        )
    cell_types = split.get("cell_types")
    if cell_types:
        parts.append(
            _table(
                ["cell type (mean)", "neurons", *(label for _, label in columns)],
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


# ------------------------------------------------------------------------------------------------
# neurons: table, cards, MEIs


def _metric_columns(rows: Sequence[Mapping[str, Any]], summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(neurons.csv column, header) of every per-neuron metric shown, split by split."""
    order = {key: i for i, (key, _) in enumerate(COLUMNS)}
    labels = dict(COLUMNS)
    present = list(dict.fromkeys(k for row in rows for k in row))
    columns: list[tuple[str, str]] = []
    for key, _ in shown_splits(summary):
        if key == "test":
            continue
        metrics = [c.removeprefix(f"{key}/") for c in present if c.startswith(f"{key}/")]
        metrics = [m for m in metrics if "/" not in m and m not in TABLE_LEAVES_OUT]
        metrics.sort(key=lambda m: order.get(m, len(order)))
        short = "val" if key == "val" else key.removeprefix("test/")
        columns.extend((f"{key}/{m}", f"{short}: {labels.get(m, m)}") for m in metrics)
    return columns


def neuron_table(rows: Sequence[Mapping[str, Any]], summary: Mapping[str, Any], type_key: str | None) -> str:
    columns = _metric_columns(rows, summary)
    header = ["session", "neuron id", *([type_key] if type_key else []), *(label for _, label in columns)]
    head = "".join(f'<th scope="col">{html.escape(h)}</th>' for h in header)
    lines = []
    for row in rows:
        target = card.anchor(str(row["session"]), int(row["neuron_index"]))
        cells = [
            f'<td class="name">{html.escape(str(row["session"]))}</td>',
            f'<td class="name"><a href="#{target}">{html.escape(str(row["neuron_id"]))}</a></td>',
        ]
        if type_key:
            cells.append(f'<td class="text">{_number(row.get(type_key))}</td>')
        for column, _ in columns:
            value = row.get(column)
            cells.append(f"<td>{_number(value)}</td>")
        lines.append("<tr>" + "".join(cells) + "</tr>")
    return (
        '<p class="explain">Click a column to sort; click a neuron id for its card. Every column is in '
        'neurons.csv too.</p><div id="neuron-table"><table><thead><tr>'
        + head
        + "</tr></thead><tbody>"
        + "".join(lines)
        + "</tbody></table></div>"
    )


def _card_metrics(row: Mapping[str, Any], summary: Mapping[str, Any]) -> str:
    wanted = ("correlation", "baseline_correlation", "normalised_correlation", "feve", "ceiling_correlation")
    labels = dict(COLUMNS)
    splits = [(k, s) for k, s in shown_splits(summary) if k != "test"]
    metrics = [m for m in wanted if any(f"{k}/{m}" in row for k, _ in splits)]
    rows = [[split_label(k, s), *(row.get(f"{k}/{m}") for m in metrics)] for k, s in splits]
    return _table(["split", *(labels[m] for m in metrics)], rows)


def cards_html(
    rows: Sequence[Mapping[str, Any]],
    summary: Mapping[str, Any],
    data: Mapping[str, np.ndarray] | None,
    meis: Mapping[tuple[str, int], str] | None,
    type_key: str | None,
    characterised: Mapping[tuple[str, int], str] | None = None,
) -> str:
    """Every neuron's card (shown when its link is followed, or all with the check box)."""
    meta: dict[str, Any] = {}
    if data is not None and "meta" in data:
        import json

        meta = json.loads(str(data["meta"]))
    unit = meta.get("unit", "response")
    legend = (
        '<p class="legend explain"><span><i class="swatch" style="background:#000"></i>recorded'
        f"{' (trial mean)' if meta.get('split_key', '').startswith('test/') else ''}</span>"
        '<span><i class="swatch" style="background:#d62728"></i>predicted</span>'
        '<span><i class="swatch" style="background:#ddd;height:0.8em"></i>single trials (range)</span>'
        f"<span>traces: {html.escape(str(meta.get('split') or ''))}, "
        f"binned to {card.TRACE_POINTS} points</span></p>"
    )
    parts = [
        '<input type="checkbox" id="all-cards"> <label for="all-cards">show every card</label>',
        legend,
    ]
    others: dict[str, str] = {}
    for session in dict.fromkeys(str(row["session"]) for row in rows):
        if data is not None and f"{session}/x" in data:
            others[session] = "ro-" + card.anchor(session, 0)[2:]
            parts.append(
                card.readout_others(
                    meta.get("grid", [1, 1]), others[session], data[f"{session}/x"], data[f"{session}/y"]
                )
            )
    parts.append('<div class="cards">')
    for row in rows:
        session, index = str(row["session"]), int(row["neuron_index"])
        what = (
            f" · {html.escape(str(row.get(type_key)))}" if type_key and row.get(type_key) is not None else ""
        )
        parts.append(
            f'<section class="card" id="{card.anchor(session, index)}">'
            f"<h3>Neuron {html.escape(str(row['neuron_id']))} · session {html.escape(session)}{what}</h3>"
            '<p class="meta"><a href="#neurons">back to the table</a></p>'
            + _characterised_line((characterised or {}).get((session, index)))
            + _card_metrics(row, summary)
            + '<div class="card-plots">'
        )
        if data is not None and f"{session}/mean" in data:
            low = data.get(f"{session}/low")
            high = data.get(f"{session}/high")
            parts.append(
                "<div>"
                + card.trace_svg(
                    data[f"{session}/time"],
                    data[f"{session}/mean"][index],
                    data[f"{session}/prediction"][index],
                    None if low is None else low[index],
                    None if high is None else high[index],
                    unit,
                    meta.get("time_unit", "frames"),
                )
                + "</div>"
            )
        if data is not None and f"{session}/x" in data:
            sigma = data.get(f"{session}/sigma")
            true_x, true_y = data.get(f"{session}/true_x"), data.get(f"{session}/true_y")
            parts.append(
                '<div class="side">'
                + card.readout_svg(
                    meta.get("grid", [1, 1]),
                    float(data[f"{session}/x"][index]),
                    float(data[f"{session}/y"][index]),
                    None if sigma is None else float(sigma[index]),
                    others.get(session),
                    None if true_x is None else (float(true_x[index]), float(true_y[index])),
                )
                + '<p class="explain">readout centre (red), one sigma (circle)'
                + (", true centre (x)" if true_x is not None else "")
                + ", other neurons (grey)</p></div>"
            )
        mei = (meis or {}).get((session, index))
        if mei:
            parts.append(f'<div class="mei"><p class="explain">MEI (most exciting input)</p>{mei}</div>')
        parts.append("</div></section>")
    parts.append("</div>")
    return "".join(parts)


def _characterised_line(text: str | None) -> str:
    if not text:
        return ""
    return f'<p class="explain"><a href="#characterisation">Characterised</a>: {html.escape(text)}</p>'


def characterisation_html(view: Any, has_run: bool) -> str:
    """The run's characterisation (a `CharacterisationView`), or how to make one."""
    from openretina_cli.evaluation.characterisation_view import COMMAND, FOLDER

    if view is None:
        where = (
            f"with RUN this run's directory; it writes into RUN/{FOLDER}/ and this section then shows it"
            if has_run
            else "with RUN the run directory (this report has none)"
        )
        return (
            f'<p class="explain">Not characterised yet. Run <code>{html.escape(COMMAND)} RUN</code> '
            f"{html.escape(where)}: the model is shown the chirp, moving bars, flashes, gratings and "
            "dense noise, and each neuron gets its ON-OFF and transience indices, direction "
            "selectivity, receptive field and functional type.</p>"
        )
    brief = view.summary
    facts = [
        ["neurons", brief.get("neurons")],
        ["stimuli", ", ".join(brief.get("stimuli", []))],
        [
            "ON / OFF neurons (ON-OFF index beyond ±0.3)",
            f"{brief.get('on_cells')} / {brief.get('off_cells')}",
        ],
    ]
    selective = brief.get("direction_selective")
    if selective:
        label = f"direction selective (DSI ≥ {selective['dsi_at_least']}, shuffle p < {selective['p_below']})"
        facts.append([label, selective["count"]])
    types = brief.get("functional_types")
    if types:
        facts.append(["functional types", f"{types.get('n_types')} (chosen by {types.get('chosen_by')})"])
    for name, reason in (brief.get("skipped") or {}).items():
        facts.append([f"not shown: {name}", reason])
    parts = [
        f'<p class="explain">From {html.escape(view.source)}, written by <code>{html.escape(COMMAND)}</code> '
        "(its neurons.csv has every value); each neuron's card has a line of it.</p>",
        _table(["", "value"], facts),
    ]
    parts.extend(_image(path, caption) for path, caption in view.figures)
    return "\n".join(parts)


def mei_grid(
    rows: Sequence[Mapping[str, Any]], tiles: Mapping[tuple[str, int], str], type_key: str | None
) -> str:
    """Every MEI's spatial maps, grouped by cell type, each linking to the neuron's card."""
    groups: dict[str, list[str]] = {}
    for row in rows:
        key = (str(row["session"]), int(row["neuron_index"]))
        if key not in tiles:
            continue
        group = str(row.get(type_key)) if type_key else "all neurons"
        groups.setdefault(group, []).append(
            f'<a class="mei-tile" href="#{card.anchor(*key)}">{tiles[key]}<br>'
            f"{html.escape(key[0])} / {html.escape(str(row['neuron_id']))}</a>"
        )
    parts = []
    for group in sorted(groups, key=_natural):
        title = f"{type_key} {group}" if type_key else group
        parts.append(
            f"<h3>{html.escape(title)} ({len(groups[group])})</h3>"
            f'<div class="mei-grid">{"".join(groups[group])}</div>'
        )
    return "".join(parts)


def _natural(label: str) -> tuple[int, float | str]:
    try:
        return (0, float(label))
    except ValueError:
        return (1, label)


# ------------------------------------------------------------------------------------------------
# the page


def render(
    *,
    title: str,
    summary: Mapping[str, Any],
    figures: Sequence[tuple[Path, str]],
    notes: Sequence[str],
    config_text: str | None,
    versions: Mapping[str, str],
    files: Sequence[str],
    rows: Sequence[Mapping[str, Any]] = (),
    cards: Mapping[str, np.ndarray] | None = None,
    meis: Any = None,
    characterisation: Any = None,
    has_run: bool = False,
) -> str:
    """The whole page. `meis` (optional) is a `MeiViews` of the run's MEIs, `characterisation` a
    `CharacterisationView` of its characterisation (without one, the page says how to make it)."""
    type_key = summary.get("cell_type_key")
    sections = [
        ("glance", "At a glance"),
        ("scores", "Scores"),
        ("figures", "Figures"),
        ("neurons", "Neurons"),
    ]
    if meis is not None and meis.tiles:
        sections.append(("meis", "MEIs"))
    sections += [("characterisation", "Characterisation"), ("notes", "Notes"), ("config", "Run config")]
    nav = "".join(f'<a href="#{anchor}">{html.escape(text)}</a>' for anchor, text in sections)
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, '
        f'initial-scale=1"><title>{html.escape(title)}</title>',
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<nav>{nav}</nav>",
        f'<p class="meta">Model: {html.escape(str(summary.get("model", "")))}<br>Files: '
        + ", ".join(f'<a href="{html.escape(f)}">{html.escape(f)}</a>' for f in files)
        + "</p>",
        '<h2 id="glance">At a glance</h2>',
        warnings_html(summary),
        headline(summary),
        '<p class="explain">Validation clips are scored against single trials, test stimuli against the '
        "trial mean: the two are different measurements, so compare each with its own baseline and "
        "noise limit rather than with each other. CC_norm and FEVE correct for the trials' noise "
        "(1 = as good as the noise allows).</p>",
        glossary_html(),
        facts_html(summary),
        '<h2 id="scores">Scores</h2>',
        '<p class="explain">Means and medians over neurons; neurons whose score is undefined (constant '
        "responses) are left out of a mean and counted in summary.json. The FEV filter applies to its own "
        "row only, never to neurons.csv.</p>",
    ]
    for key, split in shown_splits(summary):
        parts.append(_split_section(key, split))
    parts.append('<h2 id="figures">Figures</h2>')
    parts.extend(_image(path, caption) for path, caption in figures)
    parts.append(f'<h2 id="neurons">Neurons ({len(rows)})</h2>')
    if rows:
        parts.append(neuron_table(rows, summary, type_key))
        parts.append(
            cards_html(
                rows,
                summary,
                cards,
                None if meis is None else meis.cards,
                type_key,
                None if characterisation is None else characterisation.lines,
            )
        )
    if meis is not None and meis.tiles:
        parts.append('<h2 id="meis">MEIs by cell type</h2>')
        parts.append(
            f'<p class="explain">From {html.escape(meis.source)}: each neuron\'s most exciting input at its '
            "peak frame, one map per channel (blue negative, red positive, in the model's normalised "
            "stimulus units); click one for the neuron's card.</p>"
        )
        parts.append(mei_grid(rows, meis.tiles, type_key))
    parts.append('<h2 id="characterisation">Characterisation</h2>')
    parts.append(characterisation_html(characterisation, has_run))
    parts.append('<h2 id="notes">Notes</h2>')
    if notes:
        parts.append(
            '<ul class="notes">' + "".join(f"<li>{html.escape(note)}</li>" for note in notes) + "</ul>"
        )
    else:
        parts.append("<p>None.</p>")
    parts.append('<h2 id="config">Run config</h2>')
    if config_text:
        lines = config_text.count("\n") + 1
        parts.append(
            f"<details><summary>The run's config ({lines} lines)</summary>"
            f"<pre>{html.escape(config_text)}</pre></details>"
        )
    parts.append("<details><summary>Package versions</summary>")
    parts.append(_table(["package", "version"], list(versions.items())))
    parts.append("</details>")
    parts.append(f"<script>{SORT_SCRIPT}</script>")
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p) + "\n"
