"""One training run: seed, data, model, fit, evaluate the best checkpoint, export, report.

``run_task`` is what Hydra calls. It returns ``objective_target``'s score for sweepers, turns
configuration and data mistakes into one message, and removes the run directory again when a run
fails before training starts.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from openretina_cli import errors, garbage_collection
from openretina_cli.config.schema import validate
from openretina_cli.evaluation import figure_zygote
from openretina_cli.evaluation.figure_jobs import import_in_background
from openretina_cli.training.run_directory import remove_unstarted_run


@dataclass
class RunState:
    training_started: bool = False


def run_task(cfg: DictConfig) -> float | None:
    """Hydra's task function: train, and report failures the way a person can act on them."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    state = RunState()
    try:
        results = train(cfg, run_dir, state)
        return results["objective"]
    except Exception as ex:
        if not state.training_started:
            remove_unstarted_run(run_dir, _log_dir(cfg))
        message = errors.describe(ex)
        direction = cfg.get("objective_direction") if isinstance(cfg, DictConfig) else None
        if multirun and direction in ("maximize", "minimize"):
            errors.print_error(
                f"trial failed ({message or repr(ex)}); reporting the worst score to the sweeper."
            )
            return -math.inf if direction == "maximize" else math.inf
        if message is None or errors.full_error_requested():
            raise
        errors.fail(message)
    finally:
        garbage_collection.run_ended()  # one sweep job's objects are not kept into the next


def _log_dir(cfg: DictConfig) -> Path | None:
    try:
        return Path(str(cfg.paths.log_dir))
    except Exception:
        return None


