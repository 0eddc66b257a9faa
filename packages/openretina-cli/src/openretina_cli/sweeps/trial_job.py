"""The job side of a shared sweep: one trial's run keeps its trial alive and records its result.

The sweeper passes the trial id in ``OPENRETINA_SWEEP_TRIAL_ID`` (Hydra's ``hydra.job.env_set``),
so this works the same in the sweeping process and in a SLURM job started by submitit. The job
sends heartbeats while it runs and tells the study the result itself: a sweeper that is killed
while jobs still run (a closed login shell) then loses none of their results.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from openretina_cli import errors
from openretina_cli.sweeps.study import (
    PRUNED_ATTR,
    TRIAL_ID_ENV,
    instantiate_pruner,
    open_storage,
    storage_url,
)


@dataclass
class TrialLink:
    """This process's running trial: enough to report scores and ask whether to stop."""

    study: Any
    storage: Any  # the database itself, not optuna's per-process cache
    trial_id: int
    number: int
    pruned_at_epoch: int | None = field(default=None)

    def report(self, value: float, epoch: int) -> bool:
        """Record ``value`` for ``epoch``; True when the pruner says the trial is hopeless."""
        import optuna

        trial = optuna.trial.Trial(self.study, self.trial_id)
        trial.report(value, epoch)
        if trial.should_prune():
            self.pruned_at_epoch = epoch
            trial.set_user_attr(PRUNED_ATTR, epoch)
            return True
        return False


_current: TrialLink | None = None


def current_trial() -> TrialLink | None:
    """The trial this process is running, if it runs one for a shared sweep."""
    return _current


def run_as_trial(task: Callable[[], float | None]) -> float | None:
    """Run ``task`` (one training run) as the trial named in the environment, if any."""
    trial_id = os.environ.get(TRIAL_ID_ENV)
    if not trial_id:
        return task()
    os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")  # SQLAlchemy 1.4's notice about 2.0
    with _linked_trial(int(trial_id)) as link:
        if link is None:
            return None
        global _current
        _current = link
        value: float | None = None
        try:
            value = task()
        finally:
            _current = None
            record_result(link, value)
        return value


@contextmanager
def _linked_trial(trial_id: int) -> Iterator[TrialLink | None]:
    import optuna
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    sweeper = hydra_cfg.sweeper
    url = storage_url(sweeper.get("storage"), hydra_cfg.sweep.dir)
    storage = open_storage(url, _heartbeat(sweeper), _grace(sweeper), int(sweeper.get("max_retry", 3)))
    study = optuna.load_study(
        study_name=str(sweeper.study_name), storage=storage, pruner=instantiate_pruner(sweeper.get("pruner"))
    )
    frozen = storage.get_trial(trial_id)
    if frozen.state != optuna.trial.TrialState.RUNNING:
        # The sweeper that launched this job died long enough ago that the trial was failed and
        # queued again: the retry runs it, this stale copy must not.
        errors.print_error(
            f"trial {frozen.number} of study '{study.study_name}' is {frozen.state.name.lower()}, "
            "not running (its sweeper stopped); skipping it, its retry runs the same parameters."
        )
        yield None
        return
    beating = Heartbeat(storage, trial_id, _heartbeat(sweeper))
    beating.start()
    try:
        yield TrialLink(study, storage, trial_id, frozen.number)
    finally:
        beating.stop()


def record_result(link: TrialLink, value: float | None) -> None:
    """Tell the study how the trial ended: pruned, complete (a failed run's worst score counts as
    complete, as before), or failed when the run ended without a score."""
    import optuna

    state = link.storage.get_trial(link.trial_id).state
    if state != optuna.trial.TrialState.RUNNING:
        return  # already recorded (or failed as stale): never record a trial twice
    trial = optuna.trial.Trial(link.study, link.trial_id)
    if link.pruned_at_epoch is not None:
        link.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    elif value is None or math.isnan(value):
        link.study.tell(trial, state=optuna.trial.TrialState.FAIL)
    else:
        link.study.tell(trial, float(value))


def _heartbeat(sweeper: Any) -> int | None:
    value = sweeper.get("heartbeat_interval")
    return int(value) if value else None


def _grace(sweeper: Any) -> int | None:
    value = sweeper.get("grace_period")
    return int(value) if value else None


class Heartbeat:
    """Record the trial's heartbeat every ``interval`` seconds from a background thread."""

    def __init__(self, storage: Any, trial_ids: int | list[int], interval: int | None) -> None:
        self.storage = storage
        self.trial_ids = [trial_ids] if isinstance(trial_ids, int) else list(trial_ids)
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not self.interval or not self.storage.is_heartbeat_enabled():
            return
        self._beat()
        self._thread = threading.Thread(target=self._run, name="openretina-trial-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        for trial_id in self.trial_ids:
            with contextlib.suppress(Exception):  # a database hiccup: the next beat retries
                self.storage.record_heartbeat(trial_id)

    def _run(self) -> None:
        assert self.interval
        while not self._stop.wait(self.interval):
            self._beat()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
