"""``openretina create-data`` and ``openretina check-data``."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openretina_cli import errors
from openretina_cli.generators import generator

# Command-line option -> generator keyword (the 1.x names keep working).
_GENERATOR_OPTIONS = ("num_colors", "num_stimuli", "num_sessions", "clip_length", "seed")


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


def create_data(parsed: argparse.Namespace) -> None:
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


def check_data(parsed: argparse.Namespace) -> int:
    """Load a dataset as training would, run the quality checks and print the report.

    On a directory in the generic HDF5 layout whose test stimuli nobody named
    (``data_io.test_names`` left unset), stimuli with repeated trials are taken as tests and every
    other stimulus as training, and the command says so. Exit status 1 when loading fails or a
    check whose action is ``fail`` finds a problem.
    """
    from omegaconf import OmegaConf

    from openretina_cli.train_app import compose_config, reporting_errors
    from openretina_cli.training.data import load_checked_dataset
    from openretina_cli.training.report import print_quality_report, print_stimuli

    directory = Path(parsed.directory).expanduser().resolve()
    overrides = [f"paths.data_dir={directory}", *parsed.overrides]
    survey = None
    with reporting_errors():
        cfg = compose_config(parsed.config_name, overrides, config_path=parsed.config_path)
        if _reads_hdf5_layout(cfg):
            from openretina_data.hdf5_reader import survey_stimuli

            survey = survey_stimuli(directory)
            if OmegaConf.is_missing(cfg.data_io, "test_names"):
                tests = [stimulus.name for stimulus in survey if stimulus.has_trials]
                cfg.data_io.test_names = tests
                print(
                    "data_io.test_names not given: "
                    + (
                        f"taking the stimuli with repeated trials as tests ({', '.join(tests)})"
                        if tests
                        else "no stimulus has repeated trials, so every stimulus is listed as training"
                    )
                    + ". Pass data_io.test_names='[...]' to choose."
                )
        checked = load_checked_dataset(cfg)
    if survey is not None:
        print_stimuli(survey, set(OmegaConf.to_container(cfg.data_io.test_names) or []))
    print_quality_report(checked.report, checked.dataset)
    return 0


def _reads_hdf5_layout(cfg: Any) -> bool:
    return str(cfg.data_io.get("_target_", "")).endswith("load_hdf5_dataset")