def train(cfg: DictConfig, run_dir: Path, state: RunState) -> dict[str, Any]:
    from openretina_cli.training.phase_clock import PhaseClock, process_age_s
    from openretina_cli.training.resume import config_for_run

    startup_s = process_age_s()  # imports and composing the config, before this function
    clock = PhaseClock()
    cfg = config_for_run(cfg, run_dir)  # resume=RUN_DIR: that run's saved config
    validate(cfg)
    clock.lap("config")
    from openretina_cli.config.data import (
        build_loaders,
        build_splits,
        check_chunks_fit,
        load_checked_dataset,
    )

    # The data needs neither Lightning nor the global RNGs (splits are seeded from cfg.seed itself),
    # so it is read while Lightning is still being imported (train_app.prewarm_training_stack).
    checked = load_checked_dataset(cfg)
    dataset = checked.dataset
    from openretina_cli.config.frame_rate import rescale_to_frame_rate

    rescaled = rescale_to_frame_rate(cfg, dataset.data_info.frame_rate_hz)  # frame_counts_at_hz
    cfg = rescaled.cfg
    if rescaled.note:
        print(f"Note: {rescaled.note}")
    splits = build_splits(cfg, dataset)
    clock.lap("data")
    import torch

    from openretina_cli.training.lean_lightning import deterministic_flag_without_inductor, import_lightning

    pl = import_lightning()  # what the background import (train.prewarm_training_stack) had left
    from openretina_cli.config.instantiate import instantiate, instantiate_named
    from openretina_cli.config.model import build_model
    from openretina_cli.training.distributed import check_strategy, start_local_workers
    from openretina_cli.training.lightning_module import RetinaModule
    from openretina_cli.training.quiet import quiet_lightning
    from openretina_cli.training.report import write_quality_report
    from openretina_cli.training.resume import resume_checkpoint, resume_state_callback

    clock.lap("imports")
    quiet_lightning()
    torch.set_float32_matmul_precision(str(cfg.matmul_precision))
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)  # before model initialisation
    model = build_model(cfg.model, dataset)
    check_chunks_fit(cfg, int(model.warmup_frames))
    run_notes: list[str] = []
    clock.lap("model")
    if cfg.paths.load_model_path:
        from openretina_cli.training.finetune import start_from

        model = start_from(str(cfg.paths.load_model_path), dataset)
        check_chunks_fit(cfg, int(model.warmup_frames))  # the trained model's own warm-up
        clock.lap("model")
    elif cfg.readout_init == "sta":  # also on resume: a run killed before its
        # first checkpoint starts afresh, and must start as the original did (a checkpoint overrides)
        from openretina_cli.training.readout_init import place_readouts_at_receptive_fields

        run_notes.append(place_readouts_at_receptive_fields(model, dataset, splits))
        print(run_notes[-1])
        clock.lap("readout_init")
    optimizer = instantiate(cfg.optimizer, "optimizer")
    scheduler_cfg = cfg.lr_scheduler
    scheduler = (
        None
        if scheduler_cfg.get("scheduler") is None
        else instantiate(scheduler_cfg.scheduler, "lr_scheduler.scheduler")
    )
    scheduler_options = {
        k: v for k, v in OmegaConf.to_container(scheduler_cfg, resolve=True).items() if k != "scheduler"
    }
    module = RetinaModule(
        model,
        loss=str(cfg.loss),
        optimizer=optimizer,
        scheduler=scheduler,
        scheduler_options=scheduler_options,
        only_train_readout=bool(cfg.only_train_readout),
    )
    loggers = instantiate_named(cfg.logger, "logger")
    callbacks = instantiate_named(cfg.training_callbacks, "training_callbacks")
    callbacks.extend(_progress_bar(cfg))
    callbacks.append(resume_state_callback())
    from openretina_cli.training.cpu_kernels import FirstBatchesOutsideHeap

    callbacks.append(FirstBatchesOutsideHeap())  # issue 24: oneDNN's kernels out of training's heap
    from openretina_cli.training.pruning import sweep_trial_callbacks

    callbacks.extend(sweep_trial_callbacks(cfg))  # a sweep trial: report per epoch, prune if hopeless
    with deterministic_flag_without_inductor():
        trainer = instantiate(cfg.trainer, "trainer", logger=loggers or False, callbacks=callbacks)
    check_strategy(trainer, bool(cfg.trainer.get("sync_batchnorm", False)))
    train_batches, val_batches = build_loaders(cfg, dataset, splits, trainer)
    ckpt_path = resume_checkpoint(cfg, run_dir)

    state.training_started = True
    if trainer.is_global_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        write_quality_report(checked.report, [*dataset.notes, *splits.notes, *run_notes], run_dir)
    clock.lap("trainer")
    setup_s = time.perf_counter() - clock.started

    workers = start_local_workers(trainer, run_dir)  # trainer=ddp: the other ranks
    garbage_collection.training_started()
    try:
        trainer.fit(module, train_dataloaders=train_batches, val_dataloaders=val_batches, ckpt_path=ckpt_path)
    finally:
        if workers is not None:
            workers.close(succeeded=sys.exc_info()[0] is None)
    clock.lap("fit")
    epochs = max(int(trainer.current_epoch), 1)
    if not trainer.is_global_zero:
        return {"objective": None}
    best_path = _load_best(module, callbacks)
    clock.lap("load_best")
    timing = {"startup": startup_s, "setup": round(setup_s, 3), **clock.rounded()}
    return _finish(cfg, run_dir, module, dataset, splits, best_path, clock, timing, epochs)


def _finish(
    cfg: DictConfig,
    run_dir: Path,
    module: Any,
    dataset: Any,
    splits: Any,
    best_path: str | None,
    clock: Any,
    timing: dict[str, float | None],
    epochs: int,
) -> dict[str, Any]:
    import torch
    from openretina_data.batching import ValidationBatches

    from openretina_cli.config.data import EpochBatches
    from openretina_cli.evaluation.per_neuron import evaluate
    from openretina_cli.evaluation.predict import load_ground_truth

    garbage_collection.return_freed_memory()  # the evaluation and report reuse training's memory
    model = module.model
    model.eval()
    device = module.device if module.device.type != "meta" else torch.device("cpu")
    val_batches = EpochBatches(ValidationBatches(dataset, splits, int(cfg.dataloader.batch_size)))
    truth = load_ground_truth(cfg.data_io.get("data_dir"))
    report = bool(cfg.get("report", True))
    drawing = None
    if report and figure_zygote.current() is None:  # without a zygote the figures are drawn here
        drawing = import_in_background("openretina_cli.evaluation.figures")
    evaluation = evaluate(model, dataset, val_batches, device, truth)
    with contextlib.ExitStack() as cleanup:
        early = None
        if report:  # a helper is forked with matplotlib imported, and no thread importing
            if drawing is not None:
                drawing.join()
                drawing = None
            early = cleanup.enter_context(
                _start_early_figures(evaluation, model, dataset, run_dir, best_path)
            )
        clock.lap("evaluation")
        return _score_export_and_report(
            cfg, run_dir, model, dataset, splits, best_path, clock, timing, epochs, evaluation, drawing, early
        )


