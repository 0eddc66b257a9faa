"""Probe callbacks of the third pass on training's peak memory (issue 24, summary.txt): phase and
per-step heap statistics (glibc mallinfo2 / malloc_info), page faults, every op of one step, and the
variants tried (oneDNN off, a warm-up, batches outside the heap, trims). Diagnostics, not product code."""

import contextlib
import ctypes
import gc
import json
import os
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils._python_dispatch import TorchDispatchMode


def _write_json(obj, path, **options):
    with open(path, "w") as handle:
        json.dump(obj, handle, **options)


def status():
    d = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        k, v = line.split(":", 1)
        if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            d[k] = int(v.split()[0]) / 1024
    return d


class Diag(Callback):
    def on_fit_start(self, trainer, module):
        out = {"fit_start": status()}
        gc.unfreeze()
        objs = gc.get_objects()
        gc.freeze()
        big = []
        for o in objs:
            try:
                if isinstance(o, np.ndarray) and o.nbytes > 2**18:
                    big.append(
                        (
                            "np",
                            o.shape,
                            str(o.dtype),
                            round(o.nbytes / 2**20, 2),
                            o.base is not None,
                            type(o.base).__name__,
                        )
                    )
                elif isinstance(o, torch.Tensor) and o.untyped_storage().nbytes() > 2**18:
                    big.append(
                        (
                            "torch",
                            tuple(o.shape),
                            str(o.dtype),
                            round(o.untyped_storage().nbytes() / 2**20, 2),
                        )
                    )
            except Exception:
                pass
        out["big"] = big
        out["gc_counts"] = gc.get_count()
        out["gc_freeze"] = gc.get_freeze_count()
        out["n_objects"] = len(objs)
        del objs
        if tracemalloc.is_tracing():
            snap = tracemalloc.take_snapshot()
            out["traced_total_mib"] = sum(s.size for s in snap.statistics("filename")) / 2**20
            out["top_lines"] = [
                (str(s.traceback), round(s.size / 2**20, 2), s.count) for s in snap.statistics("lineno")[:40]
            ]
            out["top_files"] = [
                (str(s.traceback), round(s.size / 2**20, 2), s.count)
                for s in snap.statistics("filename")[:40]
            ]
            tb = snap.statistics("traceback")[:15]
            out["top_tb"] = [(s.traceback.format()[-12:], round(s.size / 2**20, 2)) for s in tb]
        # gc collect effect (diagnosis only)
        if os.environ.get("DIAG_GC"):
            gc.unfreeze()
            t = time.perf_counter()
            n = gc.collect()
            out["gc_collect"] = {"found": n, "ms": (time.perf_counter() - t) * 1000, "after": status()}
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            out["after_trim"] = status()
            gc.freeze()
        _write_json(out, os.environ.get("DIAG_OUT", "diag.json"), indent=1, default=str)


def smaps_anon():
    rows = []
    cur = None
    for line in Path("/proc/self/smaps").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and "-" in parts[0] and not parts[0].endswith(":"):
            cur = {"range": parts[0], "name": parts[5] if len(parts) > 5 else "", "perm": parts[1]}
            rows.append(cur)
        elif parts and parts[0] == "Anonymous:":
            cur["anon_kb"] = int(parts[1])
        elif parts and parts[0] == "Rss:":
            cur["rss_kb"] = int(parts[1])
    return rows


class Diag2(Callback):
    def on_fit_start(self, trainer, module):
        import linecache

        out = {"fit_start": status()}
        out["linecache_files"] = len(linecache.cache)
        out["linecache_kib"] = (
            sum(sum(len(line) for line in v[2]) for v in linecache.cache.values() if len(v) > 2 and v[2])
            # (the cached lines of each file)
            / 1024
        )
        out["linecache_names"] = list(linecache.cache)[:40]
        rows = smaps_anon()
        byname = {}
        for r in rows:
            if r.get("anon_kb", 0) > 0:
                key = r["name"] or "[anon]"
                byname.setdefault(key, []).append(r["anon_kb"])
        out["anon_by_name"] = {
            k: (round(sum(v) / 1024, 1), len(v), sorted(v, reverse=True)[:8])
            for k, v in sorted(byname.items(), key=lambda kv: -sum(kv[1]))[:25]
        }
        out["threads"] = [t.name for t in __import__("threading").enumerate()]
        out["n_threads_os"] = len(os.listdir("/proc/self/task"))
        out["modules"] = len(sys.modules)
        _write_json(out, os.environ.get("DIAG_OUT", "diag.json"), indent=1, default=str)


_libc = ctypes.CDLL("libc.so.6")
_libc.fopen.restype = ctypes.c_void_p
_libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
_libc.fclose.argtypes = [ctypes.c_void_p]
_libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]


def malloc_info(path):
    f = _libc.fopen(path.encode(), b"w")
    _libc.malloc_info(0, f)
    _libc.fclose(f)


