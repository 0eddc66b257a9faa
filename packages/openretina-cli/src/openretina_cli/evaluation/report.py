"""Write an evaluation's outputs: ``neurons.csv``, ``summary.json``, ``figures/*.png`` and
``report.html``. They are built in a staging folder and moved into place only when complete, so an
interrupted evaluation never leaves a half-written report; only these files are replaced, never
anything else in the output folder (see `openretina_cli.output_folder`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from openretina_cli.evaluation.cards import CARDS_FILE
from openretina_cli.evaluation.characterisation_view import FOLDER as CHARACTERISATION_FOLDER
from openretina_cli.evaluation.per_neuron import Evaluation
from openretina_cli.evaluation.run_facts import run_facts
from openretina_cli.evaluation.tables import (
    NEURONS_CSV,
    SUMMARY_JSON,
    neuron_rows,
    read_neurons_csv,
    summarise_evaluation,
    write_neurons_csv,
    write_summary,
)
from openretina_cli.output_folder import OutputFolder, plan, write
from openretina_cli.versions import versions

if TYPE_CHECKING:
    from openretina_cli.evaluation.figure_jobs import FigureJob

REPORT_HTML = "report.html"
FIGURES = "figures"
PAGE_JSON = "page.json"  # what the page shows besides the tables (title, figure captions, config)
MEI_FOLDER = "mei"  # a run's `openretina mei` outputs, shown on its report when present
_FIGURES = "openretina_cli.evaluation.figures:"  # where the report's figure functions live
REPORT_ENTRIES = (NEURONS_CSV, SUMMARY_JSON, REPORT_HTML, FIGURES, PAGE_JSON, CARDS_FILE)


@dataclass
class ReportInputs:
    """What a report shows besides the evaluation itself."""

    title: str
    model_path: str
    run_dir: Path | None = None
    config_text: str | None = None
    var_ratio_cutoff: float = 0.15
    cell_type_key: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def plan_report(out: str | None, default: Path | None, inputs: list[tuple[str, Path | None]]) -> OutputFolder:
    """The checked output folder of ``openretina eval`` (before any work: see `output_folder.plan`)."""
    return plan(out, default, "eval", REPORT_ENTRIES, inputs)


def write_report(
    out: OutputFolder | Path,
    evaluation: Evaluation,
    dataset: Any,
    model: Any,
    inputs: ReportInputs,
    figures: bool = True,
    early: EarlyFigures | None = None,
) -> dict[str, Any]:
    """Write every output into ``out`` (a run's own ``eval/`` folder when given as a path); return the
    summary. Only the report's own files are replaced. `early`: the figures started
    earlier (`EarlyFigures`)."""
    folder = out if isinstance(out, OutputFolder) else plan_report(None, Path(out), [])
    with write(folder) as staging:
        rows, notes = neuron_rows(evaluation, dataset)
        write_neurons_csv(rows, staging / NEURONS_CSV)
        summary = summarise_evaluation(
            evaluation, dataset, var_ratio_cutoff=inputs.var_ratio_cutoff, cell_types=inputs.cell_type_key
        )
        drawn: list[tuple[Path, str]] = []
        info: Mapping[str, Any] = getattr(model, "data_info", None) or dataset.data_info.to_dict()
        geometry: dict[str, Any] = {}
        if figures:
            from openretina_cli.evaluation.model_geometry import readout_geometries

            # the figure's and the cards' readout places (one gradient pass)
            geometry = early.geometry if early is not None else readout_geometries(model)
            _write_cards(staging, evaluation, dataset, model, info, geometry)  # while figures are drawn
            drawn = draw_figures(
                staging / FIGURES, evaluation, dataset, model, inputs, notes, geometry, early=early
            )
        summary = {
            "model": inputs.model_path,
            "run_dir": None if inputs.run_dir is None else str(inputs.run_dir),
            **inputs.extra,
            **summary,
            "run": run_facts(inputs.run_dir, model, dataset),
            "notes": notes,
            "versions": versions(),
        }
        write_summary(summary, staging / SUMMARY_JSON)
        if figures:
            page = {
                "title": inputs.title,
                "figures": [[f"{FIGURES}/{path.name}", caption] for path, caption in drawn],
                "config_text": inputs.config_text,
            }
            (staging / PAGE_JSON).write_text(json.dumps(page, indent=1) + "\n")
            mei_dir = None if inputs.run_dir is None else Path(inputs.run_dir) / MEI_FOLDER
            characterised = None if inputs.run_dir is None else Path(inputs.run_dir) / CHARACTERISATION_FOLDER
            page_html = build_page(staging, mei_dir, characterised)
            (staging / REPORT_HTML).write_text(page_html, encoding="utf-8")
    return summary


def _write_cards(
    staging: Path, evaluation: Evaluation, dataset: Any, model: Any, info: Mapping[str, Any], geometry: Any
) -> None:
    """Every neuron's card data (`cards.card_data`), with the data's channel names and frame rate."""
    from openretina_cli.evaluation import cards
    from openretina_cli.evaluation.figure_data import channel_names, response_unit

    ids = {name: np.asarray(s.neuron_metadata["neuron_ids"]) for name, s in dataset.sessions.items()}
    unit = response_unit(dict(info), evaluation.truth is not None)
    data = cards.card_data(evaluation, model, info.get("frame_rate_hz"), unit, ids, geometry)
    meta = json.loads(str(data["meta"]))
    meta["channels"] = channel_names(int(model.in_shape[0]), dict(info))
    meta["frame_rate_hz"] = info.get("frame_rate_hz")
    data["meta"] = np.array(json.dumps(meta))
    cards.save_cards(data, staging / cards.CARDS_FILE)


def build_page(folder: Path, mei_dir: Path | None = None, characterisation_dir: Path | None = None) -> str:
    """The report page from the files of an evaluation folder (summary.json, neurons.csv,
    page.json, cards.npz, figures/) and, when they exist, the run's ``mei/`` and
    ``characterisation/`` folders."""
    from openretina_cli.evaluation import cards
    from openretina_cli.evaluation.characterisation_view import load_characterisation_view
    from openretina_cli.evaluation.html import render
    from openretina_cli.evaluation.mei_views import load_mei_views

    summary = json.loads((folder / SUMMARY_JSON).read_text())
    page = json.loads((folder / PAGE_JSON).read_text())
    rows = read_neurons_csv(folder / NEURONS_CSV)
    data = cards.load_cards(folder / cards.CARDS_FILE)
    meta = json.loads(str(data["meta"])) if data is not None and "meta" in data else {}
    meis = None
    if mei_dir is not None and (mei_dir / "meis.json").is_file():
        meis = load_mei_views(mei_dir, meta.get("channels"), meta.get("frame_rate_hz"))
    characterised = None
    if characterisation_dir is not None:
        characterised = load_characterisation_view(characterisation_dir)
    figures = [(folder / name, caption) for name, caption in page["figures"] if (folder / name).is_file()]
    files = [NEURONS_CSV, SUMMARY_JSON, *(name for name, _ in page["figures"])]
    return render(
        title=page["title"],
        summary=summary,
        figures=figures,
        notes=summary.get("notes", []),
        config_text=page.get("config_text"),
        versions=summary.get("versions", {}),
        files=files,
        rows=rows,
        cards=data,
        meis=meis,
        characterisation=characterised,
        has_run=bool(summary.get("run_dir")),
    )


def refresh_report(eval_dir: Path, mei_dir: Path | None) -> Path | None:
    """Rewrite ``eval_dir/report.html`` from its files (say, after ``openretina mei`` or
    ``openretina characterise`` on the run: the run's characterisation is the ``characterisation/``
    folder beside ``eval_dir``); None when the folder holds no report written by this version."""
    eval_dir = Path(eval_dir)
    if not (eval_dir / PAGE_JSON).is_file() or not (eval_dir / SUMMARY_JSON).is_file():
        return None
    text = build_page(eval_dir, mei_dir, eval_dir.parent / CHARACTERISATION_FOLDER)
    temporary = eval_dir / f".{REPORT_HTML}.{os.getpid()}.tmp"
    try:
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(eval_dir / REPORT_HTML)
    finally:
        temporary.unlink(missing_ok=True)
    return eval_dir / REPORT_HTML


class EarlyFigures:
    """Every figure that does not show the baseline, drawn into a temporary folder by two forked
    helpers as soon as the model is evaluated, while the run goes on (fitting the baseline on one
    thread, exporting); `draw_figures` takes them into the report. Use as a context manager (or
    call `close`), so that the helpers and the folder never outlive the run."""

    def __init__(
        self,
        evaluation: Evaluation,
        model: Any,
        dataset: Any,
        run_dir: Path | None,
        cell_type_key: str | None,
        best_checkpoint: str | None = None,
        parallel: bool | None = None,
    ) -> None:
        from openretina_cli.evaluation.figure_jobs import Background
        from openretina_cli.evaluation.model_geometry import readout_geometries
        from openretina_cli.evaluation.run_facts import kept_epoch

        # torch work here, before the fork: the helpers only draw
        self.geometry = readout_geometries(model)
        self.folder = Path(tempfile.mkdtemp(prefix="openretina-figures-"))
        jobs = _evaluation_jobs(self.folder, evaluation, dataset, model, cell_type_key)
        jobs += _model_jobs(
            self.folder,
            model,
            dataset,
            run_dir,
            cell_type_key,
            evaluation.truth,
            self.geometry,
            None,
            kept_epoch(run_dir, best_checkpoint),
        )
        jobs = [(caption, job) for caption, job in jobs if not job.needs_baseline]
        self.captions = [caption for caption, _ in jobs]
        self.background = Background([job for _, job in jobs], parallel)
        self.batches = [(self.captions, self.background)]
        self.cell_type_key = cell_type_key

    def baseline_fitted(self, evaluation: Evaluation, dataset: Any, model: Any) -> None:
        """Start the figures of the baseline's scores too, where a figure zygote draws them (see
        `figure_zygote`): while the run exports the model and writes its tables. Elsewhere they are
        drawn with the rest of the report, as without a baseline."""
        from openretina_cli.evaluation import figure_zygote
        from openretina_cli.evaluation.figure_jobs import Background

        if figure_zygote.current() is None:
            return
        jobs = _evaluation_jobs(self.folder, evaluation, dataset, model, self.cell_type_key)
        jobs = [(caption, job) for caption, job in jobs if job.needs_baseline]
        if jobs:
            captions = [caption for caption, _ in jobs]
            self.batches.append((captions, Background([job for _, job in jobs])))
            self.captions = self.captions + captions

    def take(self, directory: Path) -> dict[str, tuple[Path | None, list[str]]]:
        """Per caption, the figure (moved into `directory`) and its notes."""
        taken: dict[str, tuple[Path | None, list[str]]] = {}
        for captions, background in self.batches:
            for caption, (path, notes) in zip(captions, background.results(), strict=True):
                if path is not None:
                    path = Path(shutil.move(path, directory / path.name))
                taken[caption] = (path, notes)
        return taken

    def close(self) -> None:
        for _, background in self.batches:
            background.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> EarlyFigures:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def draw_figures(
    directory: Path,
    evaluation: Evaluation,
    dataset: Any,
    model: Any,
    inputs: ReportInputs,
    notes: list[str],
    geometry: Mapping[str, Any] | None = None,
    parallel: bool | None = None,
    early: EarlyFigures | None = None,
) -> list[tuple[Path, str]]:
    """Every figure that applies, with its caption, in reading order (`geometry`: the readouts'
    `model_geometry.readout_geometries`, measured here when not given; `parallel`: see
    `figure_jobs.draw_all`; `early`: the figures drawn already)."""
    from openretina_cli.evaluation import figure_zygote
    from openretina_cli.evaluation.figure_jobs import draw_all
    from openretina_cli.evaluation.model_geometry import readout_geometries

    if figure_zygote.current() is None:  # drawn here and by forked copies: import matplotlib once
        from openretina_cli.evaluation import figures  # noqa: F401
    directory.mkdir(parents=True, exist_ok=True)
    jobs = _evaluation_jobs(directory, evaluation, dataset, model, inputs.cell_type_key)
    facts = run_facts(inputs.run_dir, None, None) if inputs.run_dir is not None and early is None else {}
    geometry = readout_geometries(model) if geometry is None and early is None else geometry or {}
    jobs += _model_jobs(
        directory,
        model,
        dataset,
        inputs.run_dir,
        inputs.cell_type_key,
        evaluation.truth,
        geometry,
        None,
        facts.get("best_epoch"),
    )
    drawn_early = {} if early is None else set(early.captions)
    left = [(caption, job) for caption, job in jobs if caption not in drawn_early]
    results = dict(
        zip([c for c, _ in left], draw_all([job for _, job in left], parallel, extra_cost=0.5), strict=True)
    )
    if early is not None:
        results.update(early.take(directory))
    drawn: list[tuple[Path, str]] = []
    for caption, _ in jobs:
        path, job_notes = results[caption]
        notes.extend(job_notes)
        if path is not None:
            drawn.append((path, caption))
    return drawn


def _evaluation_jobs(
    directory: Path, evaluation: Evaluation, dataset: Any, model: Any, key: str | None
) -> list[tuple[str, FigureJob]]:
    """(caption, job) of the figures of the evaluation's scores and traces, in reading order; costs
    are relative drawing times (CPU s / 0.2, tutorial, tools/bench/figures_cpu.py, 7 December).
    Every job is plain data (`FigureCall`): the scores without the traces, and only the traces shown."""
    from openretina_cli.evaluation import figure_data as data
    from openretina_cli.evaluation.figure_jobs import FigureCall, FigureJob

    info: Mapping[str, Any] = getattr(model, "data_info", None) or dataset.data_info.to_dict()
    frame_rate = info.get("frame_rate_hz")
    sessions = sorted(dataset.sessions)
    labels = data.labels_by_session(dataset, key, sessions)
    ids = {name: dataset.sessions[name].neuron_metadata["neuron_ids"] for name in sessions}
    unit = data.response_unit(dict(info), evaluation.truth is not None)
    scores = data.scores_only(evaluation)
    jobs: list[tuple[str, FigureJob]] = [
        (
            "Per-neuron correlation per split and session. Validation clips are scored against single "
            "trials, test stimuli against the trial mean: each panel has its own axis.",
            FigureJob(
                FigureCall(
                    _FIGURES + "correlation_distributions",
                    (scores, directory / "correlation_distributions.png"),
                )
            ),
        )
    ]
    if labels is not None and key is not None:
        jobs.append(
            (
                f"Per-neuron correlation by cell type ({key})",
                FigureJob(
                    FigureCall(
                        _FIGURES + "correlation_by_cell_type",
                        (scores, labels, key, directory / "correlation_by_cell_type.png"),
                    ),
                    cost=1.1,
                ),
            )
        )
    jobs += [
        (
            "Model vs the linear-nonlinear baseline per neuron: above the diagonal the model predicts "
            "better.",
            FigureJob(
                FigureCall(_FIGURES + "model_vs_baseline", (scores, directory / "model_vs_baseline.png")),
                cost=1.4,
                needs_baseline=True,
            ),
        ),
        (
            "Each neuron's correlation with the trial mean against CC_max, the correlation the trials' noise "
            "allows (estimated from their signal power). On the diagonal CC_norm = 1; CC_max is an estimate, "
            "so points can lie above it by chance.",
            FigureJob(
                FigureCall(
                    _FIGURES + "correlation_vs_max",
                    (scores, directory / "correlation_vs_max.png"),
                    notes=True,
                ),
                cost=1.0 if data.splits_with_trials(evaluation) else 0.0,  # else it only writes a note
            ),
        ),
    ]
    for split in evaluation.test_splits:
        jobs.append(
            (
                f"Best, median and worst neuron on test stimulus {split.name}",
                FigureJob(
                    FigureCall(
                        _FIGURES + "draw_example_traces",
                        (
                            data.trace_data(split),
                            ids,
                            frame_rate,
                            evaluation.warmup_frames,
                            directory / _trace_file(split.name),
                            unit,
                        ),
                    ),
                    cost=1.1,
                ),
            )
        )
    return jobs


def _model_jobs(
    directory: Path,
    model: Any,
    dataset: Any,
    run_dir: Path | None,
    key: str | None,
    truth: Any,
    geometry: Mapping[str, Any],
    kernel: Any,
    best_epoch: int | None,
) -> list[tuple[str, FigureJob]]:
    """(caption, job) of the figures of the model and its learning curves, in reading order. The
    torch work (the first layer's kernel, unless `kernel` gives it) runs here: every job is plain
    data (`FigureCall`)."""
    from openretina_cli.evaluation import figure_data as data
    from openretina_cli.evaluation.figure_jobs import FigureCall, FigureJob
    from openretina_cli.evaluation.model_geometry import first_layer, true_centres

    info: Mapping[str, Any] = getattr(model, "data_info", None) or dataset.data_info.to_dict()
    sessions = sorted(dataset.sessions)
    labels = (
        None if key is None else {n: np.asarray(dataset.sessions[n].neuron_metadata[key]) for n in sessions}
    )
    ids = {name: dataset.sessions[name].neuron_metadata["neuron_ids"] for name in sessions}
    view = data.readout_view(model, labels)
    centres = {name: true_centres(truth, name, ids[name]) for name in view.sessions}
    layer, found = first_layer(model)
    return [
        (
            "Learning curves; the dotted line marks the epoch whose weights were kept. The validation "
            "correlation is against single trials.",
            FigureJob(
                FigureCall(
                    _FIGURES + "learning_curves",
                    (run_dir, directory / "learning_curves.png"),
                    {"best_epoch": best_epoch},
                    notes=True,
                ),
                cost=0.7,
            ),
        ),
        (
            "Readout positions per session on one shared grid: dots are centres, circles one sigma of the "
            "readout's Gaussian" + ("; crosses the true receptive-field centres." if truth else "."),
            FigureJob(
                FigureCall(
                    _FIGURES + "draw_readout_positions",
                    (view, labels, key, directory / "readout_positions.png"),
                    {"centres": centres, "geometry": dict(geometry)},
                    notes=True,
                ),
                cost=1.5,
            ),
        ),
        (
            "First core layer: spatial kernels per input channel, and each kernel's temporal profile "
            "(one panel per output channel, one line per input channel).",
            FigureJob(
                FigureCall(
                    _FIGURES + "draw_first_layer_filters",
                    (layer, found if kernel is None else kernel, info.get("frame_rate_hz"), dict(info)),
                    {"path": directory / "core_filters.png"},
                    notes=True,
                ),
                cost=3.0,
            ),
        ),
    ]


def _trace_file(stimulus: str) -> str:
    return "traces_" + "".join(c if c.isalnum() or c in "-_." else "_" for c in stimulus) + ".png"
