"""Resume a killed run: same run directory, same config, last checkpoint, same numbers.

``openretina train resume=RUN_DIR`` continues the run in ``RUN_DIR`` with the config it saved
(``RUN_DIR/config.yaml``), not with whatever the config files say today. Before Hydra starts,
`resume_arguments` points Hydra's run directory at ``RUN_DIR`` (and stops it overwriting the
run's ``.hydra/`` record); inside the run, `resumed_config` loads the saved config and refuses
command-line overrides that would change the result, and `resume_checkpoint` finds
``last.ckpt``. Lightning restores weights, optimizer, schedulers, callbacks and the epoch from it;
`ResumeState` adds what Lightning leaves out: the random number generators and an early-stopping
decision taken in the epoch the checkpoint was written. The batch order needs nothing extra: it
is seeded by (seed, epoch), and the epoch comes from the restored trainer.
"""

from __future__ import annotations

import logging
import os
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, ListConfig, OmegaConf

from openretina_cli.errors import ConfigError

log = logging.getLogger("openretina")

_RESUME_ARGUMENT = re.compile(r"^\+{0,2}resume=")
_MULTIRUN_FLAGS = ("-m", "--multirun")
LAST_CHECKPOINT = "last.ckpt"

# Keys a resumed run may change: they decide how long and where it runs, not what it computes.
CHANGEABLE_ON_RESUME = (
    "trainer.max_epochs",
    "trainer.min_epochs",
    "trainer.max_steps",
    "trainer.max_time",
    "trainer.enable_progress_bar",
    "trainer.log_every_n_steps",
    "trainer.accelerator",
    "trainer.devices",
    "paths.cache_dir",
    "paths.log_dir",
    "matmul_precision",
)


def run_dir_of(value: str | Path) -> Path:
    """The run directory named by ``resume=`` (a run directory, or a checkpoint file inside one)."""
    path = Path(str(value)).expanduser().absolute()
    if path.suffix == ".ckpt":
        parent = path.parent
        return parent.parent if parent.name == "checkpoints" else parent
    return path


def resume_value(args: Sequence[str]) -> str | None:
    """The value of a ``resume=...`` override among command-line ``args`` (unquoted), if any."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    found = [arg for arg in args if _RESUME_ARGUMENT.match(arg)]
    if not found:
        return None
    override = OverridesParser.create().parse_override(found[-1])
    value = override.value()
    return None if value in (None, "") else str(value)


def resume_arguments(args: Sequence[str]) -> list[str]:
    """``args`` plus the Hydra overrides that make a resumed run write into its own directory."""
    value = resume_value(args)
    if value is None:
        return list(args)
    if any(arg in _MULTIRUN_FLAGS for arg in args):
        raise ConfigError(
            f"resume={value} continues one run and cannot be combined with -m/--multirun. "
            "Resume each run of a sweep separately: openretina train resume=RUN_DIR."
        )
    run_dir = run_dir_of(value)
    if not run_dir.is_dir():
        raise ConfigError(
            f"resume={value}: no such run directory ({run_dir}). Pass the directory of an earlier "
            "run (<log_dir>/runs/<exp_name>/<timestamp>) or its checkpoints/last.ckpt."
        )
    extra = []
    if not _overrides_key(args, "hydra.run.dir"):
        extra.append(f"hydra.run.dir={_quoted(run_dir)}")
    if not _overrides_key(args, "hydra.output_subdir"):
        extra.append("hydra.output_subdir=null")  # keep the run's original .hydra/ record
    return [*args, *extra]


def _overrides_key(args: Sequence[str], key: str) -> bool:
    return any(arg.lstrip("+~").split("=", 1)[0] == key for arg in args)


def _quoted(path: Path) -> str:
    text = str(path).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def config_for_run(cfg: DictConfig, run_dir: Path) -> DictConfig:
    """``cfg`` itself, or for ``resume=RUN_DIR`` the resumed run's saved config (`resumed_config`)."""
    if not cfg.get("resume"):
        return cfg
    from hydra.core.hydra_config import HydraConfig

    resumed = resumed_config(cfg, run_dir, [str(o) for o in HydraConfig.get().overrides.task])
    if _process_rank() == 0:
        keep_earlier_metrics(run_dir)
    return resumed


