"""Find runs under the paths a user gives, and read each finished one; name every unfinished one.

A run directory is what ``openretina train`` (or ``openretina ensemble``) writes: ``config.yaml``,
``results.json``, ``model/``, ``eval/`` and ``csv/metrics.csv``. Any other directory is searched
for runs (a Hydra sweep directory holds one per trial). A run counts as finished when its
``results.json`` parses and its ``model/`` loads; a process killed half-way leaves one of them
missing or truncated, and such a run is skipped with the reason.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openretina_cli.comparison.configs import flat_config
from openretina_cli.errors import ConfigError

RUN_MARKERS = ("results.json", "config.yaml", ".hydra", "model", "ensemble.json")
SWEEP_MARKERS = ("multirun.yaml", "optimization_results.yaml", "optuna.db")
MAX_DEPTH = 4


@dataclass
class Run:
    """One finished run (or ensemble), with what the leaderboard and the figures need."""

    path: Path
    kind: str  # "run" or "ensemble"
    metrics: dict[str, float]
    epochs: int | None
    fit_s: float | None
    n_parameters: int | None
    config: dict[str, Any]
    objective: float | None = None
    objective_target: str | None = None
    sweep: Path | None = None
    trial: int | None = None
    members: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    label: str = ""
    data_info: dict[str, Any] | None = None

    @property
    def val(self) -> float | None:
        return _finite(self.metrics.get("val/correlation"))

    @property
    def test(self) -> float | None:
        return _finite(self.metrics.get("test/correlation"))

    @property
    def fraction_oracle(self) -> float | None:
        return _finite(self.metrics.get("test/fraction_oracle"))

    @property
    def fraction_ceiling(self) -> float | None:
        """The mean over test stimuli of the test correlation over the ground-truth ceiling."""
        direct = _finite(self.metrics.get("test/fraction_ceiling"))
        if direct is not None:
            return direct
        values = [
            v
            for k, v in self.metrics.items()
            if k.startswith("test/") and k.endswith("/fraction_ceiling") and k.count("/") == 2
        ]
        finite = [v for v in values if _finite(v) is not None]
        return sum(finite) / len(finite) if finite else None

    def neurons_csv(self) -> Path | None:
        path = self.path / "eval" / "neurons.csv"
        return path if path.is_file() else None

    def curves(self) -> dict[str, list[tuple[float, float]]]:
        """``val/correlation`` and ``train/loss_epoch`` per epoch from the run's CSV log."""
        return read_curves(self.path / "csv" / "metrics.csv")


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str


@dataclass
class Found:
    runs: list[Run]
    skipped: list[Skipped]
    sweeps: list[Path]


def discover(arguments: list[str]) -> Found:
    """Every run under the given paths; ConfigError for a path with no finished run at all."""
    runs: list[Run] = []
    skipped: list[Skipped] = []
    sweeps: list[Path] = []
    seen: set[Path] = set()
    for argument in arguments:
        root = Path(argument).expanduser()
        if not root.is_dir():
            raise ConfigError(
                f"{argument}: no such directory. Pass run directories or sweep directories of "
                "`openretina train`."
            )
        directories = [root] if is_run_dir(root) else list(_run_dirs_below(root, 0))
        if not directories:
            raise ConfigError(
                f"{argument}: no runs in this directory (no folder holding results.json or config.yaml "
                f"within {MAX_DEPTH} levels). Pass a run directory or a sweep directory."
            )
        found_here: list[Run] = []
        skipped_here: list[Skipped] = []
        for directory in sorted(directories, key=_natural_key):
            resolved = directory.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            result = read_run(directory)
            (found_here if isinstance(result, Run) else skipped_here).append(result)  # type: ignore[arg-type]
        if not found_here and skipped_here and directories != [root]:  # a folder of runs, none finished
            listing = "; ".join(f"{s.path.name}: {s.reason}" for s in skipped_here[:5])
            more = f" and {len(skipped_here) - 5} more" if len(skipped_here) > 5 else ""
            raise ConfigError(
                f"{argument}: no finished runs in it ({len(skipped_here)} run folder(s), none finished: "
                f"{listing}{more}). Wait for the runs to finish, or resume the sweep with the same command."
            )
        runs += found_here
        skipped += skipped_here
        for run in found_here:
            if run.sweep is not None and run.sweep not in sweeps:
                sweeps.append(run.sweep)
        if _is_sweep_dir(root) and root.resolve() not in [s.resolve() for s in sweeps]:
            sweeps.append(root)
    if not runs:
        listing = "; ".join(f"{s.path}: {s.reason}" for s in skipped[:5])
        raise ConfigError(f"No finished runs to compare ({listing}).")
    label_runs(runs)
    return Found(runs, skipped, sweeps)


def is_run_dir(path: Path) -> bool:
    return any((path / marker).exists() for marker in RUN_MARKERS)


def _is_sweep_dir(path: Path) -> bool:
    return any((path / marker).is_file() for marker in SWEEP_MARKERS)


def _run_dirs_below(directory: Path, depth: int) -> list[Path]:
    if depth >= MAX_DEPTH:
        return []
    found: list[Path] = []
    try:
        children = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []
    for child in children:
        if is_run_dir(child):
            found.append(child)
        else:
            found += _run_dirs_below(child, depth + 1)
    return found


