"""Batches as torch tensors: thin iterables over `openretina_data.batching`, usable as Lightning
dataloaders. The only module of openretina_data that imports torch (extra `[torch]`).

Arrays become tensors with `torch.from_numpy`, which shares memory instead of copying. Distributed
ranks are chosen on the numpy iterable (`TrainBatches(..., rank=r, world_size=w)`); DataLoader
workers, when used, split the batch plan between them so no batch is assembled twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

try:
    import torch
    from torch.utils.data import IterableDataset, get_worker_info
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        'openretina_data.torch_loader needs PyTorch: pip install "openretina-data[torch]"'
    ) from error

from openretina_data.batching import Batch

__all__ = ["TorchBatch", "TorchBatches", "to_torch"]


class TorchBatch(NamedTuple):
    """A `Batch` with tensors. A NamedTuple, so Lightning moves it to the device field by field."""

    session: str
    stimulus: torch.Tensor  # (B, C, T, H, W) float32
    responses: torch.Tensor  # (B, T, N) float32
    stimulus_name: str | None = None
    trials: torch.Tensor | None = None  # (B, R, T, N)


def to_torch(batch: Batch, pin_memory: bool = False) -> TorchBatch:
    """Tensors sharing memory with the batch's arrays (pinned copies with `pin_memory`)."""

    def tensor(array: Any) -> torch.Tensor | None:
        if array is None:
            return None
        value = torch.from_numpy(array)
        return value.pin_memory() if pin_memory else value

    return TorchBatch(
        batch.session,
        tensor(batch.stimulus),
        tensor(batch.responses),
        batch.stimulus_name,
        tensor(batch.trials),
    )


class TorchBatches(IterableDataset):
    """Iterate `TorchBatch`es from a numpy batch iterable (`TrainBatches`, `ValidationBatches`,
    `TestBatches`).

    Hand it to Lightning as a dataloader as is. `set_epoch(e)` is forwarded to the numpy iterable;
    Lightning calls it at every epoch start through the `sampler` attribute (as it does for
    distributed samplers).
    """

    def __init__(self, batches: Any, pin_memory: bool = False) -> None:
        super().__init__()
        self.batches = batches
        self.pin_memory = pin_memory

    @property
    def sampler(self) -> TorchBatches:
        return self

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.batches, "set_epoch"):
            self.batches.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[TorchBatch]:
        worker = get_worker_info()
        if worker is None or worker.num_workers == 1 or not hasattr(self.batches, "plan"):
            for batch in self.batches:
                yield to_torch(batch, self.pin_memory)
            return
        plan = self.batches.plan()
        if hasattr(self.batches, "set_epoch") and hasattr(self.batches, "epoch"):
            self.batches.set_epoch(self.batches.epoch + 1)
        for item in plan[worker.id :: worker.num_workers]:
            yield to_torch(self.batches.assemble(item), self.pin_memory)
