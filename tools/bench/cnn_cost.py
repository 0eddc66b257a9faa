"""What one training epoch of a Vystrčilová CNN costs on this CPU, measured on its small file.

The two ``vystrcilova_2024_*_cnn`` configs are too slow to train here (docs/benchmarks.md, "Outer
configs on a small file in their own format"); this measures by how much. It builds each config's
model exactly as shipped on the small file of ``baseline_formats.py`` (whose Sridhar reader
rebuilds every movie at 80 × 90 pixels), takes real training batches at the config's chunk length,
and times forward + loss + backward at each ``--threads`` count. One sample at 80 × 90 pixels
takes minutes here and the shipped batch of 16 would need some 16 times its memory, so it times
batches of ``--batch-sizes`` samples (1 by default) and scales the per-sample time to the shipped
batch; ``--batch-sizes 16`` times the real batch where a machine can hold it.

    OMP_NUM_THREADS=1 nice -n 19 uv run python tools/bench/cnn_cost.py OUT [--threads 1 2] [--repeats 2]

Prints one JSON line per measurement and a summary; writes OUT/cnn_cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CONFIGS = ("vystrcilova_2024_nm_cnn", "vystrcilova_2024_wn_cnn")


def prepared(name: str, root: Path) -> tuple[Any, Any, Any, Any]:
    """(config, dataset, splits, model) as a run of ``name`` on its small file builds them."""
    sys.path.insert(0, str(HERE))
    from baseline_formats import data_overrides
    from openretina_cli.config.compose import compose_config
    from openretina_cli.config.data import build_splits, load_checked_dataset
    from openretina_cli.config.frame_rate import rescale_to_frame_rate
    from openretina_cli.config.model import build_model

    overrides, _ = data_overrides(name, root)  # the responses' values do not change the cost
    cfg = compose_config(name, overrides)
    dataset = load_checked_dataset(cfg).dataset
    cfg = rescale_to_frame_rate(cfg, dataset.data_info.frame_rate_hz).cfg
    splits = build_splits(cfg, dataset)
    return cfg, dataset, splits, build_model(cfg.model, dataset)


def first_batch(dataset: Any, splits: Any, size: int, seed: int) -> Any:
    """The first training batch of ``size`` samples, as the training loop receives it."""
    from openretina_data.batching import TrainBatches
    from openretina_data.torch_loader import TorchBatches

    batches = TrainBatches(dataset, splits, size, seed=seed, drop_last=True)
    return next(iter(TorchBatches(batches)))


def time_step(
    model: Any, loss_name: str, batch: Any, threads: int, repeats: int
) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of forward + loss + regularisation + backward, ``repeats`` times (CPU
    time sums the threads; on a loaded machine it is the steadier number)."""
    import torch
    from openretina_models.losses import get_loss

    torch.set_num_threads(threads)
    loss_fn = get_loss(loss_name)
    model.train()
    seconds, cpu = [], []
    for _ in range(repeats):
        model.zero_grad(set_to_none=True)
        started, cpu_started = time.perf_counter(), time.process_time()
        prediction = model(batch.stimulus, batch.session)
        target = batch.responses[:, -prediction.shape[1] :]
        (loss_fn(prediction, target) + model.regularisation(batch.session)).backward()
        seconds.append(round(time.perf_counter() - started, 2))
        cpu.append(round(time.process_time() - cpu_started, 2))
    return seconds, cpu


def measure(name: str, root: Path, sizes: list[int], threads: list[int], repeats: int) -> dict[str, Any]:
    from openretina_data.batching import TrainBatches

    cfg, dataset, splits, model = prepared(name, root)
    shipped = int(cfg.dataloader.batch_size)
    per_epoch = len(TrainBatches(dataset, splits, shipped, seed=int(cfg.seed)))
    channels, height, width = dataset.data_info.input_shape
    row: dict[str, Any] = {
        "config": name,
        "frame": f"{channels} x {height} x {width}",
        "chunk_frames": int(cfg.dataloader.train_chunk_size),
        "shipped_batch_size": shipped,
        "train_batches_per_epoch": per_epoch,
        "train_chunks_per_epoch": sum(s.chunks_per_epoch() for s in splits.sessions.values()),
        "max_epochs": int(cfg.trainer.max_epochs),
        "timings": [],
    }
    for size in sizes:
        batch = first_batch(dataset, splits, size, int(cfg.seed))
        for n in threads:
            seconds, cpu = time_step(model, str(cfg.loss), batch, n, repeats)
            best = min(seconds)
            timing = {
                "batch_size": size,
                "threads": n,
                "wall_s": seconds,
                "cpu_s": cpu,
                "load_1min": round(os.getloadavg()[0], 2),
                "s_per_sample": round(best / size, 2),
                "s_per_shipped_batch": round(best / size * shipped, 1),
                "s_per_epoch": round(best / size * shipped * per_epoch),
                "h_for_max_epochs": round(best / size * shipped * per_epoch * row["max_epochs"] / 3600, 1),
                "s_per_epoch_from_cpu": round(min(cpu) / size * shipped * per_epoch),  # 1 thread: no waiting
                "max_rss_gib_so_far": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            }
            row["timings"].append(timing)
            print(json.dumps({"config": name, **timing}), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--only", nargs="*", default=list(CONFIGS))
    parser.add_argument("--batch-sizes", nargs="*", type=int, default=[1])
    parser.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    parsed = parser.parse_args()
    parsed.out.mkdir(parents=True, exist_ok=True)
    path = parsed.out / "cnn_cost.json"
    rows = json.loads(path.read_text()) if path.is_file() else []
    for name in parsed.only:
        started = time.perf_counter()
        row = measure(name, parsed.out, parsed.batch_sizes, parsed.threads, parsed.repeats)
        row["script_wall_s"] = round(time.perf_counter() - started, 1)
        rows = [r for r in rows if r["config"] != name] + [row]
        path.write_text(json.dumps(rows, indent=2) + "\n")
        summary = {k: v for k, v in row.items() if k != "timings"}
        print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
