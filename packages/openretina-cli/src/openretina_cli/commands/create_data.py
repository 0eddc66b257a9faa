"""``openretina create-data DIR``: write a synthetic dataset (the tutorial's or a simulated retina).

The writers live in `openretina_data.synthetic`; this command maps its options (1.x names) onto
their keywords and checks every ``--option NAME=VALUE`` against the writer's signature first.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openretina_cli import errors
from openretina_cli.config.generators import generator

# Command-line option -> generator keyword (the 1.x names keep working).
_GENERATOR_OPTIONS = ("num_colors", "num_stimuli", "num_sessions", "clip_length", "seed")


def add_parser(commands: argparse._SubParsersAction) -> None:
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


def parse_option(text: str) -> tuple[str, Any]:
    """``name=value`` with the value read as YAML (numbers, booleans, lists)."""
    import yaml

    name, eq, value = text.partition("=")
    if not eq or not name:
        errors.fail(f"--option expects NAME=VALUE, got {text!r} (e.g. --option num_neurons=40).")
    return name.strip().replace("-", "_"), yaml.safe_load(value)


def generator_options(parsed: argparse.Namespace, writer: Callable[..., Any]) -> dict[str, Any]:
    options = {
        name: getattr(parsed, name) for name in _GENERATOR_OPTIONS if getattr(parsed, name) is not None
    }
    options.update(parse_option(text) for text in parsed.option)
    parameters = inspect.signature(writer).parameters
    accepted = [name for name in parameters if name != "directory"]
    for name, value in options.items():
        default = parameters[name].default if name in parameters else None
        if isinstance(default, bool | int | float) and not _fits(value, type(default)):
            errors.fail(
                f"create-data --kind {parsed.kind}: {name}={value!r} must be a {type(default).__name__} "
                f"(default {default!r})."
            )
    for name in options:
        if name not in accepted:
            flag = "--" + name.replace("_", "-")
            hint = errors.did_you_mean(name, accepted)
            errors.fail(
                f"create-data --kind {parsed.kind} has no option '{flag}'.{hint} "
                f"Its options: {', '.join(accepted)} (pass others as --option NAME=VALUE)."
            )
    return options


def _fits(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, int | float) and not isinstance(value, bool)


def run(parsed: argparse.Namespace) -> int:
    from openretina_data import DataError

    writer = generator(parsed.kind)
    options = generator_options(parsed, writer)
    try:
        written = writer(Path(parsed.directory), **options)
    except DataError as ex:
        errors.fail(f"Data error: {ex}")
    except (ValueError, TypeError, OverflowError, MemoryError) as ex:  # a generator option it cannot use
        errors.fail(f"create-data --kind {parsed.kind}: {ex}. Check the options (--help lists them).")
    print(f"Wrote the {parsed.kind} dataset to {written if written is not None else parsed.directory}")
    return 0