def _process_rank() -> int:
    for name in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        if name in os.environ:
            return int(os.environ[name])
    return 0


def keep_earlier_metrics(run_dir: Path) -> list[Path]:
    """Move the CSV logger's metrics aside; Lightning deletes ``metrics.csv`` when a run resumes.

    ``csv/`` then holds the epochs after the resume, and ``csv.until_resume_1/`` (2, 3, ... for
    later resumes) the ones before it.
    """
    kept = []
    for path in sorted(run_dir.glob("**/metrics.csv")):
        folder = path.parent
        if ".until_resume_" in str(path.relative_to(run_dir)):
            continue  # kept by an earlier resume
        if folder.resolve() == run_dir.resolve():  # a logger writing straight into the run directory
            number = 1 + len(list(folder.glob("metrics.until_resume_*.csv")))
            target = path.with_name(f"metrics.until_resume_{number}.csv")
            path.rename(target)
        else:
            number = 1 + len(list(folder.parent.glob(f"{folder.name}.until_resume_*")))
            target = folder.with_name(f"{folder.name}.until_resume_{number}")
            folder.rename(target)
            target = target / path.name
        kept.append(target)
    return kept


def resumed_config(cfg: DictConfig, run_dir: Path, task_overrides: Sequence[str]) -> DictConfig:
    """The config saved by the run in ``cfg.resume``, with the command line's harmless changes.

    ``cfg`` is the config Hydra composed for this invocation and ``task_overrides`` the overrides
    given on its command line. An override that changes anything outside `CHANGEABLE_ON_RESUME`
    is an error: the continued run would no longer be the run that was started.
    """
    source = run_dir_of(str(cfg.resume))
    if source.resolve() != run_dir.resolve():
        raise ConfigError(
            f"resume={cfg.resume} continues the run in {source}, but this run writes to {run_dir}. "
            "Remove the hydra.run.dir override: a resumed run writes into the directory it continues."
        )
    saved = _saved_config(source)
    changes: dict[str, Any] = {}
    conflicts: list[str] = []
    for key, deleted in _override_keys(task_overrides):
        if key == "resume" or key == "hydra" or key.startswith("hydra."):
            continue
        if deleted:
            conflicts.append(f"~{key} (removes a key of the saved config)")
            continue
        for leaf, old, new in _differences(key, _value(saved, key), _value(cfg, key)):
            if leaf in CHANGEABLE_ON_RESUME:
                changes[leaf] = new
            else:
                conflicts.append(f"{leaf} ({_show(old)} -> {_show(new)})")
    if conflicts:
        raise ConfigError(
            f"resume={cfg.resume} continues that run with its saved config ({source / 'config.yaml'}), "
            f"but these overrides would change it: {'; '.join(conflicts)}. Remove them to resume, or "
            f"start a new run from the trained model with paths.load_model_path={source / 'model'}. "
            f"Only {', '.join(CHANGEABLE_ON_RESUME)} may change on resume."
        )
    for key, value in changes.items():
        log.warning("resume: %s changed from %s to %s", key, _show(_value(saved, key)), _show(value))
        OmegaConf.update(saved, key, value, force_add=True)
    saved.resume = str(source)
    return saved


def _saved_config(run_dir: Path) -> DictConfig:
    resolved = run_dir / "config.yaml"
    if resolved.is_file():
        config = OmegaConf.load(resolved)
    else:
        # Killed before training started: Hydra's record of the composed config is all there is.
        composed = run_dir / ".hydra" / "config.yaml"
        if not composed.is_file():
            raise ConfigError(
                f"resume={run_dir}: not an openretina run directory (no config.yaml or .hydra/config.yaml). "
                "Pass the directory of an earlier run."
            )
        config = OmegaConf.load(composed)
    assert isinstance(config, DictConfig)
    return config


def _override_keys(overrides: Sequence[str]) -> list[tuple[str, bool]]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    keys = []
    for override in parsed:
        key = override.key_or_group.replace("/", ".")
        keys.append((key, override.is_delete()))
    return keys


