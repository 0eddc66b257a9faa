"""A sweep's trials (number, state, objective, parameters) and how much each parameter mattered.

The trials come from the sweep's Optuna study database (``optuna.db``; read-only, needs the
``optuna`` extra) when there is one, else from the trial folders themselves (``trial.json``
written by the sweeper, or Hydra's ``.hydra/overrides.yaml`` plus ``results.json``), so a grid
sweep or an in-memory study can be compared too.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from openretina_cli.comparison.runs import Run

STUDY_FILE = "optuna.db"
OPTUNA_EXTRA = 'pip install "openretina-cli[optuna]"'


@dataclass
class Trial:
    number: int
    state: str  # complete, pruned, fail, running
    value: float | None
    params: dict[str, Any]


@dataclass
class Sweep:
    path: Path
    trials: list[Trial]
    direction: str  # maximize or minimize
    objective: str
    source: str  # where the trials were read from, in words
    notes: list[str] = field(default_factory=list)
    importances: dict[str, float] = field(default_factory=dict)
    importance_method: str = ""

    @property
    def complete(self) -> list[Trial]:
        return [t for t in self.trials if t.state == "complete" and t.value is not None]


def read_sweep(path: Path, runs: list[Run]) -> Sweep:
    """The sweep at ``path``; ``runs`` are its finished trial runs (from `discover`)."""
    mine = [run for run in runs if run.sweep is not None and run.sweep.resolve() == path.resolve()]
    objective = next((r.objective_target for r in mine if r.objective_target), None) or "val/correlation"
    direction = _direction(path, objective)
    notes: list[str] = []
    trials: list[Trial] | None = None
    source = "the trial folders"
    database = path / STUDY_FILE
    if database.is_file():
        try:
            trials, direction = _trials_from_database(database)
            source = f"the study database {STUDY_FILE}"
        except ImportError:
            notes.append(
                f"This sweep has a study database ({STUDY_FILE}), but reading it needs Optuna: "
                f"{OPTUNA_EXTRA}. "
                "The history below comes from the trial folders (finished trials only)."
            )
        except Exception as error:  # a locked, newer or damaged database: fall back, say so
            notes.append(f"{database} could not be read ({error}); the history comes from the trial folders.")
    if trials is None:
        trials = _trials_from_folders(path, mine)
    sweep = Sweep(path, sorted(trials, key=lambda t: t.number), direction, objective, source, notes)
    sweep.importances, sweep.importance_method = importances(sweep)
    return sweep


def _direction(path: Path, objective: str) -> str:
    import yaml

    for name in ("multirun.yaml", "optimization_results.yaml"):
        try:
            data = yaml.safe_load((path / name).read_text())
        except (OSError, yaml.YAMLError):
            continue
        direction = (((data or {}).get("hydra") or {}).get("sweeper") or {}).get("direction")
        if isinstance(direction, list):
            direction = direction[0]
        if isinstance(direction, str) and direction.lower() in ("maximize", "minimize"):
            return direction.lower()
    return "minimize" if "loss" in objective else "maximize"


def _trials_from_database(database: Path) -> tuple[list[Trial], str]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///file:{database.resolve()}?mode=ro&uri=true"  # read-only: never changes the file
    summaries = optuna.get_all_study_summaries(storage=url)
    if not summaries:
        raise ValueError("it holds no study")
    study = optuna.load_study(study_name=summaries[0].study_name, storage=url)
    direction = "maximize" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "minimize"
    names = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "fail", "RUNNING": "running"}
    trials = [
        Trial(t.number, names.get(t.state.name, t.state.name.lower()), _finite(t.value), dict(t.params))
        for t in study.get_trials(deepcopy=False)
    ]
    return trials, direction


def _trials_from_folders(path: Path, runs: list[Run]) -> list[Trial]:
    import yaml

    trials = []
    for run in runs:
        record: dict[str, Any] = {}
        if (run.path / "trial.json").is_file():
            try:
                record = json.loads((run.path / "trial.json").read_text())
            except (json.JSONDecodeError, OSError, UnicodeDecodeError):
                record = {}
        params = record.get("params") if isinstance(record.get("params"), dict) else None
        if params is None:
            params = {}
            try:
                overrides = yaml.safe_load((run.path / ".hydra" / "overrides.yaml").read_text()) or []
            except (OSError, yaml.YAMLError):
                overrides = []
            for override in overrides:
                key, eq, value = str(override).partition("=")
                if eq and not key.startswith(("hydra", "paths", "+", "~")) and not key.endswith("_dir"):
                    params[key] = _parse(value)
        number = record.get("trial", run.trial)
        value = _finite(record.get("value", run.objective))
        trials.append(
            Trial(
                int(number) if number is not None else len(trials),
                record.get("state", "complete"),
                value,
                params,
            )
        )
    return trials


def _parse(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def importances(sweep: Sweep) -> tuple[dict[str, float], str]:
    """How much of the objective's variance over the complete trials each parameter accounts for.

    Optuna's fANOVA is used where Optuna and scikit-learn are installed (shares summing to 1).
    Otherwise each parameter is taken alone, with a measure that does not reward chance on a few
    trials: for numbers the squared rank correlation with the objective, for choices the variance
    of the group means, both adjusted for the number of trials (epsilon squared) and clipped at 0;
    these are not normalised, so small values everywhere mean that no parameter alone explains the
    scores. Fewer than 4 complete trials: nothing is claimed."""
    trials = [t for t in sweep.complete if t.params]
    names = sorted(
        {
            name
            for t in trials
            for name in t.params
            if len({json.dumps(x.params.get(name), default=str) for x in trials}) > 1
        }
    )
    if len(trials) < 4 or not names:
        return {}, "too few complete trials (or no parameter that varies) to estimate importances"
    try:
        return _fanova(trials, names, sweep.direction), "Optuna's fANOVA"
    except ImportError:
        pass
    except Exception:  # fANOVA fails on some spaces (e.g. a single category): use the simple estimate
        pass
    values = np.array([t.value for t in trials], dtype=float)
    if float(values.var()) == 0:
        return {}, "every complete trial scored the same"
    shares = {name: _explained(values, [t.params.get(name) for t in trials]) for name in names}
    method = (
        "each parameter alone: the share of the objective's variance it explains, adjusted for the "
        "number of trials (squared rank correlation for numbers, group means for choices); "
        "install scikit-learn for Optuna's fANOVA"
    )
    return dict(sorted(shares.items(), key=lambda kv: -kv[1])), method


def _explained(values: np.ndarray, params: list[Any]) -> float:
    n = len(values)
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in params)
    if numeric:
        ranks_x = np.argsort(np.argsort(np.asarray(params, dtype=float)))
        ranks_y = np.argsort(np.argsort(values))
        r = float(np.corrcoef(ranks_x, ranks_y)[0, 1])
        r2 = 0.0 if not math.isfinite(r) else r * r
        return max(0.0, 1.0 - (1.0 - r2) * (n - 1) / (n - 2)) if n > 2 else 0.0
    keys = [json.dumps(v, default=str) for v in params]
    groups = [values[[i for i, k in enumerate(keys) if k == key]] for key in sorted(set(keys))]
    k = len(groups)
    total = float(((values - values.mean()) ** 2).sum())
    between = float(sum(len(g) * (g.mean() - values.mean()) ** 2 for g in groups))
    within_mean_square = (total - between) / (n - k) if n > k else 0.0
    return max(0.0, (between - (k - 1) * within_mean_square) / (total + within_mean_square))


def _fanova(trials: list[Trial], names: list[str], direction: str) -> dict[str, float]:
    import optuna
    import sklearn  # noqa: F401  (fANOVA needs it; ImportError means: use the simple estimate)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = {}
    for name in names:
        values = [t.params.get(name) for t in trials]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            floats = getattr(optuna.distributions, "FloatDistribution", None)  # Optuna 3+
            floats = floats or optuna.distributions.UniformDistribution
            distributions[name] = floats(float(min(values)), float(max(values)))
        else:
            choices = sorted({json.dumps(v, default=str) for v in values})
            distributions[name] = optuna.distributions.CategoricalDistribution(choices)
    study = optuna.create_study(direction=direction)
    for trial in trials:
        params = {
            n: json.dumps(trial.params.get(n), default=str)
            if isinstance(distributions[n], optuna.distributions.CategoricalDistribution)
            else float(trial.params.get(n))
            for n in names
        }
        study.add_trial(
            optuna.trial.create_trial(params=params, distributions=distributions, value=trial.value)
        )
    return dict(optuna.importance.get_param_importances(study))


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
