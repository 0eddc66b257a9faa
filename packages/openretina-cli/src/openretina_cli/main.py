"""The ``openretina`` command: ``train``, ``eval``, ``mei``, ``create-data``, ``check-data``, ``--version``.

``train`` hands every argument after it to Hydra untouched, so Hydra's own flags (``--help``,
``--cfg``, ``-m``, ``--info``, ``-sc``...) behave exactly as Hydra users expect. The other
subcommands are small argparse commands. Nothing heavy is imported before a subcommand needs it,
which keeps ``openretina --help`` and the start of a training run fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from openretina_cli.versions import versions

PROG = "openretina"


def build_parser() -> argparse.ArgumentParser:
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
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "train",
        help="train a model from the Hydra config tree (overrides: key=value, group=option, -m sweeps)",
        add_help=False,
    )
    from openretina_cli.eval_command import add_parser as add_eval

    add_eval(commands)
    from openretina_cli.mei_command import add_parser as add_mei

    add_mei(commands)
    _add_create_data(commands)
    _add_check_data(commands)
    from openretina_cli.import_1x import add_parser as add_import_1x

    add_import_1x(commands)
    from openretina_cli.commands import compare, ensemble

    compare.add_parser(commands)
    ensemble.add_parser(commands)
    return parser


def _add_create_data(commands: argparse._SubParsersAction) -> None:
    create = commands.add_parser(
        "create-data",
        help="write a synthetic dataset (the tutorial's, or a simulated retina with ground truth)",
        description="Write a synthetic dataset in the generic HDF5 layout into DIR.",
    )
    create.add_argument("directory", metavar="DIR", help="output directory (created if missing)")
    create.add_argument(
        "--kind",
        choices=("tutorial", "retina"),
        default="tutorial",
        help="tutorial: the 1.x tutorial dataset; retina: a simulated retina with ground truth",
    )
    create.add_argument("--num-colors", type=int, help="colour channels")
    create.add_argument("--num-stimuli", type=int, help="number of stimuli")
    create.add_argument("--num-sessions", type=int, help="number of recording sessions")
    create.add_argument("--clip-length", type=int, help="frames per clip")
    create.add_argument("--seed", type=int, help="random seed (output is deterministic per seed)")
    create.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other keyword of the generator (repeatable), e.g. --option num_neurons=40",
    )


def _add_check_data(commands: argparse._SubParsersAction) -> None:
    check = commands.add_parser(
        "check-data",
        help="load a dataset, run the quality checks and print a report (exit 1 on failure)",
        description=(
            "Load DIR with the data_io config of an outer config, run its quality checks and print "
            "the report. Extra arguments are Hydra overrides, e.g. "
            "data_io.test_names='[random_noise_2]' quality_checks.min_mean_rate=0.01"
        ),
    )
    check.add_argument("directory", metavar="DIR", help="dataset directory")
    check.add_argument(
        "--config-name",
        default="hdf5_core_readout",
        help="outer config whose data_io and quality_checks are used (default: hdf5_core_readout)",
    )
    check.add_argument("--config-path", default=None, help="your own config directory (optional)")
    check.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="Hydra overrides")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``openretina`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "train":
        from openretina_cli import garbage_collection
        from openretina_cli.train_app import run_train

        run_train(args[1:], prog=PROG)
        if argv is None:  # the console script, after a successful run: nothing else runs now
            garbage_collection.exit_without_teardown(0)
        return
    if args and args[0] in ("-sc", "--shell-completion"):
        _shell_completion(args)
        return
    parser = build_parser()
    parsed, extra = parser.parse_known_args(args)
    if extra:  # `eval` takes Hydra overrides anywhere among its options; nothing else takes extras
        if getattr(parsed, "command", None) != "eval" or any(
            a.startswith("-") or "=" not in a for a in extra
        ):
            parser.parse_args(args)  # argparse's own message for what it does not know
        parsed.overrides = [*parsed.overrides, *extra]
    if parsed.command is None:
        parser.print_help()
        raise SystemExit(0)
    if parsed.command == "create-data":
        from openretina_cli.data_commands import create_data

        create_data(parsed)
    elif parsed.command == "eval":
        from openretina_cli.eval_command import run_eval

        raise SystemExit(run_eval(parsed))
    elif parsed.command == "mei":
        from openretina_cli.mei_command import run_mei

        raise SystemExit(run_mei(parsed))
    elif parsed.command == "check-data":
        from openretina_cli.data_commands import check_data

        raise SystemExit(check_data(parsed))
    elif parsed.command == "import-1x":
        from openretina_cli.import_1x import run_import

        raise SystemExit(run_import(parsed))
    elif parsed.command in ("compare", "ensemble"):
        from openretina_cli.commands import compare, ensemble

        raise SystemExit({"compare": compare, "ensemble": ensemble}[parsed.command].run(parsed))


def _shell_completion(args: list[str]) -> None:
    """Answer a shell's completion query: subcommands first, then Hydra's completion for ``train``.

    Hydra's installed completion script calls ``openretina -sc query=SHELL`` with the whole line in
    ``COMP_LINE``; for a ``train`` line we drop the word ``train`` so Hydra sees its own arguments.
    """
    line = os.environ.get("COMP_LINE", "")
    words = line.split()
    if len(words) >= 2 and words[1] == "train" and (len(words) > 2 or line.endswith(" ")):
        head, _, tail = line.partition(" train")
        os.environ["COMP_LINE"] = head + tail
        if "COMP_POINT" in os.environ:
            point = int(os.environ["COMP_POINT"])
            os.environ["COMP_POINT"] = str(max(0, point - len(" train")))
        from openretina_cli.train_app import run_train

        run_train(args, prog=PROG)
        return
    if any(arg.startswith("query=") for arg in args[1:]):
        word = words[1] if len(words) == 2 and not line.endswith(" ") else ""
        subcommands = (
            "train",
            "eval",
            "mei",
            "create-data",
            "check-data",
            "import-1x",
            "compare",
            "ensemble",
            "--help",
            "--version",
        )
        print(" ".join(name for name in subcommands if name.startswith(word)))
        return
    from openretina_cli.train_app import run_train

    run_train(args, prog=PROG)


if __name__ == "__main__":
    main()
