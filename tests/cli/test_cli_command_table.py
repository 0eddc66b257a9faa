"""main.COMMANDS is the one list of subcommands: dispatch, `openretina --help` and completion."""

from __future__ import annotations

import argparse
import inspect

import pytest
from cli_helpers import run_cli
from openretina_cli.main import COMMANDS, build_parser, load


def test_every_row_names_a_module_with_add_parser_and_run() -> None:
    assert len({command.name for command in COMMANDS}) == len(COMMANDS)
    for command in COMMANDS:
        module = load(command)
        assert command.module == f"openretina_cli.commands.{command.name.replace('-', '_')}"
        assert list(inspect.signature(module.add_parser).parameters) == ["commands"]
        assert len(inspect.signature(module.run).parameters) == 1
        subparsers = argparse.ArgumentParser().add_subparsers()
        module.add_parser(subparsers)
        assert list(subparsers.choices) == [command.name]  # the module registers its own name


def test_help_lists_every_command_without_importing_them(capsys: pytest.CaptureFixture[str]) -> None:
    text = build_parser().format_help()
    for command in COMMANDS:
        assert command.name in text
    result = run_cli(["--help"], capsys)
    assert result.code == 0
    assert all(command.name in result.out for command in COMMANDS)


def test_shell_completion_offers_every_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COMP_LINE", "openretina ")
    result = run_cli(["-sc", "query=bash"], capsys)
    assert result.out.split() == [*(command.name for command in COMMANDS), "--help", "--version"]
