"""Keep the CPU convolution kernels that training builds out of the way of its tensors (issue 24).

oneDNN, which runs PyTorch's convolutions on CPU, builds a primitive (its kernel for one shape) the
first time it meets that shape and keeps it for the rest of the process. Its blocks are small, but
built inside a training step they land between that step's tensors in glibc's heap and stay there,
so the heap's free gaps no longer merge into the large blocks later steps ask for and the heap grows
over the epochs (on 1.x's tutorial architecture, oneDNN's primitive cache switched off lowered
training's peak by 10-15 MiB, at 20-40% more CPU time per step). So the first batch of every
stimulus shape runs with its large blocks mapped outside the heap
(`garbage_collection.large_blocks_outside_heap`): the primitives it builds are all it leaves in the
heap. Later batches of that shape build none and use the heap, which then keeps its free memory
instead of handing it back and faulting it in again at the next step. Measured on the tutorial
benchmark (docs/benchmarks.md): training's peak 6-9 MiB lower by the median, fewer page faults per
step after the first, each first batch about 0.08 CPU s dearer, the same numbers.
"""

from __future__ import annotations

import contextlib
from typing import Any

from lightning.pytorch.callbacks import Callback

from openretina_cli import garbage_collection


class FirstBatchesOutsideHeap(Callback):
    """The first training or validation batch of each stimulus shape runs with its large blocks
    mapped outside the heap (CPU training only; nothing elsewhere)."""

    def __init__(self) -> None:
        self.enabled = False
        self.changed = False
        self.seen: set[tuple[str, tuple[int, ...]]] = set()
        self.outside: contextlib.ExitStack | None = None

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self.enabled = trainer.strategy.root_device.type == "cpu"

    def _batch_starts(self, stage: str, batch: Any) -> None:
        stimulus = getattr(batch, "stimulus", None)
        key = None if stimulus is None else (stage, tuple(stimulus.shape))  # training also builds backward's
        fresh = self.enabled and key is not None and key not in self.seen
        if key is not None:
            self.seen.add(key)
        if fresh and self.outside is None:
            self.changed = True
            self.outside = contextlib.ExitStack()
            self.outside.enter_context(garbage_collection.large_blocks_outside_heap())
        elif not fresh:
            self._back_to_heap()

    def _back_to_heap(self) -> None:
        if self.outside is not None:
            self.outside.close()
            self.outside = None

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self._batch_starts("train", batch)

    def on_validation_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self._batch_starts("validation", batch)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self._training_ended()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._training_ended()

    def _training_ended(self) -> None:
        self._back_to_heap()
        if self.changed:
            garbage_collection.large_blocks_after_training()
            self.changed = False
