"""The first batch of each shape runs with its large blocks outside glibc's heap (issue 24).

`openretina_cli.training.cpu_kernels` explains why: the kernels oneDNN builds for a new shape stay
for the whole run, and built between a step's tensors they fragment training's heap. What the run
relies on: only first batches (per stage and shape) are affected, CPU training only, the allocator
is put back into a post-training state when training ends (also when it fails), and nothing breaks
where the C library is not glibc.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from openretina_cli import garbage_collection
from openretina_cli.training import cpu_kernels
from openretina_cli.training.cpu_kernels import FirstBatchesOutsideHeap


def _trainer(device: str = "cpu") -> Any:
    return SimpleNamespace(strategy=SimpleNamespace(root_device=SimpleNamespace(type=device)))


def _batch(*shape: int) -> Any:
    return SimpleNamespace(stimulus=np.zeros(shape, dtype=np.float32))


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the callback asks of the allocator, in order."""
    events: list[str] = []

    @contextlib.contextmanager
    def outside() -> Iterator[None]:
        events.append("outside")
        yield
        events.append("heap")

    monkeypatch.setattr(garbage_collection, "large_blocks_outside_heap", outside)
    monkeypatch.setattr(garbage_collection, "large_blocks_after_training", lambda: events.append("after"))
    return events


def test_only_the_first_batch_of_each_shape_and_stage_runs_outside_the_heap(recorded: list[str]) -> None:
    callback = FirstBatchesOutsideHeap()
    trainer = _trainer()
    callback.setup(trainer, None, "fit")
    steps = [
        ("validation", _batch(20, 3, 80, 4, 4)),  # the sanity check
        ("validation", _batch(20, 3, 80, 4, 4)),
        ("train", _batch(64, 3, 80, 4, 4)),
        ("train", _batch(64, 3, 80, 4, 4)),
        ("train", _batch(1, 3, 80, 4, 4)),
        ("train", _batch(63, 3, 80, 4, 4)),  # two new shapes in a row: outside throughout
        ("train", _batch(64, 3, 80, 4, 4)),
        ("validation", _batch(64, 3, 80, 4, 4)),  # a training shape is new to validation
        ("validation", _batch(20, 3, 80, 4, 4)),
    ]
    marks = []
    for stage, batch in steps:
        if stage == "train":
            callback.on_train_batch_start(trainer, None, batch, 0)
        else:
            callback.on_validation_batch_start(trainer, None, batch, 0)
        marks.append(callback.outside is not None)
    assert marks == [True, False, True, False, True, True, False, True, False]
    assert recorded == ["outside", "heap", "outside", "heap", "outside", "heap", "outside", "heap"]
    callback.on_fit_end(trainer, None)
    assert recorded[-1] == "after"
    callback.on_fit_end(trainer, None)  # once only
    assert recorded.count("after") == 1


def test_a_failed_fit_leaves_the_allocator_in_its_post_training_state(recorded: list[str]) -> None:
    callback = FirstBatchesOutsideHeap()
    trainer = _trainer()
    callback.setup(trainer, None, "fit")
    callback.on_train_batch_start(trainer, None, _batch(2, 1, 5, 3, 3), 0)
    callback.on_exception(trainer, None, RuntimeError("boom"))
    assert recorded == ["outside", "heap", "after"]
    assert callback.outside is None


def test_nothing_changes_off_the_cpu_or_for_batches_without_a_stimulus(recorded: list[str]) -> None:
    callback = FirstBatchesOutsideHeap()
    gpu = _trainer("cuda")
    callback.setup(gpu, None, "fit")
    callback.on_train_batch_start(gpu, None, _batch(4, 1, 5, 3, 3), 0)
    callback.on_fit_end(gpu, None)
    cpu = _trainer()
    callback = FirstBatchesOutsideHeap()
    callback.setup(cpu, None, "fit")
    callback.on_train_batch_start(cpu, None, (np.zeros(3), np.zeros(3)), 0)
    callback.on_fit_end(cpu, None)
    assert recorded == []


def test_training_runs_the_callback() -> None:
    import inspect

    from openretina_cli.training import run

    assert "FirstBatchesOutsideHeap()" in inspect.getsource(run.train)
    assert cpu_kernels.FirstBatchesOutsideHeap is FirstBatchesOutsideHeap


# Run in a fresh interpreter: in a test worker, threads left by other tests (imports, figure
# helpers) map and free blocks of their own between two readings of the process-wide count.
_ALLOCATOR_CHECK = """
import ctypes
import numpy as np
from openretina_cli import garbage_collection

FIELDS = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in FIELDS]


libc = ctypes.CDLL("libc.so.6")
try:
    libc.mallinfo2.restype = MallInfo2
except AttributeError:
    raise SystemExit(3)  # glibc older than 2.33


def mapped() -> int:
    return int(libc.mallinfo2().hblkhd)


size = 1 << 20  # 1 MiB: under 32 MiB, over 128 KiB
with garbage_collection.large_blocks_outside_heap():
    before = mapped()
    block = np.ones(size, dtype=np.uint8)
    assert mapped() >= before + size, "inside: mapped"
    del block
before = mapped()
block = np.ones(size, dtype=np.uint8)
assert mapped() == before, "after: from the heap again"
del block
garbage_collection.large_blocks_after_training()
before = mapped()
block = np.ones(16 << 20, dtype=np.uint8)  # 16 MiB: over the post-training 8 MiB
assert mapped() >= before + (16 << 20), "after training: mapped"
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_large_blocks_get_their_own_mapping_inside_and_come_from_the_heap_after() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _ALLOCATOR_CHECK], capture_output=True, text=True, check=False
    )
    if done.returncode == 3:
        pytest.skip("not glibc >= 2.33")
    assert done.returncode == 0, done.stderr


def test_the_allocator_helpers_do_nothing_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(garbage_collection.sys, "platform", "darwin")
    with garbage_collection.large_blocks_outside_heap():
        pass
    garbage_collection.large_blocks_after_training()
    garbage_collection.return_freed_memory()
