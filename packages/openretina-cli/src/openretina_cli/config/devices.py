"""The ``--device`` option of the commands that run a model: checked before any work."""

from __future__ import annotations

from openretina_cli.errors import ConfigError


def check_device(name: str, option: str = "--device") -> None:
    """Raise `ConfigError` unless ``name`` is a torch device this machine has."""
    import torch

    valid = "cpu, cuda, cuda:N" + (", mps" if torch.backends.mps.is_available() else "")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"{option} {name!r} is not a torch device; use one of {valid}.") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"{option} {name!r}: openretina runs on {valid}.")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{option} {name}: torch sees no CUDA device here; use {option} cpu.")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"{option} {name}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                f"cuda:0..cuda:{torch.cuda.device_count() - 1}."
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{option} {name}: MPS is not available on this machine; use {option} cpu.")
