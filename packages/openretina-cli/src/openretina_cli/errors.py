"""Turn configuration and data mistakes into one message a person can act on.

Hydra and OmegaConf report mistakes as exceptions whose text names the problem but rarely the
fix. ``describe`` rewrites the ones people make every day (a misspelled key, an unknown group
option, a missing ``???`` value, a wrong type, a data error) into a single message that names the
key, the closest valid names and the command-line override that sets it. Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import sys
from collections.abc import Iterable, Iterator
from typing import Any, NoReturn


class ConfigError(ValueError):
    """A configuration value the cli cannot use; the message says which key and how to fix it."""


def closest(word: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` candidates that look like ``word`` (difflib ratio >= 0.6)."""
    return difflib.get_close_matches(word, sorted(set(candidates)), n=n, cutoff=0.6)


def did_you_mean(word: str, candidates: Iterable[str], prefix: str = "") -> str:
    """`` Did you mean: a.b, a.c?`` or an empty string when nothing is close."""
    matches = closest(word, candidates)
    if not matches:
        return ""
    return " Did you mean: " + ", ".join(f"{prefix}{match}" for match in matches) + "?"


def unknown_key_message(full_key: str, valid_keys: Iterable[str], where: str = "") -> str:
    parent, _, key = full_key.rpartition(".")
    prefix = f"{parent}." if parent else ""
    valid = sorted(str(k) for k in valid_keys)
    location = f" in {where}" if where else ""
    hint = did_you_mean(key, valid, prefix)
    listing = f" Valid keys here: {', '.join(valid)}." if valid and not hint else ""
    return (
        f"Unknown config key '{full_key}'{location}.{hint}{listing} "
        f"Set an existing key with `{prefix}<key>=VALUE`, or add a new one with `+{full_key}=VALUE`."
    )


def _omegaconf_message(ex: Exception) -> str | None:
    from omegaconf.errors import (
        ConfigAttributeError,
        ConfigKeyError,
        MissingMandatoryValue,
        ValidationError,
    )

    full_key = str(getattr(ex, "full_key", "") or getattr(ex, "key", "") or "")
    if isinstance(ex, MissingMandatoryValue):
        return (
            f"Missing required value '{full_key}' (it is ??? in the config). "
            f"Set it on the command line, e.g. `openretina train {full_key}=VALUE`, or in your outer config."
        )
    if isinstance(ex, ConfigAttributeError | ConfigKeyError) and full_key:
        parent = getattr(ex, "parent_node", None)
        keys = list(parent.keys()) if hasattr(parent, "keys") else []
        return unknown_key_message(full_key, keys)
    if isinstance(ex, ValidationError) and full_key:
        value = getattr(ex, "value", None)
        first_line = str(ex).splitlines()[0]
        return (
            f"Wrong type for config key '{full_key}' (value {value!r}): {first_line}. "
            f"Set it with `{full_key}=VALUE` using a value of the right type."
        )
    return None


def describe(ex: BaseException) -> str | None:
    """A one-message explanation of a mistake people make, or None for a genuine bug."""
    from hydra.errors import (
        ConfigCompositionException,
        InstantiationException,
        MissingConfigException,
        OverrideParseException,
        SearchPathException,
    )
    from omegaconf.errors import OmegaConfBaseException
    from openretina_data import DataError

    if isinstance(ex, ConfigError):
        return str(ex)
    if isinstance(ex, DataError):
        return f"Data error: {ex}"
    if isinstance(ex, MissingConfigException):
        return _missing_config_message(ex)
    if isinstance(ex, ConfigCompositionException | InstantiationException):
        cause = ex.__cause__
        if isinstance(cause, OmegaConfBaseException):
            message = _omegaconf_message(cause)
            if message:
                return message
        if isinstance(cause, ConfigError | DataError):
            return describe(cause)
        return str(ex).strip()
    if isinstance(ex, OverrideParseException | SearchPathException):
        return str(ex).strip()
    if isinstance(ex, OmegaConfBaseException):
        return _omegaconf_message(ex)
    return None


def _missing_config_message(ex: Any) -> str:
    from openretina_cli.extras import missing_plugin_message

    missing = str(ex.missing_cfg_file or "")
    plugin = missing_plugin_message(missing)
    if plugin is not None:
        return plugin
    options = [str(option) for option in (ex.options or [])]
    group, _, option = missing.rpartition("/")
    if not group:
        match = re.search(r"Cannot find primary config '([^']+)'", str(ex))
        name = match.group(1) if match else missing
        return (
            f"No config named '{name}' in the config search path. "
            "Pass --config-name with one of the outer configs (see `openretina train --help`) "
            "and --config-path DIR for your own config directory."
        )
    hint = did_you_mean(option, options, f"{group}=")
    listing = ", ".join(options) if options else "(none)"
    return (
        f"Unknown option '{option}' for config group '{group}'.{hint} "
        f"Available options: {listing}. Choose one with `{group}=OPTION`."
    )


def print_error(message: str) -> None:
    """Write one error message to stderr (rich formatting when stderr is a terminal)."""
    try:
        from rich.console import Console
        from rich.markup import escape

        Console(stderr=True, highlight=False, soft_wrap=True).print(
            f"[bold red]Error:[/bold red] {escape(message)}", markup=True
        )
    except Exception:
        sys.stderr.write(f"Error: {message}\n")


def full_error_requested() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def fail(message: str, code: int = 1) -> NoReturn:
    print_error(message)
    raise SystemExit(code)


@contextlib.contextmanager
def reporting_errors() -> Iterator[None]:
    """Turn configuration and data mistakes inside the block into one message and exit code 1."""
    try:
        yield
    except Exception as ex:
        if full_error_requested():
            raise
        message = describe(ex)
        if message is None:
            raise
        fail(message)
