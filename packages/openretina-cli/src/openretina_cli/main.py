"""The ``openretina`` command: one table of subcommands drives dispatch, help and shell completion.

Each subcommand lives in ``openretina_cli/commands/<name>.py`` with ``add_parser(subparsers)`` and
``run(args) -> int``; adding one is a new file and a row in `COMMANDS`. Only the module of the
command being run is imported, so ``openretina --help`` and the start of a training run stay fast.
``train`` hands every argument after it to Hydra untouched, so Hydra's own flags (``--help``,
``--cfg``, ``-m``, ``--info``, ``-sc``...) behave exactly as Hydra users expect.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

from openretina_cli.versions import versions

PROG = "openretina"


@dataclass(frozen=True)
class Command:
    """One row of the table: ``openretina NAME`` runs ``MODULE.run``."""

    name: str
    module: str
    help: str
    # Hand every argument after the name to the command unparsed (Hydra parses them): args.arguments.
    raw: bool = False
    # Hydra overrides (key=value) may stand anywhere among its options; they land in args.overrides.
    overrides_anywhere: bool = False
    # From the console script, a successful run exits without tearing the heap down (see
    # `openretina_cli.garbage_collection`): a trained model's process has nothing else to do.
    fast_exit: bool = False


COMMANDS = (
    Command(
        "train",
        "openretina_cli.commands.train",
        "train a model from the Hydra config tree (overrides: key=value, group=option, -m sweeps)",
        raw=True,
        fast_exit=True,
    ),
    Command(
        "eval",
        "openretina_cli.commands.eval",
        "evaluate a trained model per neuron: neurons.csv, summary.json, figures and report.html",
        overrides_anywhere=True,
    ),
    Command(
        "mei",
        "openretina_cli.commands.mei",
        "optimise stimuli for a trained model: MEIs, most discriminative stimuli, inner units",
    ),
    Command(
        "create-data",
        "openretina_cli.commands.create_data",
        "write a synthetic dataset (the tutorial's, or a simulated retina with ground truth)",
    ),
    Command(
        "check-data",
        "openretina_cli.commands.check_data",
        "load a dataset, run the quality checks and print a report (exit 1 on failure)",
    ),
    Command(
        "import-1x",
        "openretina_cli.commands.import_1x",
        "convert an openretina 1.x checkpoint (.ckpt) or published model name into our format",
    ),
    Command(
        "characterise",
        "openretina_cli.commands.characterise",
        "characterise every model neuron: chirp, bars, flashes, gratings, receptive fields, types",
        fast_exit=True,
    ),
    Command(
        "compare",
        "openretina_cli.commands.compare",
        "compare finished runs and sweeps: a leaderboard (ranked by validation), curves, scatter, HTML",
    ),
    Command(
        "ensemble",
        "openretina_cli.commands.ensemble",
        "average the predictions of several trained runs into one model (saved like any model)",
    ),
)
BY_NAME = {command.name: command for command in COMMANDS}


def load(command: Command) -> ModuleType:
    return importlib.import_module(command.module)


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser: the chosen command's own parser, every other one as a help line."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train and evaluate models of retinal responses to movies.",
        epilog=(
            "Run `openretina train --help` for the training app's config groups and options "
            "(Hydra help), and `openretina train --hydra-help` for Hydra's flags."
        ),
    )
    parser.add_argument(
        "--version",
        action="version",
        version=" ".join(f"{name} {version}" for name, version in versions().items()),
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        if command.name == chosen:
            load(command).add_parser(subparsers)
        else:
            subparsers.add_parser(command.name, help=command.help, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``openretina`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-sc", "--shell-completion"):
        _shell_completion(args)
        return
    command = BY_NAME.get(args[0]) if args else None
    if command is not None and command.raw:
        parsed = argparse.Namespace(command=command.name, arguments=args[1:], prog=PROG)
    else:
        parser = build_parser(command.name if command else None)
        parsed, extra = parser.parse_known_args(args)
        if extra:  # only a command that takes Hydra overrides anywhere accepts extra words
            if (
                command is None
                or not command.overrides_anywhere
                or any(a.startswith("-") or "=" not in a for a in extra)
            ):
                parser.parse_args(args)  # argparse's own message for what it does not know
            parsed.overrides = [*parsed.overrides, *extra]
        if parsed.command is None:
            parser.print_help()
            raise SystemExit(0)
    code = load(command).run(parsed)
    if code:
        raise SystemExit(code)
    if command.fast_exit and argv is None:  # the console script, after a successful run
        from openretina_cli import garbage_collection

        garbage_collection.exit_without_teardown(0)


def _shell_completion(args: list[str]) -> None:
    """Answer a shell's completion query: subcommands first, then Hydra's completion for ``train``.

    Hydra's installed completion script calls ``openretina -sc query=SHELL`` with the whole line in
    ``COMP_LINE``; for a ``train`` line we drop the word ``train`` so Hydra sees its own arguments.
    """
    from openretina_cli.commands.train import run_train

    line = os.environ.get("COMP_LINE", "")
    words = line.split()
    if len(words) >= 2 and words[1] == "train" and (len(words) > 2 or line.endswith(" ")):
        head, _, tail = line.partition(" train")
        os.environ["COMP_LINE"] = head + tail
        if "COMP_POINT" in os.environ:
            point = int(os.environ["COMP_POINT"])
            os.environ["COMP_POINT"] = str(max(0, point - len(" train")))
        run_train(args, prog=PROG)
        return
    if any(arg.startswith("query=") for arg in args[1:]):
        word = words[1] if len(words) == 2 and not line.endswith(" ") else ""
        names = [command.name for command in COMMANDS] + ["--help", "--version"]
        print(" ".join(name for name in names if name.startswith(word)))
        return
    run_train(args, prog=PROG)


if __name__ == "__main__":
    main()
