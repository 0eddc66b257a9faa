""".ci/run's control flow, with a stand-in `uv` that records its calls and fails on request."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

FAKE_UV = """#!/usr/bin/env bash
echo "$*" >> "$FAKE_UV_LOG"
case "$*" in
    --version) echo "uv 0.0.0 (fake)"; exit 0 ;;
esac
if [ -n "${FAKE_UV_FAIL:-}" ] && [[ "$*" == *"$FAKE_UV_FAIL"* ]]; then
    exit "${FAKE_UV_RC:-1}"
fi
exit 0
"""
EXPECTED_CALLS = [
    "--version",
    "sync --locked --compile-bytecode",
    "run pytest -n auto",
    "run ruff check .",
    "run ruff format --check .",
    "run lint-imports",
    "run mkdocs build --strict",
    "run python tools/check_wheels.py",
]


def run_ci(tmp_path: Path, fail: str = "", rc: int = 1) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    (tmp_path / ".ci").mkdir()
    shutil.copy(REPO_ROOT / ".ci" / "run", tmp_path / ".ci" / "run")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    uv = bin_dir / "uv"
    uv.write_text(FAKE_UV)
    uv.chmod(uv.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "calls.log"
    env = {
        "PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "FAKE_UV_LOG": str(log),
        "FAKE_UV_FAIL": fail,
        "FAKE_UV_RC": str(rc),
    }
    result = subprocess.run(
        ["bash", str(tmp_path / ".ci" / "run")],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    calls = log.read_text().splitlines() if log.exists() else []
    return result, calls


def test_all_steps_run_in_order_and_pass(tmp_path: Path) -> None:
    result, calls = run_ci(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls == EXPECTED_CALLS
    assert "RESULT: PASS" in result.stdout
    assert result.stdout.count("  PASS ") == 8  # setup steps and checks, each with its time


def test_a_failing_check_fails_the_run_but_the_others_still_run(tmp_path: Path) -> None:
    result, calls = run_ci(tmp_path, fail="ruff check")
    assert result.returncode == 1
    assert calls == EXPECTED_CALLS
    assert "RESULT: FAIL" in result.stdout
    assert [line.split()[0] for line in result.stdout.splitlines() if "s  ruff check" in line] == ["FAIL"]


def test_pytest_collecting_nothing_is_a_failure_with_a_reason(tmp_path: Path) -> None:
    result, _ = run_ci(tmp_path, fail="run pytest", rc=5)
    assert result.returncode == 1
    assert "pytest collected no tests (exit 5)" in result.stderr
    assert "RESULT: FAIL" in result.stdout


def test_a_failing_sync_stops_before_the_checks(tmp_path: Path) -> None:
    result, calls = run_ci(tmp_path, fail="sync --locked", rc=2)
    assert result.returncode == 2
    assert calls == EXPECTED_CALLS[:2]
    assert "RESULT: FAIL" in result.stdout
