"""Open the shared Optuna study: where it is stored, and refusing one whose search space changed.

Both sides of a sweep open the study: the sweeper, which asks for trials and launches them, and
each trial's job, which keeps the trial alive (heartbeats), reports per-epoch scores for pruning
and records the result. They agree on the study through the sweeper's config (``hydra.sweeper``)
and on the trial through one environment variable, so a job works the same whether it runs in the
sweeping process or as a SLURM job.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

from openretina_cli.errors import ConfigError

TRIAL_ID_ENV = "OPENRETINA_SWEEP_TRIAL_ID"
SQLITE_NAME = "optuna.db"
SEARCH_SPACE_ATTR = "openretina_search_space"
PRUNED_ATTR = "openretina_pruned_at_epoch"


def storage_url(storage: str | None, sweep_dir: str | os.PathLike[str]) -> str:
    """``storage`` as given, or the SQLite file ``optuna.db`` in the sweep directory (absolute, so
    jobs that start elsewhere find the same file)."""
    if storage:
        return str(storage)
    return f"sqlite:///{Path(sweep_dir).resolve() / SQLITE_NAME}"


def redacted(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def open_storage(url: str, heartbeat_interval: int | None, grace_period: int | None, max_retry: int) -> Any:
    """An ``RDBStorage`` for ``url`` with heartbeats, or one clear error when it cannot be reached.

    A trial whose process died stops sending heartbeats; after ``grace_period`` seconds any worker
    marks it failed and queues the same parameters again (at most ``max_retry`` times), so a kill
    loses only the trial that was running.
    """
    import optuna
    import sqlalchemy.exc

    quiet_experimental_warnings()
    try:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(_CREATE_ATTEMPTS):
            try:
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=_engine_kwargs(url),
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period,
                    failed_trial_callback=optuna.storages.RetryFailedTrialCallback(max_retry=max_retry),
                )
            except sqlalchemy.exc.SQLAlchemyError as ex:
                # Workers that start together race to create the tables of a new database: the
                # loser sees "already exists" (or a lock) and finds the tables on the next try.
                if attempt + 1 == _CREATE_ATTEMPTS or not _creation_race(ex):
                    raise
                time.sleep(0.5 + random.random())
        raise AssertionError("unreachable")
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, OSError, ValueError) as ex:
        first_line = str(ex).strip().splitlines()[0] if str(ex).strip() else type(ex).__name__
        raise ConfigError(
            f"The sweep's study storage {redacted(url)} cannot be reached: {first_line}. "
            "Check that the database server is running and the URL (hydra.sweeper.storage=...) is "
            'right; for PostgreSQL install the driver with `pip install "openretina-cli[optuna]"`. '
            "Nothing was run or written to the study."
        ) from ex


_CREATE_ATTEMPTS = 5


def _creation_race(ex: Exception) -> bool:
    text = str(ex).lower()
    return any(
        sign in text
        for sign in ("already exists", "database is locked", "duplicate key", "unique constraint")
    )


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # Several worker processes share one file: wait for a lock instead of failing at once.
        return {"connect_args": {"timeout": 60}}
    return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}


def search_space_signature(distributions: dict[str, Any], directions: list[str]) -> str:
    """A canonical text of what defines a study: the searched parameters, their ranges, the direction.

    Fixed overrides (paths, epochs...) are left out: a resumed sweep may name the same data by
    another path."""
    from optuna.distributions import distribution_to_json

    return json.dumps(
        {
            "params": {
                name: json.loads(distribution_to_json(d)) for name, d in sorted(distributions.items())
            },
            "directions": directions,
        },
        sort_keys=True,
    )


def check_search_space(study: Any, signature: str, storage: str) -> None:
    """Refuse to add trials to a study created with another search space (its trials would not be
    comparable, and the sampler would mix two problems)."""
    stored = study.user_attrs.get(SEARCH_SPACE_ATTR)
    if stored is None:
        if not study.trials:  # a new study: this command defines it
            study.set_user_attr(SEARCH_SPACE_ATTR, signature)
            return
        return  # a study made by other means: nothing to compare with
    if stored == signature:
        return
    before, now = json.loads(stored), json.loads(signature)
    changes = _differences(before, now)
    raise ConfigError(
        f"The study '{study.study_name}' in {redacted(storage)} was created with another search space "
        f"({'; '.join(changes)}). Its {len(study.trials)} trials would not be comparable with this "
        "command's. Start a new study with another name, e.g. "
        f"`hydra.sweeper.study_name={study.study_name}_2`, or run the original command to continue "
        "this one."
    )


def _differences(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    changes: list[str] = []
    old, new = before.get("params", {}), now.get("params", {})
    for name in sorted(set(old) | set(new)):
        if name not in new:
            changes.append(f"{name} was {_short(old[name])}, now absent")
        elif name not in old:
            changes.append(f"{name} is new ({_short(new[name])})")
        elif old[name] != new[name]:
            changes.append(f"{name} was {_short(old[name])}, now {_short(new[name])}")
    if before.get("directions") != now.get("directions"):
        changes.append(f"direction was {before.get('directions')}, now {now.get('directions')}")
    return changes or ["the stored definition differs"]


def _short(value: Any) -> str:
    if isinstance(value, dict) and "attributes" in value:
        attributes = ", ".join(f"{k}={v}" for k, v in value["attributes"].items())
        return f"{value.get('name', 'distribution')}({attributes})"
    return str(value)


def instantiate_pruner(config: Any) -> Any:
    """The pruner from ``hydra.sweeper.pruner`` (None or an empty ``_target_`` means no pruning)."""
    if config is None or not config.get("_target_"):
        import optuna

        return optuna.pruners.NopPruner()
    from hydra.utils import instantiate

    return instantiate(config)


def quiet_experimental_warnings() -> None:
    """Heartbeats and retries are marked experimental in optuna 2; the warning is noise to users."""
    import warnings

    from optuna.exceptions import ExperimentalWarning

    warnings.filterwarnings("ignore", category=ExperimentalWarning)
