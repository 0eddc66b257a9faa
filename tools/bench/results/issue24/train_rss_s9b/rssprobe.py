import ctypes
import gc
import json
import os

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback


def status():
    d = {}
    with open("/proc/self/status") as h:
        lines = h.readlines()
    for line in lines:
        k, v = line.split(":", 1)
        if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            d[k] = int(v.split()[0]) / 1024
    return d


class RSS(Callback):
    def __init__(self):
        self.trace = []

    def _rec(self, tag):
        self.trace.append((tag, status()))

    def on_fit_start(self, trainer, module):
        self._rec("fit_start")
        big = []
        for o in gc.get_objects():
            try:
                if isinstance(o, np.ndarray) and o.nbytes > 2**20:
                    big.append(("np", o.shape, str(o.dtype), o.nbytes / 2**20, o.base is not None))
                elif isinstance(o, torch.Tensor) and o.untyped_storage().nbytes() > 2**20:
                    big.append(
                        (
                            "torch",
                            tuple(o.shape),
                            str(o.dtype),
                            o.untyped_storage().nbytes() / 2**20,
                            o.untyped_storage().data_ptr(),
                        )
                    )
            except Exception:
                pass
        self.trace.append(("big", big))

    def on_train_batch_end(self, trainer, module, outputs, batch, index):
        self._rec(f"e{trainer.current_epoch}b{index}")

    def on_validation_epoch_end(self, trainer, module):
        self._rec(f"e{trainer.current_epoch}val")

    def on_fit_end(self, trainer, module):
        self._rec("fit_end")
        with open(os.environ.get("RSSPROBE_OUT", "rssprobe.json"), "w") as h:
            json.dump(self.trace, h, indent=0)


_libc = ctypes.CDLL("libc.so.6")


class Trim(Callback):
    """TRIM_AT: batch_start | val_end | epoch0_val"""

    def __init__(self):
        self.where = os.environ.get("TRIM_AT", "")

    def on_train_batch_start(self, trainer, module, batch, index):
        if self.where == "batch_start":
            _libc.malloc_trim(0)

    def on_train_batch_end(self, trainer, module, outputs, batch, index):
        if self.where == "batch_end":
            _libc.malloc_trim(0)

    def on_validation_epoch_end(self, trainer, module):
        if self.where == "val_end" or (self.where == "epoch0_val" and trainer.current_epoch == 0):
            _libc.malloc_trim(0)

    def on_fit_start(self, trainer, module):
        if self.where == "fit_start":
            _libc.malloc_trim(0)


class Fetch(Callback):
    def on_train_batch_start(self, trainer, module, batch, index):
        f = trainer.fit_loop._data_fetcher
        print(
            "FETCH",
            index,
            type(f).__name__,
            f.length,
            len(getattr(f, "batches", [])),
            type(batch).__name__,
            flush=True,
        )


class Phases(Callback):
    def __init__(self):
        self.trace = []

    def _r(self, tag):
        self.trace.append((tag, status()))

    def on_fit_start(self, t, m):
        self._r("fit_start")

    def on_sanity_check_start(self, t, m):
        self._r("sanity_start")

    def on_sanity_check_end(self, t, m):
        self._r("sanity_end")

    def on_train_start(self, t, m):
        self._r("train_start")

    def on_train_batch_start(self, t, m, b, i):
        if t.current_epoch < 2:
            self._r(f"e{t.current_epoch}b{i}_start")

    def on_before_backward(self, t, m, loss):
        if t.current_epoch < 2:
            self._r("  before_backward")

    def on_after_backward(self, t, m):
        if t.current_epoch < 2:
            self._r("  after_backward")

    def on_before_optimizer_step(self, t, m, o):
        if t.current_epoch < 2:
            self._r("  before_opt")

    def on_train_batch_end(self, t, m, out, b, i):
        if t.current_epoch < 2:
            self._r("  end")

    def on_validation_start(self, t, m):
        self._r("val_start")

    def on_validation_end(self, t, m):
        self._r("val_end")

    def on_fit_end(self, t, m):
        self._r("fit_end")
        with open(os.environ.get("RSSPROBE_OUT", "rssprobe.json"), "w") as h:
            json.dump(self.trace, h)
