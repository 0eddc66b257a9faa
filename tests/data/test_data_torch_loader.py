"""torch_loader: zero-copy tensors, epochs through Lightning's sampler hook, DataLoader workers."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch
from data_testkit import in_memory_dataset
from openretina_data import TrainBatches, ValidationBatches, make_splits
from openretina_data.batching import Batch
from openretina_data.torch_loader import TorchBatch, TorchBatches, to_torch


def _loader(**options) -> TrainBatches:
    data = in_memory_dataset({"a": 300, "b": 200}, neurons=2)
    splits = make_splits(data, clip_length=20, num_val_clips=2, train_chunk_size=10, seed=1)
    return TrainBatches(data, splits, batch_size=4, **options)


def test_tensors_share_memory_with_the_arrays() -> None:
    batch = Batch("s", np.ones((2, 1, 3, 2, 2), np.float32), np.ones((2, 3, 4), np.float32))
    tensors = to_torch(batch)
    assert isinstance(tensors, TorchBatch)
    tensors.stimulus[0, 0, 0, 0, 0] = 5.0
    assert batch.stimulus[0, 0, 0, 0, 0] == 5.0
    assert tensors.responses.dtype == torch.float32
    assert tensors.trials is None


def test_iterates_like_the_numpy_batches_and_follows_set_epoch() -> None:
    numpy_batches = _loader()
    loader = TorchBatches(_loader())
    assert len(loader) == len(numpy_batches)
    loader.sampler.set_epoch(3)  # Lightning calls dataloader.sampler.set_epoch at every epoch start
    numpy_batches.set_epoch(3)
    for ours, reference in zip(loader, numpy_batches, strict=True):
        assert ours.session == reference.session
        np.testing.assert_array_equal(ours.stimulus.numpy(), reference.stimulus)


def test_workers_split_the_plan_without_repeats() -> None:
    source = _loader()
    expected = sorted((*tuple(b.starts.tolist()), b.session) for b in _loader())
    loader = torch.utils.data.DataLoader(TorchBatches(source), batch_size=None, num_workers=2)
    seen = sorted((*tuple(b.stimulus[:, 0, 0, 0, 0].long().tolist()), b.session) for b in loader)
    assert seen == expected


def test_validation_batches_convert_too() -> None:
    data = in_memory_dataset({"a": 300}, neurons=2)
    splits = make_splits(data, clip_length=20, num_val_clips=3, train_chunk_size=10)
    batches = list(TorchBatches(ValidationBatches(data, splits, batch_size=2)))
    assert [b.stimulus.shape[0] for b in batches] == [2, 1]


def test_importing_the_package_does_not_import_torch() -> None:
    code = (
        "import sys, openretina_data as o; o.load_hdf5_dataset; o.TrainBatches; o.run_quality_checks; "
        "o.write_retina_dataset; assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