class Arenas(Callback):
    def __init__(self):
        self.d = os.environ.get("DIAG_DIR", ".")
        self.trace = []
        self.max_rss = 0

    def _rec(self, tag, info=False):
        s = status()
        self.trace.append(
            (
                tag,
                s,
                [
                    (r["range"], r["name"], r.get("anon_kb"))
                    for r in smaps_anon()
                    if r.get("anon_kb", 0) > 1024
                ],
            )
        )
        if info:
            malloc_info(f"{self.d}/mi_{tag}.xml")

    def on_fit_start(self, trainer, module):
        self._rec("fit_start", True)

    def on_train_batch_end(self, trainer, module, outputs, batch, index):
        s = status()
        if s["VmRSS"] > self.max_rss:
            self.max_rss = s["VmRSS"]
            self._rec("max", True)

    def on_train_batch_start(self, trainer, module, batch, index):
        s = status()
        if s["VmRSS"] > self.max_rss:
            self.max_rss = s["VmRSS"]
            self._rec("max_bs", True)

    def on_fit_end(self, trainer, module):
        self._rec("fit_end", True)
        _write_json(self.trace, f"{self.d}/arenas.json", indent=0)


class _MI2(ctypes.Structure):
    _fields_ = [
        (n, ctypes.c_size_t)
        for n in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


_libc.mallinfo2.restype = _MI2


def heapstat():
    m = _libc.mallinfo2()
    s = status()
    return {
        "rss": round(s["VmRSS"], 1),
        "hwm": round(s["VmHWM"], 1),
        "arena": round(m.arena / 2**20, 1),
        "used": round(m.uordblks / 2**20, 1),
        "free": round(m.fordblks / 2**20, 1),
        "mmap": round(m.hblkhd / 2**20, 1),
        "top": round(m.keepcost / 2**20, 2),
    }


class Heap(Callback):
    def __init__(self):
        self.trace = []

    def on_fit_start(self, trainer, module):
        self.trace.append(("fit_start", heapstat()))

    def on_train_batch_start(self, trainer, module, batch, index):
        self.trace.append((f"e{trainer.current_epoch}b{index}s{batch.stimulus.shape[0]}", heapstat()))

    def on_before_backward(self, trainer, module, loss):
        self.trace.append(("fwd", heapstat()))

    def on_after_backward(self, trainer, module):
        self.trace.append(("bwd", heapstat()))

    def on_train_batch_end(self, trainer, module, outputs, batch, index):
        self.trace.append(("end", heapstat()))

    def on_validation_start(self, trainer, module):
        self.trace.append(("val_start", heapstat()))

    def on_validation_end(self, trainer, module):
        self.trace.append(("val_end", heapstat()))

    def on_fit_end(self, trainer, module):
        self.trace.append(("fit_end", heapstat()))
        with open(os.environ.get("HEAP_OUT", "heap.json"), "w") as h:
            json.dump(self.trace, h)


class _OpLog(TorchDispatchMode):
    def __init__(self, log):
        super().__init__()
        self.log = log

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        m = _libc.mallinfo2()
        outs = out if isinstance(out, (tuple, list)) else (out,)
        nb = sum(o.untyped_storage().nbytes() for o in outs if isinstance(o, torch.Tensor))
        self.log.append(
            (
                str(func),
                round(nb / 2**20, 2),
                round(m.uordblks / 2**20, 2),
                round(m.arena / 2**20, 2),
                [tuple(o.shape) for o in outs if isinstance(o, torch.Tensor)][:2],
            )
        )
        return out


class OpTrace(Callback):
    """Logs every op of training step STEP_AT (global index)."""

    def __init__(self):
        self.at = int(os.environ.get("STEP_AT", "6"))
        self.n = 0
        self.oplog = []
        self.mode = None

    def on_train_batch_start(self, trainer, module, batch, index):
        if self.n == self.at:
            m = _libc.mallinfo2()
            self.oplog.append(("start", 0, round(m.uordblks / 2**20, 2), round(m.arena / 2**20, 2), []))
            self.mode = _OpLog(self.oplog)
            self.mode.__enter__()
            # autograd backward runs in engine thread? for CPU it runs in the calling thread
        self.n += 1

    def on_train_batch_end(self, trainer, module, outputs, batch, index):
        if self.mode is not None:
            self.mode.__exit__(None, None, None)
            self.mode = None
            with open(os.environ.get("OPS_OUT", "ops.json"), "w") as h:
                json.dump(self.oplog, h)


class Mods(Callback):
    def on_fit_start(self, trainer, module):
        import collections

        c = collections.Counter()
        sizes = collections.Counter()
        for name, m in list(sys.modules.items()):
            top = name.split(".")[0]
            if top == "torch":
                top = ".".join(name.split(".")[:2])
            c[top] += 1
            f = getattr(m, "__file__", None) or ""
            with contextlib.suppress(OSError):
                sizes[top] += os.path.getsize(f) if f.endswith(".py") else 0
        _write_json(
            {"n": len(sys.modules), "by_top": c.most_common(80), "py_bytes": sizes.most_common(80)},
            os.environ.get("DIAG_OUT", "mods.json"),
            indent=0,
        )


class NoMkldnn(Callback):
    def on_fit_start(self, trainer, module):
        torch._C._set_mkldnn_enabled(False)


class Prof(Callback):
    def __init__(self):
        self.at = int(os.environ.get("STEP_AT", "8"))
        self.n = 0
        self.p = None

    def on_train_batch_start(self, trainer, module, batch, index):
        if self.n == self.at:
            self.p = torch.profiler.profile(
                activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True, record_shapes=True
            )
            self.p.__enter__()
        self.n += 1

    def on_train_batch_end(self, trainer, module, outputs, batch, index):
        if self.p is not None:
            self.p.__exit__(None, None, None)
            with open(os.environ.get("PROF_OUT", "prof.txt"), "w") as h:
                h.write(
                    self.p.key_averages(group_by_input_shape=True).table(
                        sort_by="self_cpu_memory_usage",
                        row_limit=40,
                        max_name_column_width=40,
                        max_shapes_column_width=70,
                    )
                )
                h.write("\n\nBY TOTAL\n")
                h.write(
                    self.p.key_averages().table(
                        sort_by="cpu_memory_usage", row_limit=40, max_name_column_width=50
                    )
                )
            self.p = None


class ThreadWarm(Callback):
    """Diagnostic: create oneDNN primitives for every batch shape in another thread (another arena)."""

    def on_fit_start(self, trainer, module):
        import copy
        import threading

        model = copy.deepcopy(module.model)

        def work():
            for name in ("session_0", "session_1"):
                for b in (64, 63, 1):
                    x = torch.randn(b, 3, 80, 16, 8)
                    try:
                        out = model(x, name)
                    except Exception as ex:
                        print("warm fail", ex)
                        return
                    out.sum().backward()
                with torch.no_grad():
                    model(torch.randn(20, 3, 80, 16, 8), name)
                break

        th = threading.Thread(target=work)
        th.start()
        th.join()
        model = None
        print("warm", heapstat())
        _libc.malloc_trim(0)
        print("warm trimmed", heapstat())


_libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]


