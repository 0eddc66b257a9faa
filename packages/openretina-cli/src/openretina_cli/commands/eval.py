"""``openretina eval MODEL``: per-neuron evaluation of a trained model, with figures and a report.

By default the model is evaluated on the data it was trained on (the run's saved ``config.yaml``,
with any ``key=value`` overrides applied); ``--config-name`` composes another outer config
instead. Every check (the model, the config, the data, the splits, the fit between model and
data) runs before anything is written.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from openretina_cli.config import model_source
from openretina_cli.config.devices import check_device
from openretina_cli.errors import ConfigError, did_you_mean
from openretina_cli.evaluation.report import plan_report
from openretina_cli.output_folder import OutputFolder

EVAL_FOLDER = "eval"
SPLIT_ALL = "all"


def add_parser(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser(
        "eval",
        help="evaluate a trained model per neuron: neurons.csv, summary.json, figures and report.html",
        description=(
            "Evaluate MODEL (a run directory, its model/ folder, or any model load_model accepts) on the "
            "data it was trained on, or on another dataset config (--config-name plus Hydra overrides). "
            "Writes neurons.csv, summary.json, figures/ and report.html into <run>/eval/ (or --out)."
        ),
    )
    evaluate.add_argument("model", metavar="MODEL", help="run directory, model folder, checkpoint or name")
    evaluate.add_argument(
        "--split",
        action="append",
        default=None,
        metavar="SPLIT",
        help="val (validation clips), test (every test stimulus), a test stimulus by name, or all "
        "(default); repeatable",
    )
    evaluate.add_argument("--out", default=None, help="output directory (default: <run>/eval)")
    evaluate.add_argument(
        "--config-name", default=None, help="evaluate on this outer config's data instead of the run's"
    )
    evaluate.add_argument("--config-path", default=None, help="your own config directory (optional)")
    evaluate.add_argument(
        "--var-ratio-cutoff",
        type=float,
        default=0.15,
        help="summary.json's 'filtered' block keeps neurons with FEV >= this (default 0.15, as 1.x); "
        "neurons.csv always has every neuron",
    )
    evaluate.add_argument(
        "--cell-type-key",
        default=None,
        help="per-neuron metadata field holding cell types (default: the first of cell_type, celltypes, "
        "group_assignment, ... that the data has)",
    )
    evaluate.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    evaluate.add_argument("--no-figures", action="store_true", help="write the tables only")
    evaluate.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip the linear-nonlinear baseline fitted on the training frames and scored beside the model",
    )
    evaluate.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="Hydra overrides (key=value)")


def run(parsed: argparse.Namespace) -> int:
    from openretina_cli.errors import reporting_errors

    with reporting_errors():
        _check_options(parsed)
        source = model_source.resolve(parsed.model)
        plan_report(parsed.out, source.default_output(EVAL_FOLDER), source.inputs())  # before the config
        cfg = eval_config(source, parsed.config_name, parsed.overrides, parsed.config_path)
        out = plan_report(parsed.out, source.default_output(EVAL_FOLDER), source.inputs(cfg))
        model = model_source.load(source, device=parsed.device)
        summary = evaluate_and_report(model, cfg, source, out, parsed)
    _print(summary, out.path, figures=not parsed.no_figures)
    return 0


def _check_options(parsed: argparse.Namespace) -> None:
    if not 0.0 <= parsed.var_ratio_cutoff <= 1.0:
        raise ConfigError(
            f"--var-ratio-cutoff={parsed.var_ratio_cutoff} must lie between 0 and 1 (1.x uses 0.15)."
        )
    check_device(parsed.device)


def eval_config(
    source: model_source.ModelSource,
    config_name: str | None,
    overrides: Sequence[str],
    config_path: str | None = None,
) -> Any:
    """The config whose data the model is evaluated on (see the module docstring)."""
    import yaml
    from omegaconf import OmegaConf

    if config_name:
        from openretina_cli.config.compose import compose_config

        return compose_config(config_name, list(overrides), config_path=config_path)
    run_config = source.run_config
    if run_config is None:
        raise ConfigError(
            f"MODEL {source.argument} has no run config ({model_source.RUN_CONFIG}), so the data it was "
            "trained on is unknown. Pass --config-name NAME and the data's overrides, e.g. "
            "--config-name hdf5_core_readout paths.data_dir=DIR."
        )
    cfg, cwd = _saved_config(run_config)
    OmegaConf.set_struct(cfg, True)
    for override in overrides:
        key, eq, value = override.partition("=")
        if not eq or not key or key.startswith(("+", "~")):
            raise ConfigError(
                f"Override {override!r}: on a run's saved config only key=value overrides of existing keys "
                "work. Use --config-name NAME for Hydra's full override syntax."
            )
        if OmegaConf.select(cfg, key, default=_MISSING, throw_on_resolution_failure=False) is _MISSING:
            parent, _, leaf = key.rpartition(".")
            node = OmegaConf.select(cfg, parent) if parent else cfg
            keys = list(node.keys()) if hasattr(node, "keys") else []
            hint = did_you_mean(leaf, keys, f"{parent}." if parent else "")
            raise ConfigError(
                f"Unknown config key '{key}' in the run's config.{hint} "
                f"Keys there: {', '.join(str(k) for k in keys)}."
            )
        OmegaConf.update(cfg, key, yaml.safe_load(value))
    if overrides:
        from openretina_cli.config.schema import validate

        validate(cfg)  # the types `train` checks: `dataloader.batch_size=lots` is one message
    data_dir = OmegaConf.select(cfg, "paths.data_dir", throw_on_resolution_failure=False)
    if cwd is not None and isinstance(data_dir, str) and not Path(data_dir).expanduser().is_absolute():
        cfg.paths.data_dir = str(Path(cwd) / data_dir)  # relative to where the run was started
    return cfg


def _saved_config(run_config: Path) -> tuple[Any, str | None]:
    """The run's composed config before interpolation (Hydra's ``.hydra/config.yaml``), so that an
    override such as ``paths.data_dir=DIR`` reaches every key that refers to it, and the directory
    the run was started from; else the resolved ``config.yaml`` the run wrote."""
    from omegaconf import OmegaConf

    hydra_dir = run_config.parent / ".hydra"
    if not (hydra_dir / "config.yaml").is_file():
        return OmegaConf.load(run_config), None
    cfg = OmegaConf.load(hydra_dir / "config.yaml")
    if "paths" in cfg and "output_dir" in cfg.paths:
        cfg.paths.output_dir = str(run_config.parent)  # `${hydra:...}` cannot resolve outside a run
    cwd = None
    if (hydra_dir / "hydra.yaml").is_file():
        cwd = OmegaConf.select(OmegaConf.load(hydra_dir / "hydra.yaml"), "hydra.runtime.cwd")
    return cfg, None if cwd is None else str(cwd)


_MISSING = object()


def evaluate_and_report(
    model: Any, cfg: Any, source: model_source.ModelSource, out: OutputFolder, parsed: argparse.Namespace
) -> dict[str, Any]:
    from openretina_data.batching import ValidationBatches

    from openretina_cli.config.data import EpochBatches, build_splits, load_checked_dataset
    from openretina_cli.config.frame_rate import rescale_to_frame_rate
    from openretina_cli.config.model import check_compatible
    from openretina_cli.evaluation.per_neuron import evaluate
    from openretina_cli.evaluation.predict import load_ground_truth
    from openretina_cli.evaluation.report import ReportInputs, write_report
    from openretina_cli.evaluation.tables import cell_type_key

    checked = load_checked_dataset(cfg)
    dataset = checked.dataset
    # The frame counts as training used them (rescaled to the data's frame rate, as `train` does).
    cfg = rescale_to_frame_rate(cfg, dataset.data_info.frame_rate_hz).cfg
    check_compatible(model, dataset, f"MODEL {source.argument}", require_sessions=True)
    stimuli = sorted({name for session in dataset.sessions.values() for name in session.tests})
    want_validation, test_stimuli = choose_splits(parsed.split, stimuli)
    validation = None
    splits = build_splits(cfg, dataset) if want_validation or not parsed.no_baseline else None
    if want_validation:
        n_clips = sum(len(split.val_starts()) for split in splits.sessions.values())
        if n_clips == 0:
            raise ConfigError(
                "The validation split is empty (no validation clips: dataloader.num_val_clips=0?). "
                "Evaluate the test split with --split test, or set dataloader.num_val_clips."
            )
        validation = EpochBatches(ValidationBatches(dataset, splits, int(cfg.dataloader.batch_size)))
    truth = load_ground_truth(cfg.data_io.get("data_dir"))
    what = ["validation clips"] if validation is not None else []
    what += [f"test stimulus {name}" for name in test_stimuli]
    neurons = sum(dataset.n_neurons.values())
    print(
        f"Evaluating on {len(dataset.sessions)} sessions ({neurons} neurons): {', '.join(what)}", flush=True
    )
    evaluation = evaluate(model, dataset, validation, parsed.device, truth, test_stimuli)
    baseline = None
    if not parsed.no_baseline:
        from openretina_cli.evaluation.baseline import evaluate_baseline

        print("Fitting the linear-nonlinear baseline on the training frames", flush=True)
        baseline = evaluate_baseline(evaluation, dataset, splits, truth)
    key = cell_type_key(dataset, parsed.cell_type_key)
    if parsed.cell_type_key and key is None:
        fields = sorted(set.intersection(*(set(s.neuron_metadata) for s in dataset.sessions.values())))
        raise ConfigError(
            f"--cell-type-key={parsed.cell_type_key}: no such per-neuron field in this data."
            f"{did_you_mean(parsed.cell_type_key, fields)} Fields: {', '.join(fields)}."
        )
    from omegaconf import OmegaConf

    inputs = ReportInputs(
        title=f"Evaluation of {source.argument}",
        model_path=source.model_path,
        run_dir=source.run_dir,
        config_text=OmegaConf.to_yaml(cfg),
        var_ratio_cutoff=float(parsed.var_ratio_cutoff),
        cell_type_key=key,
        extra={
            "data": {"config_name": parsed.config_name, "overrides": list(parsed.overrides)},
            "splits_evaluated": [split.key for split in evaluation.splits],
            "dataset_notes": [*dataset.notes],
            "sessions_not_in_data": sorted(set(model.n_neurons) - set(dataset.sessions)),
            **({} if baseline is None else {"baseline": baseline}),
        },
    )
    print("Writing the tables" + (" and drawing the figures" if not parsed.no_figures else ""), flush=True)
    return write_report(out, evaluation, dataset, model, inputs, figures=not parsed.no_figures)


def choose_splits(requested: Sequence[str] | None, stimuli: Sequence[str]) -> tuple[bool, list[str]]:
    """(evaluate the validation clips?, test stimuli to evaluate) from the --split values."""
    names = [
        part.strip() for value in (requested or [SPLIT_ALL]) for part in value.split(",") if part.strip()
    ]
    validation = False
    chosen: list[str] = []
    for name in names:
        if name == SPLIT_ALL:
            validation = True
            chosen.extend(stimuli)
        elif name in ("val", "validation"):
            validation = True
        elif name == "test":
            if not stimuli:
                raise ConfigError(
                    "The test split is empty: this data has no test stimuli (data_io.test_names?). "
                    "Evaluate --split val, or name the test stimuli in the data config."
                )
            chosen.extend(stimuli)
        elif name.removeprefix("test/") in stimuli:
            chosen.append(name.removeprefix("test/"))
        else:
            valid = ["all", "val", "test", *stimuli]
            raise ConfigError(
                f"Unknown split {name!r}.{did_you_mean(name, valid)} Splits of this data: {', '.join(valid)}."
            )
    return validation, sorted(set(chosen))


# The console table's columns: the report's scores, in its words (CC_norm, not oracle fractions).
CONSOLE_COLUMNS = {
    "correlation": "corr.",
    "baseline_correlation": "baseline corr.",
    "normalised_correlation": "CC_norm",
    "feve": "FEVE",
    "truth_correlation": "corr. with true rate",
}


def console_table(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the console table: the splits the report shows (the pooled test row only
    when it pools two or more stimuli), the columns any of them has."""
    from openretina_cli.evaluation.html import shown_splits

    splits = shown_splits(summary)
    columns = [
        c
        for c in CONSOLE_COLUMNS
        if any(split["metrics"].get(c, {}).get("mean") is not None for _, split in splits)
    ]
    rows = []
    for key, split in splits:
        metrics = split["metrics"]
        cells = [
            f"{metrics[c]['mean']:.3f}" if metrics.get(c, {}).get("mean") is not None else "–"
            for c in columns
        ]
        rows.append([key, str(split["n_neurons"]), *cells])
    return ["split", "neurons", *(CONSOLE_COLUMNS[c] for c in columns)], rows


def _print(summary: dict[str, Any], out: Path, figures: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Evaluation (means over neurons)")
    header, rows = console_table(summary)
    for i, name in enumerate(header):
        table.add_column(name, no_wrap=i == 0, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    console = Console()
    console.print(table)
    from openretina_cli.evaluation.baseline import worse_than_baseline_message

    warning = worse_than_baseline_message(summary.get("baseline") or {})
    if warning:
        console.print(f"[bold yellow]Warning:[/] {warning}", highlight=False)
    written = "neurons.csv, summary.json" + (", figures/, report.html" if figures else "")
    console.print(f"Wrote {written} to {out}", highlight=False)
