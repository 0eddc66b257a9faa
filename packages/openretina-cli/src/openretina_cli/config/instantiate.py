"""Build objects from config nodes, with mistakes reported by key instead of deep in a constructor."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from openretina_cli.errors import ConfigError, unknown_key_message

_HYDRA_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")


def locate_target(node: DictConfig, key: str) -> Callable[..., Any]:
    from hydra.utils import get_object

    target = node.get("_target_")
    if not target:
        raise ConfigError(f"'{key}' needs a `_target_:` naming the class or function to build.")
    try:
        return get_object(str(target))
    except Exception as ex:
        raise ConfigError(
            f"'{key}._target_' is '{target}', which cannot be imported ({ex}). "
            f"Set {key}._target_ to an importable class or function."
        ) from None


def check_arguments(
    function: Callable[..., Any], given: list[str], key: str, skip: tuple[str, ...] = ()
) -> None:
    """Raise a ConfigError naming ``key.<name>`` for arguments ``function`` does not accept."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    accepted = [name for name in parameters if name not in skip and name != "self"]
    for name in given:
        if name not in parameters:
            raise ConfigError(unknown_key_message(f"{key}.{name}", accepted))


def instantiate(node: DictConfig, key: str, **extra: Any) -> Any:
    """``hydra.utils.instantiate`` after checking ``node``'s keys against the target's signature."""
    from hydra.utils import instantiate as hydra_instantiate

    target = locate_target(node, key)
    given = [str(name) for name in node if str(name) not in _HYDRA_KEYS]
    check_arguments(target, given, key)
    return hydra_instantiate(node, **extra)


def allow_local_mlflow_store(node: DictConfig | None) -> None:
    """MLflow refuses its file store unless told otherwise; our mlflow logger config uses one."""
    if node is None:
        return
    for child in node.values():
        if isinstance(child, DictConfig) and str(child.get("tracking_uri") or "").startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")


def instantiate_named(node: DictConfig | None, key: str) -> list[Any]:
    """Each non-null entry of a ``{name: {_target_: ...}}`` group (loggers, callbacks), in order."""
    if node is None:
        return []
    if key == "logger":
        allow_local_mlflow_store(node)
    built = []
    for name, child in node.items():
        if child is None:
            continue
        if not isinstance(child, DictConfig) or "_target_" not in child:
            raise ConfigError(
                f"'{key}.{name}' must be a mapping with a `_target_:` (got {OmegaConf.to_yaml(child)!r}); "
                f"remove it with `~{key}.{name}` or set it to null."
            )
        built.append(instantiate(child, f"{key}.{name}"))
    return built
