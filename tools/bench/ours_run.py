"""Runs in OUR workspace venv: the counterparts of peer_run.py's measurement subcommands.

predict-latency --model DIR --frames T --repeats R --out J   openretina_models.predict on a movie
predict-test --model DIR --data-dir D --test-names a,b --out NPZ
probe-data --data-dir D --test-names a,b --out J [--in-memory true|false|auto]
    open-to-first-batch, one epoch of batches, peak memory vs float32 data size
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from epoch_probe import probe_epoch  # this folder is on sys.path: the script runs by its path


def _model_dir(run_or_model: str) -> Path:
    """A run directory's exported model (results.json names it) or a model directory itself."""
    path = Path(run_or_model)
    results = path / "results.json"
    if results.is_file():
        return Path(json.loads(results.read_text())["model"])
    return path


def predict_latency(argv: list[str]) -> None:
    import numpy as np
    import torch

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    from openretina_models import load_model, predict

    model = load_model(_model_dir(args.model))
    load_s = time.perf_counter() - t0
    session = sorted(model.data_info["sessions"])[0]
    c, h, w = model.in_shape
    movie = np.random.default_rng(0).standard_normal((c, args.frames, h, w)).astype(np.float32)
    for _ in range(2):
        predict(model, movie, session)
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        predict(model, movie, session)
        times.append(time.perf_counter() - t)
    Path(args.out).write_text(
        json.dumps({"load_s": load_s, "latency_s": times, "threads": torch.get_num_threads()})
    )


def predict_test(argv: list[str]) -> None:
    import h5py
    import numpy as np

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--test-names", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    from openretina_models import load_model, predict

    model = load_model(_model_dir(args.model))
    data_dir = Path(args.data_dir)
    out: dict[str, np.ndarray] = {}
    for session in sorted(model.data_info["sessions"]):
        files = [p for p in (data_dir / f"{session}.h5", data_dir / f"{session}.hdf5") if p.is_file()]
        with h5py.File(files[0], "r") as f:
            for name in args.test_names.split(","):
                key = f"stimulus_{name}"
                movie = np.asarray(f[key]) if key in f else np.load(data_dir / "stimuli" / f"{name}.npy")
                out[f"{session}/{name}"] = predict(model, movie, session)
    np.savez(args.out, **out)


def probe_data(argv: list[str]) -> None:
    """Our data path as `openretina train` runs it: read, split, first batch, one epoch."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--test-names", required=True)
    parser.add_argument("--in-memory", default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    in_memory: bool | str = {"true": True, "false": False}.get(args.in_memory, args.in_memory)
    import openretina_data as od
    from openretina_data.torch_loader import TorchBatches

    # Import cost is not part of "open to first batch"; warm up lazily imported submodules.
    for name in ("load_hdf5_dataset", "make_splits", "TrainBatches"):
        getattr(od, name)
    opened: dict[str, od.Dataset] = {}

    def open_batches() -> TorchBatches:
        names = args.test_names.split(",")
        dataset = od.load_hdf5_dataset(args.data_dir, test_names=names, in_memory=in_memory)
        opened["dataset"] = dataset
        splits = od.make_splits(dataset, clip_length=75, num_val_clips=20, train_chunk_size=50, seed=42)
        return TorchBatches(od.TrainBatches(dataset, splits, batch_size=args.batch_size))

    result = {**probe_epoch(open_batches), "notes": list(opened["dataset"].notes)}
    Path(args.out).write_text(json.dumps(result))


COMMANDS = {"predict-latency": predict_latency, "predict-test": predict_test, "probe-data": probe_data}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: ours_run.py {{{','.join(COMMANDS)}}} ...")
    COMMANDS[sys.argv[1]](sys.argv[2:])
