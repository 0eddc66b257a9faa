"""``openretina ensemble RUN... --out DIR``: one model that averages the predictions of trained runs.

DIR looks like a run to every other command: ``model/`` (the ensemble checkpoint), the first
member's ``config.yaml`` (and ``.hydra/``) so ``openretina eval DIR`` finds the data,
``ensemble.json`` (the members) and, unless ``--no-eval``, ``eval/`` and ``results.json`` with the
same metrics a training run reports. Every member is checked before anything is written, and DIR is
built in a hidden sibling folder and renamed into place, so a failure leaves nothing behind.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from openretina_cli.comparison.records import data_difference, metrics_from_summary
from openretina_cli.config import model_source
from openretina_cli.errors import ConfigError

ENSEMBLE_FILE = "ensemble.json"
# Config keys that decide which clips a run validates on; members that differ here validated on
# clips other members trained on, so the ensemble's validation score is optimistic.
SPLIT_KEYS = (
    "seed",
    "dataloader.clip_length",
    "dataloader.num_val_clips",
    "dataloader.max_val_fraction",
    "dataloader.val_clip_indices",
    "dataloader.train_chunk_size",
    "dataloader.allow_over_boundaries",
)


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "ensemble",
        help="average the predictions of several trained runs into one model (saved like any model)",
        description=(
            "Build one model whose prediction is the mean of the members' predictions. Members are run "
            "directories (or model folders) trained on the same data: the same sessions and neurons. "
            "Writes DIR/model/ (loads with openretina_models.load_model), the first member's config, "
            "ensemble.json and, unless --no-eval, the evaluation report DIR/eval/ and DIR/results.json."
        ),
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run directories or model folders (2 or more)")
    parser.add_argument("--out", required=True, metavar="DIR", help="new (or empty) output directory")
    parser.add_argument("--device", default="cpu", help="torch device for the evaluation (default cpu)")
    parser.add_argument("--no-eval", action="store_true", help="write the model only; evaluate later")
    parser.add_argument("--no-figures", action="store_true", help="evaluate, but draw no figures")


def run(args: argparse.Namespace) -> int:
    from openretina_cli.errors import reporting_errors

    with reporting_errors():
        out = _check_out(Path(args.out).expanduser())
        sources = [model_source.resolve(run) for run in args.runs]
        if len(sources) < 2:
            raise ConfigError("An ensemble needs at least 2 members; pass two or more RUN directories.")
        _check_distinct(sources)
        models = [model_source.load(source) for source in sources]
        check_same_data(sources, models)
        notes = _split_notes(sources)
        started = time.perf_counter()
        _write(out, sources, models, notes)
        built_s = time.perf_counter() - started
        print(f"Wrote an ensemble of {len(models)} members to {out}", flush=True)
        for note in notes:
            print(f"Note: {note}", flush=True)
        if not args.no_eval:
            _evaluate(out, args, built_s)
    return 0


def _check_out(out: Path) -> Path:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(
            f"--out {out}: already exists and is not an empty directory; nothing was written. "
            "Pass a new directory."
        )
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: its parent folder {out.parent} does not exist; create it first.")
    return out


def _check_distinct(sources: list[model_source.ModelSource]) -> None:
    seen: dict[str, str] = {}
    for source in sources:
        key = str(Path(source.model_path).resolve())
        if key in seen:
            raise ConfigError(
                f"RUN {source.argument} is the same model as {seen[key]}; pass each member once."
            )
        seen[key] = source.argument


def check_same_data(sources: list[model_source.ModelSource], models: list[Any]) -> None:
    """Every member must be trained on the same data as the first: frame shape, sessions, neuron ids,
    stimuli and normalisation (which differs between datasets even when the sessions' names match)."""
    first_info = _data_info(sources[0], models[0])
    for source, model in zip(sources[1:], models[1:], strict=True):
        info = _data_info(source, model)
        problem = data_difference(first_info, info)
        if problem:
            raise ConfigError(
                f"RUN {source.argument} was not trained on the same data as {sources[0].argument}: "
                f"{problem}. An ensemble averages members of one dataset; pass runs of the same data."
            )


def _data_info(source: model_source.ModelSource, model: Any) -> dict[str, Any]:
    info = getattr(model, "data_info", None)
    if not isinstance(info, dict) or not isinstance(info.get("sessions"), dict):
        raise ConfigError(
            f"RUN {source.argument}: its model records no data_info (sessions and neurons), so it cannot "
            "be checked against the other members. Use models saved by `openretina train`."
        )
    return info


def _split_notes(sources: list[model_source.ModelSource]) -> list[str]:
    """Say when members validated on different clips (e.g. seeds differ): the ensemble's validation
    score is then optimistic, as members trained on clips it is validated on."""
    configs = [_flat_config(source) for source in sources]
    if any(config is None for config in configs):
        return ["some members have no run config; whether they validated on the same clips is unknown."]
    differing = [
        key for key in SPLIT_KEYS if len({json.dumps(c.get(key), sort_keys=True) for c in configs}) > 1
    ]
    if not differing or (
        differing == ["seed"] and all(c.get("dataloader.val_clip_indices") is not None for c in configs)
    ):
        return []
    return [
        "members differ in " + ", ".join(differing) + ", so they validated on different clips: each "
        "trained on some of the clips the ensemble is validated on. Its validation score is optimistic; "
        "compare it with its members on the test split, or train members with fixed "
        "dataloader.val_clip_indices."
    ]


def _flat_config(source: model_source.ModelSource) -> dict[str, Any] | None:
    from openretina_cli.comparison.configs import flat_config

    return None if source.run_config is None else flat_config(source.run_config)


def _write(out: Path, sources: list[model_source.ModelSource], models: list[Any], notes: list[str]) -> None:
    from openretina_models import save_model
    from openretina_models.architectures import ensemble_of

    try:
        model = ensemble_of(models)
    except ValueError as error:
        raise ConfigError(f"{error} (members: {', '.join(s.argument for s in sources)})") from None
    members = [
        {"argument": s.argument, "model": str(Path(s.model_path).resolve()), "run_dir": _path(s.run_dir)}
        for s in sources
    ]
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    _usual_permissions(staging)
    try:
        save_model(
            model,
            staging / model_source.RUN_MODEL_DIR,
            data_info=models[0].data_info,
            extra={"ensemble": {"members": members}},
        )
        first = sources[0]
        if first.run_config is not None:
            shutil.copy2(first.run_config, staging / model_source.RUN_CONFIG)
            hydra = first.run_config.parent / ".hydra"
            if hydra.is_dir():
                shutil.copytree(hydra, staging / ".hydra")
        record = {
            "kind": "ensemble",
            "members": members,
            "warmup_frames": int(model.warmup_frames),
            "n_parameters": int(sum(p.numel() for p in model.parameters())),
            "config_from": members[0]["run_dir"],
            "notes": notes,
        }
        (staging / ENSEMBLE_FILE).write_text(json.dumps(record, indent=2) + "\n")
        staging.rename(out)  # replaces `out` only when it is an empty directory (checked above)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _path(path: Path | None) -> str | None:
    return None if path is None else str(path.resolve())


def _evaluate(out: Path, args: argparse.Namespace, built_s: float) -> None:
    from openretina_cli.commands.eval import EVAL_FOLDER, eval_config, evaluate_and_report

    source = model_source.resolve(str(out))
    if source.run_config is None:
        print(
            f"The first member has no run config, so the data is unknown: evaluate with "
            f"`openretina eval {out} --config-name NAME ...`.",
            flush=True,
        )
        return
    cfg = eval_config(source, None, [])
    model = model_source.load(source, device=args.device)
    parsed = argparse.Namespace(
        split=None,
        var_ratio_cutoff=0.15,
        cell_type_key=None,
        device=args.device,
        no_figures=args.no_figures,
        no_baseline=False,  # the linear-nonlinear baseline beside the ensemble, as `openretina eval` shows it
        config_name=None,
        overrides=[],
    )
    summary = evaluate_and_report(model, cfg, source, out / EVAL_FOLDER, parsed)
    results = {
        "exp_name": "ensemble",
        "kind": "ensemble",
        "run_dir": str(out.resolve()),
        "objective_target": "val/correlation",
        "metrics": metrics_from_summary(summary),
        "epochs": None,
        "model": str((out / model_source.RUN_MODEL_DIR).resolve()),
        "timing_s": {"build": round(built_s, 3)},
    }
    results["objective"] = results["metrics"].get("val/correlation")
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=2, allow_nan=False) + "\n")  # metrics are finite
    tmp.replace(out / "results.json")
    metrics = results["metrics"]
    shown = {
        k: metrics[k] for k in ("val/correlation", "test/correlation", "test/fraction_oracle") if k in metrics
    }
    print("Ensemble: " + ", ".join(f"{k} {v:.4f}" for k, v in shown.items()), flush=True)
    print(f"Report: {out / EVAL_FOLDER / 'report.html'}", flush=True)


def _usual_permissions(directory: Path) -> None:
    """mkdtemp makes a private folder; the output gets the permissions of any new folder."""
    import os

    umask = os.umask(0)
    os.umask(umask)
    directory.chmod(0o777 & ~umask)
