"""Sweeps that share one Optuna study: concurrent workers, kill and resume, pruning, bad input.

Workers are real ``openretina train -m hparams_search=optuna`` processes on a tiny simulated
retina (1-epoch trials); the study lives in SQLite in the sweep directory or on a throw-away
PostgreSQL server (skipped where PostgreSQL cannot be had).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from postgres_support import postgres_url
from robust_support import command, environment, retina_args, retina_dir

__all__ = ["postgres_url", "retina_dir"]  # fixtures, used by name

pytest.importorskip("optuna")

QUICK = ["report=false", "trainer.max_epochs=1", "model.hidden_channels=choice([4],[3])"]


def sweep_args(
    data: Path, log_dir: Path, study: str, n_trials: int, *extra: str, grace_period: int = 10
) -> list[str]:
    args = [a for a in retina_args(data, log_dir) if not a.startswith("model.hidden_channels")]
    return [
        "-m",
        "hparams_search=optuna",
        *args,
        *QUICK,
        f"exp_name={study}",
        f"hydra.sweeper.n_trials={n_trials}",
        "hydra.sweeper.heartbeat_interval=1",
        f"hydra.sweeper.grace_period={grace_period}",
        *extra,
    ]


def start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command(args),
        cwd=cwd,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: a kill reaches the whole worker
    )


def finish(worker: subprocess.Popen[str], timeout: float = 600) -> str:
    output, _ = worker.communicate(timeout=timeout)
    assert worker.returncode == 0, output
    return output


def sweep_dir(log_dir: Path, study: str) -> Path:
    return log_dir / "multiruns" / study / f"study-{study}"


def trials(storage: str, study: str) -> list[dict]:
    """Every trial of ``study`` as the database has it: number, state, value, params, user attrs."""
    import optuna

    loaded = optuna.load_study(study_name=study, storage=storage)
    return [
        {
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            "params": t.params,
            "surplus": bool(t.user_attrs.get("openretina_surplus")),
            "retry_of": t.system_attrs.get("failed_trial"),
        }
        for t in loaded.get_trials(deepcopy=False)
    ]


def check_one_study_without_duplicates(
    log_dir: Path, study: str, storage: str, n_trials: int, outputs: list[str] | None = None
) -> None:
    found = trials(storage, study)
    ran = [t for t in found if not t["surplus"]]
    complete = [t for t in ran if t["state"] == "COMPLETE"]
    why = (found, outputs)  # the workers' own output says why a trial failed
    assert len(complete) == n_trials, why
    assert all(t["state"] == "COMPLETE" for t in ran), why  # nothing failed, nothing left running
    directory = sweep_dir(log_dir, study)
    run_dirs = sorted(int(p.parent.name) for p in directory.glob("*/results.json"))
    assert run_dirs == sorted(t["number"] for t in complete)  # one run per trial, none twice
    for trial in complete:
        record = json.loads((directory / str(trial["number"]) / "trial.json").read_text())
        assert record["state"] == "complete"
        assert record["value"] == pytest.approx(trial["value"])
        results = json.loads((directory / str(trial["number"]) / "results.json").read_text())
        assert results["objective"] == pytest.approx(trial["value"])
    params = [json.dumps(t["params"], sort_keys=True) for t in complete]
    assert len(set(params)) == len(params)  # concurrent workers did not draw the same parameters


def run_concurrent_workers(data: Path, tmp_path: Path, study: str, storage: str | None, workers: int) -> None:
    log_dir = tmp_path / "logs"
    extra = [f"hydra.sweeper.storage={storage}"] if storage else []
    n_trials = 4
    # Nobody is killed here, so a generous grace period: on a loaded machine (CI runs two test
    # workers beside these) a live trial's heartbeats can lag past 10 s, and the other worker would
    # fail it as stale and run its parameters again.
    args = sweep_args(data, log_dir, study, n_trials, *extra, grace_period=120)
    running = [start(args, tmp_path) for _ in range(workers)]
    outputs = [finish(worker) for worker in running]
    url = storage or f"sqlite:///{sweep_dir(log_dir, study) / 'optuna.db'}"
    check_one_study_without_duplicates(log_dir, study, url, n_trials, outputs)
    results = (sweep_dir(log_dir, study) / "optimization_results.yaml").read_text()
    assert "complete: 4" in results, outputs


@pytest.mark.slow
def test_concurrent_workers_on_sqlite_share_one_study(retina_dir: Path, tmp_path: Path) -> None:
    run_concurrent_workers(retina_dir, tmp_path, "shared", None, workers=3)


@pytest.mark.slow
def test_concurrent_workers_on_postgresql_share_one_study(
    retina_dir: Path, tmp_path: Path, postgres_url: str
) -> None:
    run_concurrent_workers(retina_dir, tmp_path, "shared_pg", postgres_url, workers=2)


def _states(database: Path) -> dict[int, str]:
    if not database.is_file():
        return {}
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
            return dict(connection.execute("SELECT number, state FROM trials").fetchall())
    except sqlite3.Error:  # not created yet
        return {}


@pytest.mark.slow
def test_a_killed_sweep_resumes_with_the_same_command_and_keeps_finished_trials(
    retina_dir: Path, tmp_path: Path
) -> None:
    log_dir = tmp_path / "logs"
    args = sweep_args(retina_dir, log_dir, "resumed", 3)
    database = sweep_dir(log_dir, "resumed") / "optuna.db"
    worker = start(args, tmp_path)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # kill once one trial finished and the next one trains
        states = _states(database)
        training = [
            n
            for n, state in states.items()
            if state == "RUNNING" and (database.parent / str(n) / "config.yaml").exists()
        ]
        if "COMPLETE" in states.values() and training:
            break
        assert worker.poll() is None, worker.communicate()[0]
        time.sleep(0.2)
    else:
        pytest.fail("the sweep never finished a trial")
    os.killpg(worker.pid, signal.SIGKILL)
    worker.communicate()
    url = f"sqlite:///{database}"
    before = {t["number"]: t for t in trials(url, "resumed")}
    finished = [n for n, t in before.items() if t["state"] == "COMPLETE"]
    killed = [n for n, t in before.items() if t["state"] == "RUNNING"]
    assert finished
    assert killed
    kept = {n: (sweep_dir(log_dir, "resumed") / str(n) / "results.json").read_text() for n in finished}

    finish(start(args, tmp_path))  # the same command

    after = {t["number"]: t for t in trials(url, "resumed")}
    for number in finished:  # finished trials are kept as they were, not run again
        assert after[number]["state"] == "COMPLETE"
        assert after[number]["value"] == before[number]["value"]
        assert (sweep_dir(log_dir, "resumed") / str(number) / "results.json").read_text() == kept[number]
    for number in killed:  # the killed trial is failed and its parameters run again
        assert after[number]["state"] == "FAIL"
        retries = [t for t in after.values() if t["retry_of"] == number]
        assert len(retries) == 1
        assert retries[0]["state"] == "COMPLETE"
        assert retries[0]["params"] == before[number]["params"]
    assert sum(t["state"] == "COMPLETE" for t in after.values()) == 3  # n_trials in total, not more


@pytest.mark.slow
def test_pruned_trials_are_recorded_as_pruned_and_stop_early(retina_dir: Path, tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    args = sweep_args(
        retina_dir,
        log_dir,
        "pruned",
        2,
        "trainer.max_epochs=3",
        # A pruner that stops every trial after its first epoch (a correlation never exceeds 2).
        "~hydra.sweeper.pruner",
        "+hydra.sweeper.pruner={_target_: optuna.pruners.ThresholdPruner, lower: 2.0}",
    )
    output = finish(start(args, tmp_path))
    assert "pruned after epoch 0" in output
    directory = sweep_dir(log_dir, "pruned")
    found = trials(f"sqlite:///{directory / 'optuna.db'}", "pruned")
    assert [t["state"] for t in found] == ["PRUNED", "PRUNED"]
    for trial in found:
        record = json.loads((directory / str(trial["number"]) / "trial.json").read_text())
        assert record["state"] == "pruned"
        assert record["pruned_at_epoch"] == 0
        results = json.loads((directory / str(trial["number"]) / "results.json").read_text())
        assert results["epochs"] == 1  # stopped after 1 of 3 epochs, and still saved its model
    summary = (directory / "optimization_results.yaml").read_text()
    assert "pruned: 2" in summary
    assert "best_value: null" in summary


def _train(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(args), cwd=cwd, env=environment(), capture_output=True, text=True, timeout=600
    )


def test_an_unreachable_storage_is_one_message(retina_dir: Path, tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    url = "postgresql://sweeper:secret@127.0.0.1:9/nowhere"  # port 9 (discard): nothing listens
    env = {**environment(), "HYDRA_FULL_ERROR": "0"}
    done = subprocess.run(
        command(sweep_args(retina_dir, log_dir, "nowhere", 2, f"hydra.sweeper.storage={url}")),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "cannot be reached" in output
    assert "hydra.sweeper.storage" in output
    assert "secret" not in output  # the password is not printed
    assert "Traceback" not in output
    assert not list(log_dir.glob("multiruns/*/*/*/results.json"))


@pytest.mark.slow
def test_a_changed_search_space_under_the_same_name_is_refused(retina_dir: Path, tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    first = sweep_args(retina_dir, log_dir, "space", 1)
    done = _train(first, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    database = sweep_dir(log_dir, "space") / "optuna.db"
    before = trials(f"sqlite:///{database}", "space")
    env = {**environment(), "HYDRA_FULL_ERROR": "0"}
    changed = [*first, "optimizer.lr=interval(0.05, 0.1)", "hydra.sweeper.n_trials=2"]
    done = subprocess.run(
        command(changed), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "another search space" in output
    assert "optimizer.lr" in output
    assert "hydra.sweeper.study_name=space_2" in output
    assert "Traceback" not in output
    assert trials(f"sqlite:///{database}", "space") == before  # nothing added to the study