class MmapWarm(Callback):
    """Diagnostic: create oneDNN primitives for every batch shape with big blocks mmapped."""

    def on_fit_start(self, trainer, module):
        import copy

        before = heapstat()
        _libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
        model = copy.deepcopy(module.model)
        name = "session_0"
        for b in (64, 63, 1):
            x = torch.zeros(b, 3, 80, 16, 8)
            out = model(x, name)
            out.sum().backward()
            del out, x
        with torch.no_grad():
            model(torch.zeros(20, 3, 80, 16, 8), name)
        del model
        _libc.mallopt(-3, int(os.environ.get("MMAP_AFTER", str(32 * 1024 * 1024))))
        print("mwarm", before, heapstat(), flush=True)


class FreshShapes(Callback):
    """Diagnostic: a step with a batch shape not seen before allocates big blocks with mmap."""

    def __init__(self):
        self.seen = set()
        self.low = False
        self.after = int(os.environ.get("MMAP_AFTER", str(32 * 1024 * 1024)))

    def _check(self, batch):
        shape = tuple(batch.stimulus.shape)
        fresh = shape not in self.seen
        self.seen.add(shape)
        if fresh and not self.low:
            _libc.mallopt(-3, 128 * 1024)
            self.low = True
        elif not fresh and self.low:
            _libc.mallopt(-3, self.after)
            self.low = False

    def on_train_batch_start(self, trainer, module, batch, index):
        self._check(batch)

    def on_validation_batch_start(self, trainer, module, batch, index, dataloader_idx=0):
        self._check(batch)

    def on_train_epoch_end(self, trainer, module):
        pass

    def on_fit_end(self, trainer, module):
        if self.low:
            _libc.mallopt(-3, self.after)
            self.low = False


class Faults(Callback):
    def __init__(self):
        import resource

        self.r = resource
        self.f = []
        self.s = 0

    def on_train_batch_start(self, trainer, module, batch, index):
        self.s = self.r.getrusage(self.r.RUSAGE_SELF).ru_minflt

    def on_train_batch_end(self, trainer, module, outputs, batch, index):
        self.f.append(self.r.getrusage(self.r.RUSAGE_SELF).ru_minflt - self.s)

    def on_fit_end(self, trainer, module):
        _write_json(self.f, os.environ.get("FAULTS_OUT", "faults.json"))


class TrimAfterValidation(Callback):
    def on_validation_end(self, trainer, module):
        if not trainer.sanity_checking:
            _libc.malloc_trim(0)