_ABSENT = object()


def _value(cfg: DictConfig, key: str) -> Any:
    node = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False)
    if isinstance(node, DictConfig | ListConfig):
        return OmegaConf.to_container(node, resolve=True)
    return node


def _differences(key: str, old: Any, new: Any) -> list[tuple[str, Any, Any]]:
    """The leaves under ``key`` whose values differ, as (dotted key, old, new)."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for name in sorted(set(old) | set(new), key=str):
            found.extend(_differences(f"{key}.{name}", old.get(name, _ABSENT), new.get(name, _ABSENT)))
        return found
    return [] if old == new else [(key, old, new)]


def _show(value: Any) -> str:
    return "<absent>" if value is _ABSENT else repr(value)


def resume_checkpoint(cfg: DictConfig, run_dir: Path) -> str | None:
    """The checkpoint to continue from: ``cfg.resume`` itself if it is a file, else the run's last.ckpt.

    None when the run was killed before its first checkpoint: it then starts again from the
    beginning, in the same directory and with the same config, which gives the same result.
    """
    resume = cfg.get("resume")
    if not resume:
        return None
    path = Path(str(resume)).expanduser()
    if path.suffix == ".ckpt":
        if not path.is_file():
            raise ConfigError(
                f"resume={resume}: no such checkpoint file. Pass a run directory or a .ckpt file."
            )
        return str(path)
    for directory in _checkpoint_dirs(cfg, run_dir):
        candidate = directory / LAST_CHECKPOINT
        if candidate.is_file():
            return str(candidate)
    log.warning("resume: %s has no %s yet; training it again from the start.", run_dir, LAST_CHECKPOINT)
    return None


def _checkpoint_dirs(cfg: DictConfig, run_dir: Path) -> list[Path]:
    directories = []
    callbacks = cfg.get("training_callbacks") or {}
    for child in callbacks.values():
        is_checkpoint = isinstance(child, DictConfig) and str(child.get("_target_", "")).endswith(
            "ModelCheckpoint"
        )
        if is_checkpoint and child.get("dirpath"):
            directories.append(Path(str(child.dirpath)))
    directories.append(run_dir / "checkpoints")
    return directories


def rng_states() -> dict[str, Any]:
    """Every random number generator a training step may draw from, as tensors and plain values.

    Plain types only, so the checkpoint still loads with ``torch.load(..., weights_only=True)``.
    """
    import torch

    kind, keys, position, has_gauss, cached = np.random.get_state()
    version, python_state, gauss_next = random.getstate()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [
            str(kind),
            torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            int(position),
            int(has_gauss),
            float(cached),
        ],
        "python": [int(version), list(python_state), gauss_next],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    import torch

    torch.set_rng_state(states["torch"])
    kind, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, np.asarray(keys.numpy(), dtype=np.uint32), position, has_gauss, cached))
    version, python_state, gauss_next = states["python"]
    random.setstate((version, tuple(python_state), gauss_next))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def resume_state_callback() -> Any:
    """A Lightning callback that stores, in every checkpoint, what Lightning itself does not."""
    from lightning.pytorch.callbacks import Callback

    class ResumeState(Callback):
        """RNG states and the trainer's stop decision, saved with a checkpoint and put back on resume.

        The states are restored when the first resumed training epoch starts, which is where the
        uninterrupted run was when it wrote the checkpoint (at the end of the previous epoch).
        """

        def __init__(self) -> None:
            self.restored: dict[str, Any] | None = None

        @property
        def state_key(self) -> str:
            return "openretina.ResumeState"

        def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
            checkpoint["openretina_resume"] = {"rng": rng_states(), "should_stop": bool(trainer.should_stop)}

        def on_load_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
            self.restored = checkpoint.get("openretina_resume")

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            if self.restored and self.restored.get("should_stop"):
                trainer.should_stop = True  # early stopping had already ended the run

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            if self.restored is not None:
                set_rng_states(self.restored["rng"])
                self.restored = None

    return ResumeState()