def _natural_key(path: Path) -> tuple[Any, ...]:
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in path.parts)


def read_run(directory: Path) -> Run | Skipped:
    """The finished run in ``directory``, or why it is skipped."""
    results_path = directory / "results.json"
    if not results_path.is_file() and (directory / "ensemble.json").is_file():
        return _unevaluated_ensemble(directory)
    if not results_path.is_file():
        return Skipped(directory, "no results.json: the run did not finish (killed, failed or still running)")
    try:
        results = json.loads(results_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return Skipped(directory, "results.json is half-written (not valid JSON): the run was interrupted")
    if not isinstance(results, dict) or not isinstance(results.get("metrics"), dict):
        return Skipped(directory, "results.json has no metrics: the run did not finish")
    n_parameters, problem = _model_parameters(directory / "model")
    if problem:
        return Skipped(directory, problem)
    config_path = directory / "config.yaml"
    config = flat_config(config_path) if config_path.is_file() else None
    notes = [] if config is not None else ["config.yaml missing or unreadable"]
    ensemble_record = _read_json(directory / "ensemble.json")
    kind = "ensemble" if ensemble_record is not None or results.get("kind") == "ensemble" else "run"
    trial_record = _read_json(directory / "trial.json") or {}  # written by the sweeper per trial
    if trial_record.get("state") in ("pruned", "fail"):
        kind = f"run ({trial_record['state']})"
    members = [str(m.get("run_dir") or m.get("model")) for m in (ensemble_record or {}).get("members", [])]
    if ensemble_record:
        notes += [str(note) for note in ensemble_record.get("notes", [])]
    timing = results.get("timing_s") or {}
    sweep = directory.parent if trial_record or _is_sweep_dir(directory.parent) else None
    return Run(
        path=directory,
        kind=kind,
        metrics={k: float(v) for k, v in results["metrics"].items() if isinstance(v, int | float)},
        epochs=results.get("epochs") if isinstance(results.get("epochs"), int) else None,
        fit_s=_finite(timing.get("fit")),
        n_parameters=n_parameters,
        config=config or {},
        objective=_finite(results.get("objective")),
        objective_target=results.get("objective_target"),
        sweep=sweep,
        trial=int(directory.name) if sweep is not None and directory.name.isdigit() else None,
        members=members,
        notes=notes,
        data_info=((_read_json(directory / "model" / "model.json") or {}).get("data_info")),
    )


def _unevaluated_ensemble(directory: Path) -> Run | Skipped:
    """An ensemble written with --no-eval has no results.json; its scores are in eval/summary.json
    once `openretina eval DIR` has run."""
    from openretina_cli.comparison.records import metrics_from_summary

    summary = _read_json(directory / "eval" / "summary.json")
    if summary is None:
        return Skipped(directory, f"an ensemble not evaluated yet: run `openretina eval {directory}`")
    n_parameters, problem = _model_parameters(directory / "model")
    if problem:
        return Skipped(directory, problem)
    record = _read_json(directory / "ensemble.json") or {}
    return Run(
        path=directory,
        kind="ensemble",
        metrics=metrics_from_summary(summary),
        epochs=None,
        fit_s=None,
        n_parameters=n_parameters,
        config={},
        members=[str(m.get("run_dir") or m.get("model")) for m in record.get("members", [])],
        notes=[str(note) for note in record.get("notes", [])],
        data_info=(_read_json(directory / "model" / "model.json") or {}).get("data_info"),
    )


def _model_parameters(model_dir: Path) -> tuple[int | None, str | None]:
    """(parameter count, None), or (None, why the model cannot be read)."""
    if not (model_dir / "model.json").is_file():
        return None, "no model/model.json: the model was never exported (the run did not finish)"
    from openretina_models import CheckpointError, load_model

    try:
        model = load_model(model_dir)
    except (CheckpointError, OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
        return None, f"model/ is unreadable (half-written?): {error}"
    return int(sum(p.numel() for p in model.parameters())), None


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return None
    return data if isinstance(data, dict) else None


def read_curves(path: Path) -> dict[str, list[tuple[float, float]]]:
    curves: dict[str, list[tuple[float, float]]] = {"val/correlation": [], "train/loss_epoch": []}
    if not path.is_file():
        return curves
    try:
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                epoch = _number(row.get("epoch"))
                if epoch is None:
                    continue
                for key, points in curves.items():
                    value = _number(row.get(key))
                    if value is not None:
                        points.append((epoch, value))
    except (OSError, csv.Error, UnicodeDecodeError):
        return {key: [] for key in curves}
    return curves


def label_runs(runs: list[Run]) -> None:
    """Short unique labels: the folder name, with as many parent names as it takes to be unique."""
    depth = 1
    while True:
        labels = ["/".join(run.path.resolve().parts[-(depth + run.path.name.isdigit()) :]) for run in runs]
        if len(set(labels)) == len(labels) or depth > 6:
            break
        depth += 1
    for run, label in zip(runs, labels, strict=True):
        run.label = label


def _number(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
