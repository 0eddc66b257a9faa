"""Composing the Hydra config tree outside Hydra's own app: for check-data, eval and tests.

A relative ``--config-path`` means relative to the working directory, as users of a command
expect (Hydra's app would take it relative to the module that declares the app), so both the
train command and `compose_config` rewrite it here first.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from openretina_cli.config.paths import packaged_config_dir, register_packaged_search_path

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


def compose_config(config_name: str, overrides: Sequence[str] = (), config_path: str | None = None) -> Any:
    """Compose an outer config outside a run (for ``check-data`` and tests), packaged groups included."""
    from hydra import compose, initialize_config_dir

    register_packaged_search_path()
    directory = _absolute(config_path, os.getcwd()) if config_path else str(packaged_config_dir())
    with initialize_config_dir(config_dir=directory, version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides))