def _score_export_and_report(
    cfg: DictConfig,
    run_dir: Path,
    model: Any,
    dataset: Any,
    splits: Any,
    best_path: str | None,
    clock: Any,
    timing: dict[str, float | None],
    epochs: int,
    evaluation: Any,
    drawing: threading.Thread | None,
    early: Any,
) -> dict[str, Any]:
    from openretina_models import save_model

    from openretina_cli.evaluation.per_neuron import run_scores
    from openretina_cli.training.phase_clock import process_age_s
    from openretina_cli.training.report import print_summary
    from openretina_cli.versions import versions

    baseline = _baseline(cfg, evaluation, dataset, splits, evaluation.truth)
    if early is not None and baseline is not None:
        early.baseline_fitted(evaluation, dataset, model)
    clock.lap("baseline")
    scores = run_scores(evaluation)
    data_info = dataset.data_info.with_stimulus_range(dataset.sessions).to_dict()
    clock.lap("stimulus_range")
    export_dir = save_model(
        model.cpu(),
        run_dir / "model",
        data_info=data_info,
        extra={"exp_name": str(cfg.exp_name), "seed": int(cfg.seed), "metrics": _finite(scores)},
    )
    clock.lap("export")
    objective = _objective(cfg, scores)
    results = {
        "exp_name": str(cfg.exp_name),
        "seed": int(cfg.seed),
        "run_dir": str(run_dir),
        "objective_target": str(cfg.objective_target),
        "objective": objective,
        "metrics": _finite(scores),
        "best_checkpoint": best_path,
        "epochs": epochs,
        "model": str(export_dir),
        "timing_s": {**timing, "per_epoch": round(clock.seconds["fit"] / epochs, 3)},
        "versions": versions(),
    }
    if baseline is not None:
        results["baseline"] = baseline
    results["timing_s"].update(clock.rounded("evaluation", "baseline", "stimulus_range", "export"))
    clock.record(results)
    (run_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print_summary(scores, run_dir)
    _warn_if_worse_than_baseline(baseline)
    clock.lap("results")
    if cfg.get("report", True):
        try:
            if drawing is not None:
                drawing.join()
            garbage_collection.return_freed_memory()
            _write_run_report(cfg, run_dir, evaluation, dataset, model, str(export_dir), baseline, early)
        except Exception as ex:  # the model and scores are saved: a figure must not fail the run
            results["report_error"] = f"{type(ex).__name__}: {ex}"
            errors.print_error(
                f"the evaluation report could not be written ({results['report_error']}); the model and "
                f"results.json are saved. Retry with `openretina eval {run_dir}` (HYDRA_FULL_ERROR=1 for "
                "the traceback)."
            )
            if errors.full_error_requested():
                raise
        clock.lap("report")
        results["timing_s"].update(clock.rounded("results", "report"), process=process_age_s())
        clock.record(results)
        (run_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def _baseline(
    cfg: DictConfig, evaluation: Any, dataset: Any, splits: Any, truth: Any
) -> dict[str, Any] | None:
    """The linear-nonlinear baseline beside the model (``baseline: false`` turns it off)."""
    if not cfg.get("baseline", True):
        return None
    from openretina_cli.evaluation.baseline import evaluate_baseline

    try:
        return evaluate_baseline(evaluation, dataset, splits, truth)
    except Exception as ex:  # the trained model matters more than its yardstick
        errors.print_error(
            f"the linear-nonlinear baseline could not be fitted ({type(ex).__name__}: {ex}); the run goes on "
            "without it. `openretina eval RUN` fits it again (HYDRA_FULL_ERROR=1 for the traceback)."
        )
        if errors.full_error_requested():
            raise
        return None


def _warn_if_worse_than_baseline(baseline: dict[str, Any] | None) -> None:
    from openretina_cli.evaluation.baseline import worse_than_baseline_message

    message = None if baseline is None else worse_than_baseline_message(baseline)
    if message:
        print(f"Warning: {message}", flush=True)


def _start_early_figures(
    evaluation: Any, model: Any, dataset: Any, run_dir: Path, best_path: str | None
) -> contextlib.AbstractContextManager[Any]:
    """Every figure but the baseline's, drawn by forked helpers while the baseline is fitted (on
    one thread) and the model exported (`evaluation.report.EarlyFigures`); a failure here only
    means they are drawn later, in the report."""
    from openretina_cli.evaluation.report import EarlyFigures
    from openretina_cli.evaluation.tables import cell_type_key

    try:
        return EarlyFigures(evaluation, model, dataset, run_dir, cell_type_key(dataset), best_path)
    except Exception:  # drawn in the report instead, which reports any error
        return contextlib.nullcontext()


def _write_run_report(
    cfg: DictConfig,
    run_dir: Path,
    evaluation: Any,
    dataset: Any,
    model: Any,
    model_path: str,
    baseline: dict[str, Any] | None = None,
    early: Any = None,
) -> None:
    """The evaluation report (``<run>/eval/``), as ``openretina eval RUN`` writes it; `early`: the
    model's figures started before the evaluation (`_start_model_figures`)."""
    from openretina_cli.evaluation.report import ReportInputs, write_report
    from openretina_cli.evaluation.tables import cell_type_key

    config_path = run_dir / "config.yaml"
    inputs = ReportInputs(
        title=f"{cfg.exp_name}: {run_dir.name}",
        model_path=model_path,
        run_dir=run_dir,
        config_text=config_path.read_text() if config_path.is_file() else None,
        cell_type_key=cell_type_key(dataset),
        extra={
            "splits_evaluated": [split.key for split in evaluation.splits],
            **({} if baseline is None else {"baseline": baseline}),
        },
    )
    out = write_report(run_dir / "eval", evaluation, dataset, model, inputs, early=early)
    print(f"Report: {run_dir / 'eval' / 'report.html'} ({len(out['splits'])} splits)")


def _objective(cfg: DictConfig, scores: dict[str, float]) -> float:
    target = str(cfg.objective_target)
    if target not in scores:
        from openretina_cli.errors import ConfigError, did_you_mean

        raise ConfigError(
            f"objective_target={target!r} is not one of this run's metrics.{did_you_mean(target, scores)} "
            f"Metrics: {', '.join(sorted(k for k in scores if k.count('/') <= 2))}. "
            "Set objective_target=METRIC."
        )
    return float(scores[target])


def _finite(scores: dict[str, float]) -> dict[str, float | None]:
    """JSON has no NaN: undefined scores (e.g. silent neurons only) become null."""
    return {k: (None if v is None or math.isnan(v) else float(v)) for k, v in sorted(scores.items())}


def _progress_bar(cfg: DictConfig) -> list[Any]:
    if cfg.trainer.get("enable_progress_bar") is False:
        return []
    from lightning.pytorch.callbacks import RichProgressBar

    return [RichProgressBar(leave=True)]


def _load_best(module: Any, callbacks: list[Any]) -> str | None:
    """Load the best checkpoint's weights into ``module`` (when a checkpoint callback kept one)."""
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint

    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.best_model_path:
            checkpoint = torch.load(callback.best_model_path, map_location="cpu", weights_only=True)
            module.load_state_dict(checkpoint["state_dict"])
            return str(callback.best_model_path)
    return None
