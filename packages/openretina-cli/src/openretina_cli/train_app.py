"""``openretina train``: the Hydra application behind the training command.

Hydra parses its own flags, so this module only prepares ``sys.argv`` (a relative
``--config-path`` is taken relative to the working directory, as Hydra users expect from a
command; without one the packaged configs are used), registers the packaged config tree on the
search path, and replaces Hydra's error printer with one that explains common mistakes in one
message. Lightning and torch are imported only once a run actually starts.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from openretina_cli import errors, garbage_collection
from openretina_cli.config_paths import (
    DEFAULT_CONFIG_NAME,
    packaged_config_dir,
    register_packaged_search_path,
)

_CONFIG_PATH_FLAGS = ("--config-path", "-cp")


def absolutise_config_path(args: Sequence[str], cwd: str | None = None) -> list[str]:
    """Rewrite a relative ``--config-path``/``-cp`` so it is relative to ``cwd``, not to this file."""
    base = cwd or os.getcwd()
    out: list[str] = []
    pending = False
    for arg in args:
        if pending:
            out.append(_absolute(arg, base))
            pending = False
            continue
        flag, eq, value = arg.partition("=")
        if flag in _CONFIG_PATH_FLAGS and eq:
            out.append(f"{flag}={_absolute(value, base)}")
        else:
            out.append(arg)
            pending = arg in _CONFIG_PATH_FLAGS
    return out


def _absolute(path: str, base: str) -> str:
    if path.startswith("pkg://") or os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(base, os.path.expanduser(path)))


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


def prewarm_training_stack(args: Sequence[str]) -> None:
    """Start importing torch and Lightning in the background while Hydra composes the config.

    Those imports are most of a run's start-up time; overlapping them with composition and data
    loading gets to the first training step sooner. Commands that do not train skip it.
    """
    if any(arg.split("=")[0] in _NO_RUN_FLAGS for arg in args):
        return

    def load() -> None:
        with contextlib.suppress(Exception):  # the run imports them again and reports any error
            import lightning.pytorch  # noqa: F401
            import openretina_models  # noqa: F401

    threading.Thread(target=load, name="openretina-prewarm", daemon=True).start()


def run_train(args: Sequence[str], prog: str = "openretina") -> None:
    """Run the Hydra training app with ``args`` (everything after ``openretina train``)."""
    garbage_collection.pause_for_startup()
    try:
        _run_hydra_app(args, prog)
    finally:
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


def compose_config(config_name: str, overrides: Sequence[str] = (), config_path: str | None = None) -> Any:
    """Compose an outer config outside a run (for ``check-data`` and tests), packaged groups included."""
    from hydra import compose, initialize_config_dir

    register_packaged_search_path()
    directory = _absolute(config_path, os.getcwd()) if config_path else str(packaged_config_dir())
    with initialize_config_dir(config_dir=directory, version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides))


@contextlib.contextmanager
def reporting_errors() -> Iterator[None]:
    """Turn configuration and data mistakes inside the block into one message and exit code 1."""
    try:
        yield
    except Exception as ex:
        if errors.full_error_requested():
            raise
        message = errors.describe(ex)
        if message is None:
            raise
        errors.fail(message)
