"""openretina_data: retina recordings on disk to training batches.

Public API (imported lazily, so `import openretina_data` is fast and never imports torch)::

    dataset = load_hdf5_dataset(data_dir, test_names=[...])          # -> Dataset
    dataset, report = run_quality_checks(dataset, QualityConfig())   # -> (Dataset, QualityReport)
    splits = make_splits(dataset, clip_length=75, num_val_clips=20, train_chunk_size=50, seed=0)
    for batch in TrainBatches(dataset, splits, batch_size=64): ...   # Batch(session, stimulus, responses)
    ValidationBatches(dataset, splits, batch_size=64); TestBatches(dataset)
    openretina_data.torch_loader.TorchBatches(TrainBatches(...))     # tensors, needs the [torch] extra
    write_tutorial_dataset(path); write_retina_dataset(path); read_ground_truth(path)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from openretina_data._version import __version__

_EXPORTS = {
    "DataError": "openretina_data.errors",
    "Movie": "openretina_data.records",
    "TestSet": "openretina_data.records",
    "SessionData": "openretina_data.records",
    "Dataset": "openretina_data.records",
    "DataInfo": "openretina_data.records",
    "ConcatenatedFrames": "openretina_data.records",
    "load_hdf5_dataset": "openretina_data.hdf5_reader",
    "make_splits": "openretina_data.splits",
    "Splits": "openretina_data.splits",
    "SessionSplit": "openretina_data.splits",
    "Batch": "openretina_data.batching",
    "TrainBatches": "openretina_data.batching",
    "ValidationBatches": "openretina_data.batching",
    "TestBatches": "openretina_data.batching",
    "gather_clips": "openretina_data.batching",
    "QualityConfig": "openretina_data.quality",
    "QualityReport": "openretina_data.quality",
    "run_quality_checks": "openretina_data.quality",
    "write_tutorial_dataset": "openretina_data.synthetic",
    "write_retina_dataset": "openretina_data.synthetic",
    "read_ground_truth": "openretina_data.synthetic",
    "GroundTruth": "openretina_data.synthetic",
}

__all__ = [
    "Batch",
    "ConcatenatedFrames",
    "DataError",
    "DataInfo",
    "Dataset",
    "GroundTruth",
    "Movie",
    "QualityConfig",
    "QualityReport",
    "SessionData",
    "SessionSplit",
    "Splits",
    "TestBatches",
    "TestSet",
    "TrainBatches",
    "ValidationBatches",
    "__version__",
    "gather_clips",
    "load_hdf5_dataset",
    "make_splits",
    "read_ground_truth",
    "run_quality_checks",
    "write_retina_dataset",
    "write_tutorial_dataset",
]

if TYPE_CHECKING:
    from openretina_data.batching import Batch, TestBatches, TrainBatches, ValidationBatches, gather_clips
    from openretina_data.errors import DataError
    from openretina_data.hdf5_reader import load_hdf5_dataset
    from openretina_data.quality import QualityConfig, QualityReport, run_quality_checks
    from openretina_data.records import ConcatenatedFrames, DataInfo, Dataset, Movie, SessionData, TestSet
    from openretina_data.splits import SessionSplit, Splits, make_splits
    from openretina_data.synthetic import (
        GroundTruth,
        read_ground_truth,
        write_retina_dataset,
        write_tutorial_dataset,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'openretina_data' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
