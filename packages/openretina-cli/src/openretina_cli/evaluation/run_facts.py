"""The facts a modeller looks for first on a report: which epoch was kept out of how many, why
training stopped, how long it took, how big the model and the data are.

Read from the run's files (``config.yaml``, ``csv/metrics.csv``, ``results.json``) and from the
model and dataset in hand, so ``openretina eval`` on an old run states the same facts as the
report written at the end of training.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

# Validation correlation gains per epoch above this, at the end of a run that hit max_epochs,
# count as "still rising": more epochs would likely have helped.
STILL_RISING = 1e-3


def run_facts(run_dir: Path | None, model: Any, dataset: Any) -> dict[str, Any]:
    """Strict-JSON facts about the run (keys absent when unknown) and ``warnings`` in words."""
    facts: dict[str, Any] = {"warnings": []}
    if model is not None:
        facts["parameters"] = _parameters(model)
    if dataset is not None:
        facts["data"] = _data_size(dataset)
    if run_dir is None:
        return facts
    config = _config(run_dir)
    results = _results(run_dir)
    curves = read_learning_curves(run_dir) or {}
    correlation = curves.get("val/correlation") or {}
    epochs_run = results.get("epochs")
    if correlation:
        epochs_run = max(max(correlation) + 1, int(epochs_run or 0))
    max_epochs = _select(config, "trainer", "max_epochs")
    best = _best_epoch(results.get("best_checkpoint"), correlation)
    if epochs_run is not None:
        facts["epochs_run"] = int(epochs_run)
    if isinstance(max_epochs, int) and max_epochs >= 0:
        facts["max_epochs"] = max_epochs
    if best is not None:
        facts["best_epoch"] = best
        if best in correlation:
            facts["best_val_correlation"] = correlation[best]
    timing = results.get("timing_s") or {}
    if isinstance(timing.get("fit"), int | float):
        facts["training_time_s"] = float(timing["fit"])
    facts["stopped"], warning = _why_stopped(facts, config, correlation)
    if warning:
        facts["warnings"].append(warning)
    return facts


def read_learning_curves(run_dir: Path | None) -> dict[str, dict[int, float]] | None:
    """Per epoch: training loss, validation loss and validation correlation from the run's CSV log
    (None when the run has no CSV log)."""
    log = None if run_dir is None else run_dir / "csv" / "metrics.csv"
    if log is None or not log.is_file():
        return None
    curves: dict[str, dict[int, float]] = {"train/loss_epoch": {}, "val/loss": {}, "val/correlation": {}}
    with log.open(newline="") as handle:
        for row in csv.DictReader(handle):
            epoch = row.get("epoch")
            for key, points in curves.items():
                value = row.get(key)
                if epoch not in (None, "") and value not in (None, ""):
                    points[int(float(epoch))] = float(value)
    return curves


def _parameters(model: Any) -> int | None:
    parameters = getattr(model, "parameters", None)
    if parameters is None:
        return None
    return int(sum(p.numel() for p in parameters()))


def _data_size(dataset: Any) -> dict[str, Any]:
    sessions = dataset.sessions
    tests: dict[str, dict[str, int]] = {}
    for session in sessions.values():
        for name, test in session.tests.items():
            entry = tests.setdefault(name, {"frames": 0, "trials": 0})
            entry["frames"] = max(entry["frames"], int(test.responses.shape[-1]))
            trials = 0 if test.trials is None else int(test.trials.shape[0])
            entry["trials"] = max(entry["trials"], trials)
    c, h, w = (int(v) for v in dataset.data_info.input_shape)
    return {
        "sessions": len(sessions),
        "neurons": int(sum(s.n_neurons for s in sessions.values())),
        "training_frames": int(sum(s.train_responses.shape[1] for s in sessions.values())),
        "input": {"channels": c, "height": h, "width": w},
        "frame_rate_hz": dataset.data_info.frame_rate_hz,
        "tests": tests,
    }


def _config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.yaml"
    if not path.is_file():
        return {}
    import yaml

    try:  # libyaml's loader where installed: a run's config takes the pure-Python one 0.1 s
        loaded = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _results(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "results.json"
    try:
        loaded = json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _select(config: dict[str, Any], *keys: str) -> Any:
    node: Any = config
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def kept_epoch(run_dir: Path | None, checkpoint: str | None) -> int | None:
    """The epoch whose weights a run kept, before its results.json exists (see `_best_epoch`)."""
    curves = read_learning_curves(run_dir) or {}
    return _best_epoch(checkpoint, curves.get("val/correlation") or {})


def _best_epoch(checkpoint: Any, correlation: dict[int, float]) -> int | None:
    """The kept epoch: from the best checkpoint's name (best-epoch007.ckpt), else the epoch of the
    highest validation correlation."""
    if isinstance(checkpoint, str):
        found = re.search(r"epoch[=_-]?(\d+)", Path(checkpoint).name)
        if found:
            return int(found.group(1))
    if correlation:
        return max(correlation, key=lambda epoch: correlation[epoch])
    return None


def _why_stopped(
    facts: dict[str, Any], config: dict[str, Any], correlation: dict[int, float]
) -> tuple[str | None, str | None]:
    """(why training stopped, a warning when it stopped while the validation score still rose)."""
    run, limit = facts.get("epochs_run"), facts.get("max_epochs")
    if run is None:
        return None, None
    early = _select(config, "training_callbacks", "early_stopping") or {}
    patience = early.get("patience") if isinstance(early, dict) else None
    if limit is None or run < limit:
        if patience is not None:
            return (
                f"early stopping: validation correlation did not improve for {patience} epochs",
                None,
            )
        return "stopped before max_epochs (a callback or max_time)", None
    reason = f"reached max_epochs ({limit})"
    epochs = sorted(correlation)
    if len(epochs) >= 2:
        gain = correlation[epochs[-1]] - correlation[epochs[-2]]
        best = facts.get("best_epoch")
        if gain > STILL_RISING or best == epochs[-1]:
            return reason, (
                f"Training stopped at max_epochs ({limit}) while the validation correlation was still "
                f"rising ({correlation[epochs[-2]]:.3f} -> {correlation[epochs[-1]]:.3f} in the last epoch): "
                f"the model is probably under-trained. Train longer (trainer.max_epochs=...)."
            )
    return reason, None
