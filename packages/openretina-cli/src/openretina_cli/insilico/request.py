"""``openretina mei``'s options as one typed request, checked once before any model is loaded.

`MeiRequest` is what the command hands on: every later step (targets, optimisation, writing) reads
it instead of the argparse namespace, so a notebook can build one directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from openretina_cli.config.devices import check_device
from openretina_cli.errors import ConfigError

FLOAT32_MAX = 3.4e38
RMS_CONTRAST = 0.25  # the default --norm is that of a clip with this RMS value (normalised units)


@dataclass(frozen=True)
class MeiRequest:
    """What to optimise and how (the options of ``openretina mei``, defaults as there)."""

    model: str
    sessions: tuple[str, ...] | None = None
    neurons: str | None = None  # indices such as 0,3,5-9 (checked against the model later)
    frames: int | None = None
    window: str | None = None  # START:STOP in output frames
    iterations: int = 200
    plateau: int = 0
    lr: float = 10.0
    optimizer: str = "sgd"
    norm: float | None = None
    ranges: tuple[str, ...] | None = None  # MIN:MAX, once or once per channel
    temporal_sigma: float = 0.0
    spatial_sigma: float = 0.0
    jitter: int = 0
    seed: int = 0
    discriminative: str | None = None
    temperature: float = 1.0
    inner: str | None = None
    channels: str | None = None
    batch_size: int = 64
    device: str = "cpu"
    out: str | None = None
    figures: bool = True

    def check(self) -> None:
        """Raise `ConfigError` for an option that no model could use."""
        positive = {"--iterations": self.iterations, "--batch-size": self.batch_size}
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}.")
        if self.plateau < 0 or self.jitter < 0:
            raise ConfigError("--plateau and --jitter must be 0 (off) or positive.")
        for name, value in {"--lr": self.lr, "--temperature": self.temperature}.items():
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number, got {value}.")
            if value > FLOAT32_MAX:
                raise ConfigError(f"{name} {value:g} is beyond float32; use a number below 1e38.")
        if self.norm is not None and not (math.isfinite(self.norm) and self.norm > 0):
            raise ConfigError(
                f"--norm must be a positive number, got {self.norm}: it is each stimulus' L2 budget."
            )
        for name, value in {
            "--temporal-sigma": self.temporal_sigma,
            "--spatial-sigma": self.spatial_sigma,
        }.items():
            if value < 0 or not math.isfinite(value):
                raise ConfigError(f"{name} must be 0 (off) or positive, got {value}.")
        check_device(self.device)
        if self.inner and self.discriminative:
            raise ConfigError("--inner and --discriminative are different experiments; choose one.")
        if self.channels and not self.inner:
            raise ConfigError(
                "--channels selects channels of --inner LAYER; add --inner LAYER or use --neurons."
            )
