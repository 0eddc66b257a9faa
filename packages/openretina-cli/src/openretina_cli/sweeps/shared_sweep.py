"""The sweeping side of a shared Optuna study: ask for trials, launch them, until the study is done.

Hydra's Optuna sweeper runs ``n_trials`` per process and numbers runs per process, so several
workers on one study would each run ``n_trials``, write into each other's run directories, and a
restarted sweep would start over. This sweeper treats ``n_trials`` as the study's total:

- every worker asks the database for the next trial, so no trial is handed out twice;
- a trial's run directory is ``<sweep dir>/<trial number>``, unique across workers and restarts;
- a worker stops asking once finished plus running trials reach ``n_trials``, and waits for the
  running ones (a killed worker's trial stops sending heartbeats, is marked failed and queued
  again, and a waiting worker runs it);
- two workers racing for the last slot: the later trial (higher number) is dropped before it runs.

A sweep killed at any point therefore resumes with the same command: finished trials stay in the
study, the trial that was running is run again.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from openretina_cli.errors import ConfigError
from openretina_cli.sweeps.study import (
    PRUNED_ATTR,
    TRIAL_ID_ENV,
    check_search_space,
    instantiate_pruner,
    open_storage,
    redacted,
    search_space_signature,
    storage_url,
)
from openretina_cli.sweeps.trial_job import Heartbeat

log = logging.getLogger(__name__)

SURPLUS_ATTR = "openretina_surplus"


class SharedStudySweep:
    """What ``hydra_plugins.openretina_sweeper`` delegates to (kept out of the plugin scan)."""

    def __init__(
        self,
        sampler: DictConfig,
        direction: str,
        storage: str | None,
        study_name: str,
        n_trials: int,
        n_jobs: int = 1,
        params: DictConfig | None = None,
        pruner: DictConfig | None = None,
        heartbeat_interval: int | None = 60,
        grace_period: int | None = 180,
        max_retry: int = 3,
    ) -> None:
        if int(n_trials) < 1 or int(n_jobs) < 1:
            raise ConfigError(
                f"hydra.sweeper.n_trials={n_trials} and hydra.sweeper.n_jobs={n_jobs} must both be "
                "at least 1."
            )
        if heartbeat_interval and grace_period and int(grace_period) <= int(heartbeat_interval):
            raise ConfigError(
                f"hydra.sweeper.grace_period={grace_period} must be longer than "
                f"hydra.sweeper.heartbeat_interval={heartbeat_interval} (seconds), or a live trial "
                "would be taken for a dead one."
            )
        self.sampler_config = sampler
        self.direction = str(direction)
        self.storage = storage
        self.study_name = str(study_name)
        self.n_trials = int(n_trials)
        self.n_jobs = int(n_jobs)
        self.params = params
        self.pruner_config = pruner
        self.heartbeat_interval = int(heartbeat_interval) if heartbeat_interval else None
        self.grace_period = int(grace_period) if grace_period else None
        self.max_retry = int(max_retry)
        self.config: DictConfig | None = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    def sweep(self, arguments: list[str]) -> None:
        import optuna
        from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

        assert self.config is not None
        assert self.launcher is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        overrides = [f"{key!s}={value}" for key, value in (self.params or {}).items()]
        distributions, fixed = create_params_from_overrides([*overrides, *arguments])
        for name in fixed:
            distributions.pop(name, None)
        url = storage_url(self.storage, sweep_dir)
        storage = open_storage(url, self.heartbeat_interval, self.grace_period, self.max_retry)
        study = optuna.create_study(
            study_name=self.study_name,
            storage=storage,
            sampler=self._sampler(0),
            pruner=instantiate_pruner(self.pruner_config),
            direction=self.direction,
            load_if_exists=True,
        )
        check_search_space(study, search_space_signature(distributions, [self.direction]), url)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info(
            f"Study '{self.study_name}' in {redacted(url)}: {_finished(storage, study)} of "
            f"{self.n_trials} trials finished before this worker started."
        )
        while True:
            optuna.storages.fail_stale_trials(study)
            _fail_silent_trials(storage, study, self.grace_period)
            trials = _trials(storage, study)
            waiting = sum(t.state == optuna.trial.TrialState.WAITING for t in trials)
            running = sum(t.state == optuna.trial.TrialState.RUNNING for t in trials)
            free = self.n_trials - sum(_counts(t) for t in trials)
            to_ask = min(self.n_jobs, waiting + max(free, 0))
            if to_ask <= 0:
                if running and self.heartbeat_interval:
                    time.sleep(self.heartbeat_interval)  # another worker's trials: wait for them
                    continue
                break
            asked = [
                trial for trial in (self._ask(study, storage) for _ in range(to_ask)) if trial is not None
            ]
            if asked:
                self._launch(study, storage, asked, distributions, fixed, sweep_dir)
        self._write_results(study, storage, sweep_dir)

    def _sampler(self, trial_number: int) -> Any:
        """The configured sampler, seeded with ``seed + trial number`` so that concurrent workers
        with the same seed do not all draw the same parameters (one worker stays repeatable)."""
        from hydra.utils import instantiate

        config = self.sampler_config
        seed = config.get("seed") if isinstance(config, DictConfig) else None
        sampler = (
            instantiate(config, seed=int(seed) + trial_number) if seed is not None else instantiate(config)
        )
        if isinstance(sampler, functools.partial):
            raise ConfigError(
                "hydra.sweeper.sampler: samplers that need the search space up front (GridSampler) "
                "are not supported by the shared sweeper; use hparams_search with a TPE or random sampler."
            )
        return sampler

    def _ask(self, study: Any, storage: Any) -> Any:
        """The next trial, or None when a faster worker took the last slot (recorded as failed and
        marked surplus: it never runs)."""
        import optuna

        trial = study.ask()
        if storage.is_heartbeat_enabled():  # at once: a trial with no heartbeat yet has no timeout
            storage.record_heartbeat(trial._trial_id)
        earlier = sum(_counts(t) for t in _trials(storage, study) if t.number < trial.number)
        if earlier >= self.n_trials:
            trial.set_user_attr(SURPLUS_ATTR, True)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return None
        study.sampler = self._sampler(trial.number)
        return trial

    def _launch(
        self,
        study: Any,
        storage: Any,
        trials: list[Any],
        distributions: dict[str, Any],
        fixed: dict[str, Any],
        sweep_dir: Path,
    ) -> None:
        import optuna

        job_overrides = []
        for trial in trials:
            for name, distribution in distributions.items():
                trial._suggest(name, distribution)
            for name, value in fixed.items():
                trial.set_user_attr(name, value)
            params = {**trial.params, **fixed}
            job_overrides.append(
                (
                    *(f"{name}={value}" for name, value in params.items()),
                    f"hydra.sweep.subdir={trial.number}",
                    f"++hydra.job.env_set.{TRIAL_ID_ENV}={trial._trial_id}",
                )
            )
        beating = Heartbeat(storage, [t._trial_id for t in trials], self.heartbeat_interval)
        beating.start()  # while SLURM jobs wait in the queue, the sweeper keeps their trials alive
        try:
            returns = self.launcher.launch(job_overrides, initial_job_idx=trials[0].number)
        finally:
            beating.stop()
        failed = []
        for trial, ret in zip(trials, returns, strict=True):
            frozen = storage.get_trial(trial._trial_id)
            if frozen.state == optuna.trial.TrialState.RUNNING:  # the job could not record it
                try:
                    value = float(ret.return_value)
                except Exception:
                    value = math.nan
                    failed.append(ret)
                if math.isnan(value):
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                else:
                    study.tell(trial, value)
                frozen = storage.get_trial(trial._trial_id)
            _write_trial_record(sweep_dir / str(trial.number), study.study_name, frozen)
            if frozen.state == optuna.trial.TrialState.PRUNED:
                log.info(f"Trial {trial.number} pruned after epoch {frozen.user_attrs.get(PRUNED_ATTR)}.")
        for ret in failed:
            ret.return_value  # noqa: B018 - re-raises the job's error, as Hydra's sweepers do

    def _write_results(self, study: Any, storage: Any, sweep_dir: Path) -> None:
        import optuna

        trials = _trials(storage, study)
        states = [t.state for t in trials]
        results: dict[str, Any] = {
            "name": "optuna",
            "study_name": study.study_name,
            "n_trials": self.n_trials,
            "complete": states.count(optuna.trial.TrialState.COMPLETE),
            "pruned": states.count(optuna.trial.TrialState.PRUNED),
            "failed": sum(
                t.state == optuna.trial.TrialState.FAIL and not t.user_attrs.get(SURPLUS_ATTR) for t in trials
            ),
        }
        complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        if complete:
            pick = max if self.direction == "maximize" else min
            best = pick(complete, key=lambda t: t.value)
            results.update(best_trial=best.number, best_params=best.params, best_value=best.value)
            log.info(f"Best trial {best.number}: value {best.value}, parameters {best.params}")
        else:
            results.update(best_trial=None, best_params=None, best_value=None)
        _write_atomically(
            sweep_dir / "optimization_results.yaml", OmegaConf.to_yaml(OmegaConf.create(results))
        )


def _counts(trial: Any) -> bool:
    """Whether ``trial`` uses one of the study's ``n_trials``: finished, running or queued. Failed
    trials do not (a killed trial's retry takes its place; a surplus trial never ran)."""
    import optuna

    state = optuna.trial.TrialState
    return trial.state in (state.COMPLETE, state.PRUNED, state.RUNNING, state.WAITING)


def _fail_silent_trials(storage: Any, study: Any, grace_period: int | None) -> None:
    """Fail (and queue again) running trials that never sent a heartbeat for ``grace_period``
    seconds: a worker killed between asking for a trial and its first heartbeat. Optuna's own
    check only looks at trials that have a heartbeat."""
    import datetime

    import optuna
    from optuna.storages._rdb import models

    if not grace_period or not storage.is_heartbeat_enabled():
        return
    cutoff = datetime.datetime.now() - datetime.timedelta(seconds=grace_period)
    silent = []
    session = storage.scoped_session()
    try:
        running = (
            session.query(models.TrialModel)
            .filter(models.TrialModel.study_id == study._study_id)
            .filter(models.TrialModel.state == optuna.trial.TrialState.RUNNING)
            .all()
        )
        silent = [
            trial.trial_id
            for trial in running
            if not trial.heartbeats and trial.datetime_start is not None and trial.datetime_start < cutoff
        ]
        session.commit()
    finally:
        session.close()
    callback = storage.get_failed_trial_callback()
    for trial_id in silent:
        if storage.set_trial_state(trial_id, optuna.trial.TrialState.FAIL) and callback is not None:
            callback(study, storage.get_trial(trial_id))


def _trials(storage: Any, study: Any) -> list[Any]:
    """The study's trials as the database has them now. ``study.get_trials`` goes through optuna's
    cache, which keeps this process's trials as running after their job (another storage object,
    maybe another machine) recorded them."""
    return storage.get_all_trials(study._study_id, deepcopy=False)


def _finished(storage: Any, study: Any) -> int:
    import optuna

    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return sum(t.state in done for t in _trials(storage, study))


def _write_trial_record(run_dir: Path, study_name: str, trial: Any) -> None:
    """``<run>/trial.json``: which trial of which study this run was, and how it ended."""
    if not run_dir.is_dir():
        return
    record = {
        "study": study_name,
        "trial": trial.number,
        "state": trial.state.name.lower(),
        "value": trial.value if trial.value is None or math.isfinite(trial.value) else None,
        "params": trial.params,
        "pruned_at_epoch": trial.user_attrs.get(PRUNED_ATTR),
        "intermediate_values": {str(k): v for k, v in sorted(trial.intermediate_values.items())},
    }
    _write_atomically(run_dir / "trial.json", json.dumps(record, indent=2) + "\n")


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(text)
    partial.replace(path)
