"""``openretina train``: the Hydra application behind the training command.

Hydra parses its own flags, so this module only prepares ``sys.argv`` (a relative
``--config-path`` is taken relative to the working directory, as Hydra users expect from a
command; without one the packaged configs are used), registers the packaged config tree on the
search path, and replaces Hydra's error printer with one that explains common mistakes in one
message. Lightning and torch are imported only once a run actually starts.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from openretina_cli import errors, garbage_collection
from openretina_cli.config.compose import absolutise_config_path
from openretina_cli.config.paths import (
    DEFAULT_CONFIG_NAME,
    packaged_config_dir,
    register_packaged_search_path,
)
from openretina_cli.errors import reporting_errors
from openretina_cli.evaluation import figure_jobs, figure_zygote


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Listed in ``openretina --help``; its arguments go to Hydra untouched (see `run`)."""
    commands.add_parser(
        "train",
        help="train a model from the Hydra config tree (overrides: key=value, group=option, -m sweeps)",
        add_help=False,
    )


def run(args: argparse.Namespace) -> int:
    """Run the Hydra training app on ``args.arguments`` (everything after ``openretina train``)."""
    run_train(args.arguments, prog=getattr(args, "prog", "openretina"))
    return 0


def _friendly_run_and_report(func: Callable[[], Any]) -> Any:
    """Hydra's ``run_and_report`` with one-message errors for configuration and data mistakes."""
    try:
        return func()
    except Exception as ex:
        if errors.full_error_requested():
            raise
        message = errors.describe(ex)
        if message is None:
            error = ex
            return _hydra_run_and_report(lambda: _reraise(error))
        errors.fail(message)


def _reraise(ex: Exception) -> None:
    raise ex


_hydra_run_and_report: Callable[[Callable[[], Any]], Any]


def _install_error_reporting() -> None:
    global _hydra_run_and_report
    import hydra._internal.utils as hydra_utils

    if hydra_utils.run_and_report is not _friendly_run_and_report:
        _hydra_run_and_report = hydra_utils.run_and_report
        hydra_utils.run_and_report = _friendly_run_and_report


def task(cfg: Any) -> float | None:
    """The Hydra task: one training run (imports the training stack only now)."""
    from openretina_cli.sweeps.trial_job import run_as_trial
    from openretina_cli.training.run import run_task

    return run_as_trial(lambda: run_task(cfg))  # inside a shared sweep: records the trial's result


_NO_RUN_FLAGS = ("--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--shell-completion", "-sc")


def _trains(args: Sequence[str]) -> bool:
    return not any(arg.split("=")[0] in _NO_RUN_FLAGS for arg in args)


def prewarm_training_stack(args: Sequence[str]) -> None:
    """Start importing torch and Lightning in the background while Hydra composes the config.

    Those imports are most of a run's start-up time; overlapping them with composition and data
    loading gets to the first training step sooner. Commands that do not train skip it.
    """
    if not _trains(args):
        return

    def load() -> None:
        with contextlib.suppress(Exception):  # the run imports them again and reports any error
            from openretina_cli.training.lean_lightning import import_lightning

            import_lightning()
            import openretina_models  # noqa: F401

    threading.Thread(target=load, name="openretina-prewarm", daemon=True).start()


def run_train(args: Sequence[str], prog: str = "openretina") -> None:
    """Run the Hydra training app with ``args`` (everything after ``openretina train``)."""
    garbage_collection.pause_for_startup()
    if _trains(args) and figure_jobs.can_fork():  # before any thread or torch: the report's figures
        figure_zygote.start()  # are drawn there (issue 24)
    try:
        _run_hydra_app(args, prog)
    finally:
        figure_zygote.stop()
        garbage_collection.run_ended()


def _run_hydra_app(args: Sequence[str], prog: str) -> None:
    prewarm_training_stack(args)
    import hydra

    from openretina_cli.training.resume import resume_arguments

    with reporting_errors():
        argv = resume_arguments(absolutise_config_path(args))  # resume=RUN_DIR: write into RUN_DIR
    register_packaged_search_path()
    _install_error_reporting()
    app = hydra.main(
        version_base="1.3",
        config_path=str(packaged_config_dir()),
        config_name=DEFAULT_CONFIG_NAME,
    )(task)
    saved = sys.argv
    sys.argv = [prog, *argv]
    try:
        app()
    except ValueError as ex:  # Hydra's own usage errors (e.g. --cfg with -m) are raised unreported
        usage_error = "can be specified" in str(ex) or "--resolve" in str(ex)
        if errors.full_error_requested() or not usage_error:
            raise
        errors.fail(f"{ex}. See `openretina train --hydra-help`.")
    finally:
        sys.argv = saved
