"""A Lightning callback that records when things happen in a training run, for the benchmark.

Used by both tools, so it imports only the standard library and Lightning (whichever of
`lightning` / `pytorch_lightning` the running trainer uses). It never imports either tool's code.
Activated by an extra callback entry in the run's Hydra config; writes a JSON file to
$BENCH_TIMINGS_OUT after every phase and at exit. With BENCH_CUDA_SYNC=1 (GPU runs) every
timestamp of a training step waits for the device first, so steps are not timed asynchronously.
All times are time.time() seconds; BENCH_T0
(set by the harness just before it spawned the process) is their common origin.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import time
from typing import Any

try:  # the trainer and its callbacks must come from the same package
    from lightning.pytorch.callbacks import Callback
except ImportError:  # pragma: no cover - only for a peer built on pytorch_lightning
    from pytorch_lightning.callbacks import Callback  # type: ignore[no-redef]


def batch_shapes(batch: Any) -> tuple[int, int, int] | None:
    """(batch, frames, neurons) of a training batch's responses, whatever container the tool uses.

    The responses are the one 3-D tensor (B, T, N) of the batch (the stimulus is 5-D). Both tools'
    training batches hold exactly one; each tool decides itself which of those frames it fits.
    """
    found: list[tuple[int, ...]] = []

    def walk(obj: Any, depth: int = 0) -> None:
        if depth > 4 or found:
            return
        shape = getattr(obj, "shape", None)
        if shape is not None and hasattr(obj, "dtype"):
            if len(shape) == 3:
                found.append(tuple(int(s) for s in shape))
        elif isinstance(obj, dict):
            for v in obj.values():
                walk(v, depth + 1)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                walk(v, depth + 1)
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            for f in dataclasses.fields(obj):
                walk(getattr(obj, f.name), depth + 1)

    walk(batch)
    return found[0] if found else None  # type: ignore[return-value]


def _now() -> float:
    if _CUDA_SYNC:
        import torch

        torch.cuda.synchronize()
    return time.time()


_CUDA_SYNC = os.environ.get("BENCH_CUDA_SYNC") == "1"


class BenchTimer(Callback):
    """Records phase and step timestamps; see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.out = os.environ.get("BENCH_TIMINGS_OUT")
        self.data: dict[str, Any] = {
            "t0": float(os.environ.get("BENCH_T0", time.time())),
            "t_callback_init": time.time(),
            "fit": [],
            "train_epochs": [],
            "train_batches": [],  # [t_start, t_end, B, T, N] of the responses
            "loops": [],  # [kind, trainer_fn, t_start, t_end]
        }
        self._loop_start: dict[str, float] = {}
        self._hooks: list[Any] = []
        self._seen_t_out: int | None = None
        self._warmup_offset: int | None = None
        self._epoch_start = 0.0
        atexit.register(self.dump)

    def dump(self) -> None:
        self.data["t_dump"] = time.time()
        if self.out:
            tmp = f"{self.out}.tmp"
            with open(tmp, "w") as fh:
                json.dump(self.data, fh)
            os.replace(tmp, self.out)

    def _fn(self, trainer: Any) -> str:
        fn = getattr(getattr(trainer, "state", None), "fn", None)
        return str(getattr(fn, "value", fn))

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self.data["fit"].append([time.time(), None])

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        if self.data["fit"]:
            self.data["fit"][-1][1] = time.time()
        self.dump()

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._epoch_start = time.time()

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self.data["train_epochs"].append([self._epoch_start, time.time()])
        self.dump()

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        shapes = batch_shapes(batch) or (0, 0, 0)
        if self._warmup_offset is None and not self._hooks and shapes[0]:
            self._watch_outputs(pl_module, shapes[0], shapes[2])
        self.data["train_batches"].append([_now(), None, *shapes])

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.data["train_batches"][-1][1] = _now()
        if self._hooks:
            for handle in self._hooks:
                handle.remove()
            self._hooks = []
            t_resp = self.data["train_batches"][-1][3]
            if self._seen_t_out is not None:
                # Frames of a chunk the model does not predict (its temporal warm-up), if the tool
                # feeds the warm-up inside the response window rather than before it.
                self._warmup_offset = t_resp - self._seen_t_out
                self.data["output_frames_offset"] = self._warmup_offset

    def _watch_outputs(self, pl_module: Any, batch: int, neurons: int) -> None:
        """For one step, note the time length of any (B, T, N) output: the model's prediction."""

        def hook(module: Any, inputs: Any, output: Any) -> None:
            shape = getattr(output, "shape", None)
            if shape is not None and len(shape) == 3 and shape[0] == batch and shape[2] == neurons:
                self._seen_t_out = int(shape[1])

        self._hooks = [m.register_forward_hook(hook) for m in pl_module.modules()]

    def _start(self, kind: str) -> None:
        self._loop_start[kind] = time.time()

    def _end(self, kind: str, trainer: Any) -> None:
        start = self._loop_start.pop(kind, None)
        if start is not None:
            self.data["loops"].append([kind, self._fn(trainer), start, time.time()])
        self.dump()

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        self._start("validation")

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        self._end("validation", trainer)

    def on_test_start(self, trainer: Any, pl_module: Any) -> None:
        self._start("test")

    def on_test_end(self, trainer: Any, pl_module: Any) -> None:
        self._end("test", trainer)

    def on_predict_start(self, trainer: Any, pl_module: Any) -> None:
        self._start("predict")

    def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
        self._end("predict", trainer)
