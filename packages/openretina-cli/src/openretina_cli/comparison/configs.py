"""Run configs as flat ``dotted.key -> value`` maps, and the keys whose values differ between runs."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# Keys that differ between any two runs without saying anything about the model: where files go.
IGNORED_PREFIXES = ("paths.", "hydra.", "logger.")
IGNORED_SUFFIXES = ("output_dir", "log_dir", "save_dir", "dirpath", "run_dir", "root_dir")


def flat_config(path: Path) -> dict[str, Any] | None:
    """The run's ``config.yaml`` flattened to dotted keys (lists stay values); None if unreadable."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    return flatten(data) if isinstance(data, Mapping) else None


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def differing_keys(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Keys whose value is not the same in every config (a key missing in one counts as differing)."""
    if len(configs) < 2:
        return []
    keys = sorted({key for config in configs for key in config})
    differing = []
    for key in keys:
        if key.startswith(IGNORED_PREFIXES) or key.endswith(IGNORED_SUFFIXES):
            continue
        values = {json.dumps(config.get(key, "<missing>"), sort_keys=True, default=str) for config in configs}
        if len(values) > 1:
            differing.append(key)
    return differing


def show(value: Any) -> str:
    """A config value as a short table cell."""
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)
