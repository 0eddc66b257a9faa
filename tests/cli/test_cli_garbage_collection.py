"""The collector is paused while a run starts, and left as it was found for anyone training in-process.

`openretina_cli.garbage_collection` explains why; what users rely on is that a run in a notebook
or a sweep of many jobs in one process does not end with the collector off or objects frozen
forever (which would keep every job's dataset and model alive).
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import run_dirs, tutorial_args
from openretina_cli import garbage_collection
from openretina_cli.main import main


@pytest.fixture(autouse=True)
def restore_collector() -> Iterator[None]:
    yield
    gc.unfreeze()
    gc.enable()


def test_states() -> None:
    garbage_collection.pause_for_startup()
    assert not gc.isenabled()
    garbage_collection.training_started()
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0
    garbage_collection.run_ended()
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_in_process_run_leaves_collector_on_and_nothing_frozen(tutorial_dir: Path, tmp_path: Path) -> None:
    main(["train", *tutorial_args(tutorial_dir, tmp_path)])
    assert len(run_dirs(tmp_path)) == 1
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_failed_start_leaves_collector_on(tutorial_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["train", *tutorial_args(tutorial_dir, tmp_path), "model.hiden_channels=[4]"])
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_sweep_jobs_do_not_keep_frozen_objects(
    tutorial_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen_before_training: list[int] = []
    start_training = garbage_collection.training_started

    def recording() -> None:
        frozen_before_training.append(gc.get_freeze_count())
        start_training()

    monkeypatch.setattr(garbage_collection, "training_started", recording)
    main(["train", "-m", *tutorial_args(tutorial_dir, tmp_path), "seed=1,2"])
    assert frozen_before_training == [0, 0]  # the second job does not start with the first one's
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


class _Exited(Exception):
    pass


def test_console_script_exits_without_teardown_after_a_successful_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only the console script (no argv given) ends the process itself: exit handlers first, code 0."""
    calls: list[str] = []
    monkeypatch.setattr(atexit, "_run_exitfuncs", lambda: calls.append("exit handlers"))

    def fake_exit(code: int) -> None:
        calls.append(f"exit {code}")
        raise _Exited

    monkeypatch.setattr(os, "_exit", fake_exit)
    monkeypatch.setattr(sys, "argv", ["openretina", "train", "--cfg", "job"])
    with pytest.raises(_Exited):
        main()
    assert "exp_name" in capsys.readouterr().out
    assert calls == ["exit handlers", "exit 0"]

    calls.clear()
    main(["train", "--cfg", "job"])  # called with arguments (tests, notebooks): returns normally
    assert calls == []


def test_console_script_failure_exits_normally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "_exit", lambda code: pytest.fail("a failed run must not skip shutdown"))
    monkeypatch.setattr(sys, "argv", ["openretina", "train", "model.hiden_channels=[4]"])
    with pytest.raises(SystemExit) as raised:
        main()
    assert raised.value.code == 1


def test_returning_freed_memory_lowers_the_resident_size_and_never_fails() -> None:
    """After training, freed heap pages go back to the system, so the report reuses them instead of
    raising the run's peak memory (issue 24); on other systems the call does nothing."""
    from openretina_cli import garbage_collection

    def resident_mib() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
        return 0.0

    held, kept = [], []
    for _ in range(500):  # ~50 MB in blocks that glibc keeps on its heap once freed
        held.append(bytearray(100_000))
        kept.append(bytearray(64))
    for block in held:
        block[::4096] = b"\1" * len(block[::4096])  # touch every page
    before = resident_mib()
    del held, block
    garbage_collection.return_freed_memory()
    if sys.platform.startswith("linux"):
        assert resident_mib() < before - 20
    assert len(kept) == 500
