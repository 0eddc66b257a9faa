"""Data for a run: load via the data_io config, quality checks, splits and batch iterables.

Everything here is openretina_data; this module only wires its pieces to the config and to
Lightning (torch tensors, the epoch number, this process's rank).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from openretina_data import Dataset
from openretina_data.batching import TrainBatches, ValidationBatches
from openretina_data.splits import Splits, make_splits
from openretina_data.torch_loader import TorchBatches

from openretina_cli.config.instantiate import check_arguments, locate_target
from openretina_cli.errors import ConfigError

# data_io keys the cli handles itself rather than passing to the loader.
_CLI_KEYS = ("_target_", "generate", "channel_names")


@dataclass
class CheckedData:
    dataset: Dataset
    report: Any


def load_dataset(cfg: DictConfig) -> Dataset:
    """Call ``data_io._target_`` with the other data_io keys (generating built-in data first)."""
    node = cfg.data_io
    loader = locate_target(node, "data_io")
    values = OmegaConf.to_container(node, resolve=True, throw_on_missing=True)
    kwargs = {str(k): v for k, v in values.items() if k not in _CLI_KEYS and not _is_hydra_key(str(k))}
    check_arguments(loader, list(kwargs), "data_io")
    generate = node.get("generate")
    if generate is not None:
        ensure_generated(Path(kwargs["data_dir"]), OmegaConf.to_container(generate, resolve=True))
    dataset = loader(**kwargs)
    names = values.get("channel_names")
    if (
        names is None
        and dataset.data_info.channel_names is None
        and int(dataset.data_info.input_shape[0]) == 2
        and _generated_two_colours(generate)
    ):
        # the built-in retina, generated before its files named the channels (data_dir may hold other
        # data than `generate` describes, e.g. one colour: then the names are left to the files)
        names = ["green", "UV"]
    return dataset if names is None else with_channel_names(dataset, names)


def _generated_two_colours(generate: Any) -> bool:
    """Whether data_io.generate describes the built-in simulated retina with two colours (green, UV)."""
    if generate is None:
        return False
    options = OmegaConf.to_container(generate, resolve=True) if OmegaConf.is_config(generate) else generate
    return (
        isinstance(options, dict)
        and options.get("kind") == "retina"
        and int(options.get("num_colors", 2)) == 2
    )


def with_channel_names(dataset: Dataset, names: Any) -> Dataset:
    """``data_io.channel_names`` (one name per colour channel, e.g. [green, UV]) on the dataset's
    data_info, so figures and saved models name the channels."""
    import dataclasses

    channels = int(dataset.data_info.input_shape[0])
    if not isinstance(names, list | tuple) or len(names) != channels:
        raise ConfigError(
            f"data_io.channel_names={names!r} must list one name per colour channel; this data has "
            f"{channels}. Set e.g. data_io.channel_names=[{','.join(f'c{i}' for i in range(channels))}]."
        )
    info = dataclasses.replace(dataset.data_info, channel_names=tuple(str(n) for n in names))
    return dataclasses.replace(dataset, data_info=info)


def _is_hydra_key(key: str) -> bool:
    return key.startswith("_") and key.endswith("_")


def ensure_generated(directory: Path, options: dict[str, Any]) -> None:
    """Write a synthetic dataset into ``directory`` unless it is already there (the cache)."""
    from openretina_cli.config.generators import generator

    kind = options.pop("kind", "retina")
    if directory.is_dir() and any(directory.glob("*.h5*")):
        return
    writer = generator(kind)
    check_arguments(writer, list(options), "data_io.generate")
    print(f"Generating the {kind} dataset into {directory} (first use; later runs reuse it)")
    writer(directory, **options)


def load_checked_dataset(cfg: DictConfig) -> CheckedData:
    """The dataset after the quality checks of ``cfg.quality_checks`` (neurons/sessions dropped).

    A check whose action is ``fail`` raises `openretina_data.DataError`.
    """
    from openretina_data.quality import QualityConfig, run_quality_checks

    dataset = load_dataset(cfg)
    options = OmegaConf.to_container(cfg.quality_checks, resolve=True) or {}
    check_arguments(QualityConfig, list(options), "quality_checks")
    try:
        config = QualityConfig(**options)
    except (TypeError, ValueError) as ex:
        raise ConfigError(f"quality_checks: {ex} Fix the quality_checks.* values.") from ex
    checked, report = run_quality_checks(dataset, config)
    return CheckedData(checked, report)


def build_splits(cfg: DictConfig, dataset: Dataset) -> Splits:
    loader_cfg = cfg.dataloader
    indices = loader_cfg.val_clip_indices
    return make_splits(
        dataset,
        clip_length=int(loader_cfg.clip_length),
        num_val_clips=int(loader_cfg.num_val_clips),
        train_chunk_size=int(loader_cfg.train_chunk_size),
        allow_over_boundaries=bool(loader_cfg.allow_over_boundaries),
        val_clip_indices=None if indices is None else OmegaConf.to_container(indices),
        seed=int(cfg.seed),
        max_val_fraction=None if loader_cfg.max_val_fraction is None else float(loader_cfg.max_val_fraction),
    )


def check_chunks_fit(cfg: DictConfig, warmup: int) -> None:
    """A training chunk must be longer than the model's warm-up, or nothing is left to predict."""
    chunk = int(cfg.dataloader.train_chunk_size)
    if chunk <= warmup:
        raise ConfigError(
            f"dataloader.train_chunk_size={chunk} leaves no frame to predict: the model needs {warmup} "
            f"warm-up frames (its temporal kernels). Set dataloader.train_chunk_size to more than {warmup} "
            "(and clip_length at least as long), or use shorter model.temporal_kernel_sizes."
        )


class EpochBatches:
    """Torch batches for Lightning whose training epoch follows the Trainer's (so resume is exact).

    Wraps `openretina_data.torch_loader.TorchBatches` without its `sampler` attribute, which
    Lightning would otherwise inspect as if it were a DataLoader.
    """

    def __init__(self, batches: TrainBatches | ValidationBatches, trainer: Any = None) -> None:
        self.batches = TorchBatches(batches)
        self.trainer = trainer

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[Any]:
        if self.trainer is not None:
            self.batches.set_epoch(epoch_to_run(self.trainer))
        return iter(self.batches)


def epoch_to_run(trainer: Any) -> int:
    """The epoch whose batches an iterator created now will deliver.

    Lightning creates the first iterator before it moves ``current_epoch`` past the epoch a
    resumed checkpoint finished; the epoch progress's ``processed`` count is already right then.
    """
    progress = getattr(getattr(trainer, "fit_loop", None), "epoch_progress", None)
    if progress is None:
        return int(trainer.current_epoch)
    return int(progress.current.processed)


def build_loaders(cfg: DictConfig, dataset: Dataset, splits: Splits, trainer: Any) -> tuple[Any, Any]:
    """Training and validation batches for this process (Lightning sets the epoch on them)."""
    rank, world = int(trainer.global_rank), int(trainer.world_size)
    batch_size = int(cfg.dataloader.batch_size)
    train = TrainBatches(dataset, splits, batch_size, seed=int(cfg.seed), rank=rank, world_size=world)
    val = ValidationBatches(dataset, splits, batch_size, rank=rank, world_size=world)
    return EpochBatches(train, trainer), EpochBatches(val)
