"""Types of the run-level and dataloader keys, checked before anything is built.

Hydra composes plain YAML, so a typo in an outer config (``batchsize: 32``) or a wrong type on
the command line (``seed=abc``) would otherwise surface deep inside training. Merging the config
into these structured schemas turns both into a `ConfigError` naming the key. The schemas hold
types only: the defaults live in the YAML (``configs/base.yaml`` and the group options), so a key
left out is an error here, never a silent fallback.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException, ValidationError

from openretina_cli.errors import ConfigError, unknown_key_message

OBJECTIVE_DIRECTIONS = ("maximize", "minimize")
LOSSES = ("poisson", "mse", "correlation")
MATMUL_PRECISIONS = ("highest", "high", "medium")
READOUT_INITS = ("random", "sta")


@dataclass
class PathsSchema:
    cache_dir: str = MISSING
    data_dir: str | None = MISSING
    log_dir: str = MISSING
    output_dir: str = MISSING
    load_model_path: str | None = MISSING


@dataclass
class DataloaderSchema:
    batch_size: int = MISSING
    train_chunk_size: int = MISSING
    clip_length: int = MISSING
    num_val_clips: int = MISSING
    max_val_fraction: float | None = MISSING
    allow_over_boundaries: bool = MISSING
    val_clip_indices: list[int] | None = MISSING


@dataclass
class RunSchema:
    """The run-level keys every outer config has (names as in openretina 1.x; values in base.yaml)."""

    exp_name: str = MISSING
    seed: int = MISSING
    check_stimuli_responses_match: bool = MISSING
    only_train_readout: bool = MISSING
    objective_target: str = MISSING
    objective_direction: str | None = MISSING
    matmul_precision: str = MISSING
    loss: str = MISSING
    resume: str | None = MISSING
    report: bool = MISSING
    baseline: bool = MISSING  # the linear-nonlinear baseline beside the model in the evaluation
    readout_init: str = MISSING
    frame_counts_at_hz: float | None = MISSING
    paths: PathsSchema = field(default_factory=PathsSchema)
    dataloader: DataloaderSchema = field(default_factory=DataloaderSchema)


RUN_LEVEL_KEYS = tuple(name for name in RunSchema.__dataclass_fields__ if name not in ("paths", "dataloader"))
GROUP_KEYS = (
    "paths",
    "data_io",
    "dataloader",
    "quality_checks",
    "model",
    "optimizer",
    "lr_scheduler",
    "trainer",
    "logger",
    "training_callbacks",
)


def validate(cfg: DictConfig) -> None:
    """Raise `ConfigError` for unknown, missing or mistyped run-level, paths and dataloader keys."""
    top_level = set(cfg.keys())
    allowed = set(RUN_LEVEL_KEYS) | set(GROUP_KEYS) | {"hydra"}
    unknown = sorted(top_level - allowed)
    if unknown:
        raise ConfigError(unknown_key_message(unknown[0], sorted(allowed - {"hydra"}), "the outer config"))
    missing_groups = [key for key in GROUP_KEYS if key not in top_level]
    if missing_groups:
        raise ConfigError(
            f"The outer config has no '{missing_groups[0]}' section. Add `- {missing_groups[0]}: <option>` "
            "to its defaults list (see configs/template_outer_config.yaml)."
        )
    absent = [key for key in RUN_LEVEL_KEYS if key not in top_level]
    if absent:
        raise ConfigError(
            f"The outer config has no '{absent[0]}'. Start its defaults list with `- base` "
            f"(configs/base.yaml holds every run-level key), or set `{absent[0]}: VALUE` in it."
        )
    missing = sorted(key for key in OmegaConf.missing_keys(cfg) if not str(key).startswith("hydra."))
    if missing:
        raise ConfigError(
            f"Missing required value '{missing[0]}' (it is ??? in the config). Set it on the command line, "
            f"e.g. `openretina train {missing[0]}=VALUE`, or in your outer config."
        )
    subset = {key: _raw(cfg, key) for key in (*RUN_LEVEL_KEYS, "paths", "dataloader") if key in top_level}
    if isinstance(subset.get("paths"), dict):  # extra paths (e.g. paths.responses_path) are allowed
        subset["paths"] = {k: v for k, v in subset["paths"].items() if k in PathsSchema.__dataclass_fields__}
    schema = OmegaConf.structured(RunSchema)
    try:
        merged = OmegaConf.merge(schema, OmegaConf.create(subset))
        OmegaConf.to_container(merged, resolve=True, throw_on_missing=True)
    except ConfigKeyError as ex:
        full_key = str(ex.full_key or ex.key)
        parent, _, _ = full_key.rpartition(".")
        node: Any = schema if not parent else OmegaConf.select(schema, parent)
        valid = list(node.keys()) if node is not None else []
        raise ConfigError(unknown_key_message(full_key, valid)) from None
    except MissingMandatoryValue as ex:
        raise ConfigError(
            f"The config has no value for '{ex.full_key}'. Set it in the config group's YAML or with "
            f"`{ex.full_key}=VALUE`."
        ) from None
    except ValidationError as ex:
        expected = _expected_type(str(ex.full_key))
        raise ConfigError(
            f"Wrong type for config key '{ex.full_key}': got {ex.value!r}, expected {expected}. "
            f"Set it with `{ex.full_key}=VALUE`."
        ) from None
    except OmegaConfBaseException:
        raise
    _check_choice(cfg, "objective_direction", (*OBJECTIVE_DIRECTIONS, None))
    _check_choice(cfg, "loss", LOSSES)
    _check_choice(cfg, "matmul_precision", MATMUL_PRECISIONS)
    _check_choice(cfg, "readout_init", READOUT_INITS)


def _raw(cfg: DictConfig, key: str) -> Any:
    """The node as written, resolved, so the schema sees final values and interpolations work."""
    node = cfg[key]
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)
    return node


def _expected_type(full_key: str) -> str:
    node: Any = RunSchema
    for part in full_key.split("."):
        hints = typing.get_type_hints(node) if hasattr(node, "__dataclass_fields__") else {}
        if part not in hints:
            return "a different type"
        node = hints[part]
    return getattr(node, "__name__", None) or str(node).replace("typing.", "")


def _check_choice(cfg: DictConfig, key: str, choices: tuple[Any, ...]) -> None:
    value = cfg.get(key)
    if value not in choices:
        from openretina_cli.errors import did_you_mean

        names = [str(choice) for choice in choices if choice is not None]
        hint = did_you_mean(str(value), names, f"{key}=")
        raise ConfigError(
            f"Invalid value {value!r} for config key '{key}'.{hint} "
            f"Choose one of: {', '.join(names)} (`{key}=VALUE`)."
        )
