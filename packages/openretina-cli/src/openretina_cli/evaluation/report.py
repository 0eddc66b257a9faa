"""Write an evaluation's outputs: ``neurons.csv``, ``summary.json``, ``figures/*.png`` and
``report.html``. They are built in a staging folder and moved into place only when complete, so an
interrupted evaluation never leaves a half-written report; only these files are replaced, never
anything else in the output folder (see `openretina_cli.output_folder`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openretina_cli.evaluation.per_neuron import Evaluation
from openretina_cli.evaluation.tables import (
    NEURONS_CSV,
    SUMMARY_JSON,
    neuron_rows,
    summarise_evaluation,
    write_neurons_csv,
    write_summary,
)
from openretina_cli.output_folder import OutputFolder, plan, write
from openretina_cli.versions import versions

REPORT_HTML = "report.html"
FIGURES = "figures"
REPORT_ENTRIES = (NEURONS_CSV, SUMMARY_JSON, REPORT_HTML, FIGURES)


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
) -> dict[str, Any]:
    """Write every output into ``out`` (a run's own ``eval/`` folder when given as a path); return the
    summary. Only the report's own files are replaced."""
    folder = out if isinstance(out, OutputFolder) else plan_report(None, Path(out), [])
    with write(folder) as staging:
        rows, notes = neuron_rows(evaluation, dataset)
        write_neurons_csv(rows, staging / NEURONS_CSV)
        summary = summarise_evaluation(
            evaluation, dataset, var_ratio_cutoff=inputs.var_ratio_cutoff, cell_types=inputs.cell_type_key
        )
        drawn: list[tuple[Path, str]] = []
        if figures:
            drawn = draw_figures(staging / FIGURES, evaluation, dataset, model, inputs, notes)
        summary = {
            "model": inputs.model_path,
            "run_dir": None if inputs.run_dir is None else str(inputs.run_dir),
            **inputs.extra,
            **summary,
            "notes": notes,
            "versions": versions(),
        }
        write_summary(summary, staging / SUMMARY_JSON)
        if figures:
            from openretina_cli.evaluation.html import render

            files = [NEURONS_CSV, SUMMARY_JSON, *(f"{FIGURES}/{path.name}" for path, _ in drawn)]
            page = render(
                title=inputs.title,
                summary=summary,
                figures=drawn,
                notes=notes,
                config_text=inputs.config_text,
                versions=summary["versions"],
                files=files,
            )
            (staging / REPORT_HTML).write_text(page, encoding="utf-8")
    return summary


def draw_figures(
    directory: Path,
    evaluation: Evaluation,
    dataset: Any,
    model: Any,
    inputs: ReportInputs,
    notes: list[str],
) -> list[tuple[Path, str]]:
    """Every figure that applies, with its caption, in reading order."""
    from openretina_cli.evaluation import figures as fig

    directory.mkdir(parents=True, exist_ok=True)
    info: Mapping[str, Any] = getattr(model, "data_info", None) or dataset.data_info.to_dict()
    frame_rate = info.get("frame_rate_hz")
    sessions = sorted(dataset.sessions)
    key = inputs.cell_type_key
    labels = fig.labels_by_session(dataset, key, sessions)
    drawn: list[tuple[Path, str]] = []

    def add(path: Path | None, caption: str) -> None:
        if path is not None:
            drawn.append((path, caption))

    add(
        fig.correlation_distributions(evaluation, directory / "correlation_distributions.png"),
        "Per-neuron correlation per split and session",
    )
    if labels is not None and key is not None:
        add(
            fig.correlation_by_cell_type(evaluation, labels, key, directory / "correlation_by_cell_type.png"),
            f"Per-neuron correlation by cell type ({key})",
        )
    add(
        fig.correlation_vs_oracle(evaluation, directory / "correlation_vs_oracle.png", notes),
        "Model vs oracle: points on the diagonal are at the repeat-to-repeat noise ceiling",
    )
    ids = {name: dataset.sessions[name].neuron_metadata["neuron_ids"] for name in sessions}
    for split in evaluation.test_splits:
        add(
            fig.example_traces(
                split, ids, frame_rate, evaluation.warmup_frames, directory / _trace_file(split.name)
            ),
            f"Best, median and worst neuron on test stimulus {split.name}",
        )
    add(fig.learning_curves(inputs.run_dir, directory / "learning_curves.png", notes), "Learning curves")
    add(
        fig.readout_positions(model, labels, key, directory / "readout_positions.png", notes),
        "Readout positions per session",
    )
    add(
        fig.first_layer_filters(model, frame_rate, dict(info), directory / "core_filters.png", notes),
        "First core layer: spatial and temporal filters per input channel",
    )
    return drawn


def _trace_file(stimulus: str) -> str:
    return "traces_" + "".join(c if c.isalnum() or c in "-_." else "_" for c in stimulus) + ".png"
