"""What the commands that take a trained model (``eval``, ``mei``) accept as MODEL.

MODEL is a run directory (its exported ``model/`` is used, and its ``config.yaml`` tells which data
it was trained on), the exported ``model/`` directory itself, or anything else
`openretina_models.load_model` accepts. Every way this can go wrong ends in one `ConfigError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openretina_cli.errors import ConfigError

RUN_CONFIG = "config.yaml"
RUN_MODEL_DIR = "model"
MODEL_METADATA = "model.json"


@dataclass(frozen=True)
class ModelSource:
    """Where a MODEL argument points: the model to load and, for a run, the run itself."""

    argument: str
    model_path: str
    run_dir: Path | None  # the run directory, when MODEL is one (or its model/ folder)

    @property
    def run_config(self) -> Path | None:
        """The run's resolved ``config.yaml``, when there is one."""
        if self.run_dir is None:
            return None
        path = self.run_dir / RUN_CONFIG
        return path if path.is_file() else None

    def default_output(self, folder: str) -> Path | None:
        """``<run>/<folder>``, the command's own output folder in a run; None for a bare model."""
        return None if self.run_dir is None else self.run_dir / folder

    def inputs(self, cfg: Any = None) -> list[tuple[str, Path | None]]:
        """What a command reads from (the run, the model, the data), which its outputs may not touch."""
        model = Path(self.model_path).expanduser()
        found: list[tuple[str, Path | None]] = [
            ("run", self.run_dir),
            ("model", model if model.is_dir() else None),  # a checkpoint file: --out cannot be a file anyway
        ]
        data_dir = None
        if cfg is not None:
            from omegaconf import OmegaConf

            data_dir = OmegaConf.select(
                cfg, "data_io.data_dir", default=None, throw_on_resolution_failure=False
            )
            if data_dir is None:
                data_dir = OmegaConf.select(
                    cfg, "paths.data_dir", default=None, throw_on_resolution_failure=False
                )
        if isinstance(data_dir, str) and data_dir:
            found.append(("data", Path(data_dir).expanduser()))
        return found


def resolve(argument: str) -> ModelSource:
    """Work out what MODEL names, without loading anything."""
    path = Path(argument).expanduser()
    if path.is_dir():
        if (path / MODEL_METADATA).is_file():
            run_dir = path.parent if (path.parent / RUN_CONFIG).is_file() else None
            return ModelSource(argument, str(path), run_dir)
        if (path / RUN_MODEL_DIR / MODEL_METADATA).is_file():
            return ModelSource(argument, str(path / RUN_MODEL_DIR), path)
        if (path / RUN_CONFIG).is_file() or (path / ".hydra").is_dir():
            raise ConfigError(
                f"{path}: this run directory has no exported model ({RUN_MODEL_DIR}/{MODEL_METADATA}); "
                "the run did not finish. Pass a finished run, or its model/ folder."
            )
        raise ConfigError(
            f"{path}: not a run directory or a model directory (no {MODEL_METADATA} in it or in "
            f"{RUN_MODEL_DIR}/). Pass a run directory from `openretina train` or its model/ folder."
        )
    if path.suffix in (".json", ".safetensors") and path.parent.is_dir():
        return resolve(str(path.parent))
    if path.exists():
        return ModelSource(argument, str(path), None)  # a file load_model may know (e.g. a 1.x .ckpt)
    if "/" in argument or argument.startswith("."):
        raise ConfigError(f"{argument}: no such file or directory. Pass a run directory or a model folder.")
    return ModelSource(argument, argument, None)  # a published model name, for load_model


def load(source: ModelSource, device: str = "cpu") -> Any:
    """The model MODEL names, in eval mode; one `ConfigError` for anything load_model rejects."""
    from openretina_models import CheckpointError, load_model

    try:
        return load_model(source.model_path, device=device)
    except CheckpointError as ex:
        raise ConfigError(f"MODEL {source.argument}: {ex}") from None
    except FileNotFoundError as ex:
        raise ConfigError(
            f"MODEL {source.argument}: {ex}. Pass a run directory, a model folder or a known model name."
        ) from None
