"""The console script asks PyTorch for huge pages for large CPU tensors (issue 24: training's peak
memory), before the command imports torch, and keeps a value the user set."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from openretina_cli import main as main_module
from openretina_cli.huge_pages import VARIABLE, allow_torch_huge_pages


def test_set_when_the_user_did_not_choose(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(VARIABLE, raising=False)
    allow_torch_huge_pages()
    assert os.environ[VARIABLE] == "1"


def test_the_users_choice_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VARIABLE, "0")
    allow_torch_huge_pages()
    assert os.environ[VARIABLE] == "0"


def test_main_sets_it_before_the_command_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(VARIABLE, raising=False)
    seen: list[str | None] = []

    def run(parsed: argparse.Namespace) -> int:
        seen.append(os.environ.get(VARIABLE))
        return 0

    monkeypatch.setattr(main_module, "load", lambda command: SimpleNamespace(run=run))
    main_module.main(["train"])
    assert seen == ["1"]


def test_torch_is_not_imported_before_main_sets_it() -> None:
    """PyTorch reads the variable once; importing the console script must not import torch."""
    code = "import sys, openretina_cli.main; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
