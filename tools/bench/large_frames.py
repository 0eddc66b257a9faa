"""Training throughput on Maheswaranathan-sized input (1 channel, 50x50, 100 Hz, 40-frame filters).

Times training steps (forward, Poisson loss, backward, Adam) of `core_readout` variants on random
batches shaped like the maheswaranathan_2023 config's (64 chunks of 90 frames), in one process:
the variants alternate step block by step block (A B C A B C ...), so all see the same machine
state, and every figure is a median over rounds with its ratio to the baseline taken round by round.
Throughput is scored frames x neurons per second (frames after each chunk's warm-up).

    uv run python tools/bench/large_frames.py --rounds 5 --out /tmp/large_frames.json
    uv run python tools/bench/large_frames.py --device cuda   # the same on a GPU

Quality at these settings is measured by training on the zoo's `salamander_50x50` member
(tools/bench/run.py --cases zoo --zoo-members salamander_50x50 --zoo-overrides ...).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from openretina_models import create_model

NEURONS = {"session_0": 5, "session_1": 5}
SHAPE = (1, 50, 50)

# The maheswaranathan_2023_core_readout model before issue 14.
BEFORE = {
    "hidden_channels": [16, 16],
    "temporal_kernel_sizes": [31, 11],
    "spatial_kernel_sizes": [15, 7],
    "pooling": [2, 1],
    "gamma_input": 0.3,
    "gamma_temporal": 0.1,
}


# The generic hdf5_core_readout model on these frames: when issue 14 was filed (frame counts taken
# as frames: 11/5-frame kernels, 50-frame chunks), and now (its 30 Hz counts rescaled to 100 Hz:
# [70, 37]-frame kernels, 267-frame chunks, batches of 5) with and without `stride: auto`.
GENERIC_FILED = {
    "hidden_channels": [16, 16],
    "temporal_kernel_sizes": [11, 5],
    "spatial_kernel_sizes": [9, 5],
}
GENERIC = {"hidden_channels": [16, 16], "temporal_kernel_sizes": [70, 37], "spatial_kernel_sizes": [11, 5]}


@dataclass
class Variant:
    name: str
    model: dict[str, Any]
    chunk: int = 90
    batch: int = 64
    channels_last: bool = False
    bf16: bool = False
    times: list[float] = field(default_factory=list)  # seconds per step, one median per round


def variants() -> list[Variant]:
    strided = {**BEFORE, "pooling": 1, "stride": [2, 1]}
    return [
        Variant("before", dict(BEFORE)),
        Variant("chunk_190", dict(BEFORE), chunk=190, batch=32),
        Variant("stride_2", strided),
        Variant("stride_2_chunk_190", strided, chunk=190, batch=32),
        Variant("stride_2_8ch_chunk_190", {**strided, "hidden_channels": [8, 16]}, chunk=190, batch=32),
        Variant("stride_2_point_chunk_190", {**strided, "readout": "point_gaussian"}, chunk=190, batch=32),
        Variant("before_channels_last", dict(BEFORE), channels_last=True),
        Variant("before_bf16", dict(BEFORE), bf16=True),
        Variant("generic_filed", dict(GENERIC_FILED), chunk=50, batch=16),
        Variant("generic_full_resolution", dict(GENERIC), chunk=267, batch=5),
        Variant("generic_stride_auto", {**GENERIC, "stride": [2, 1]}, chunk=267, batch=5),
    ]


def _setup(variant: Variant, device: torch.device) -> tuple[Any, Any, torch.Tensor, torch.Tensor, int]:
    torch.manual_seed(0)
    model = create_model("core_readout", in_shape=SHAPE, n_neurons=NEURONS, **variant.model).to(device)
    if variant.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    stimulus = torch.randn(variant.batch, SHAPE[0], variant.chunk, *SHAPE[1:], device=device)
    if variant.channels_last:
        stimulus = stimulus.contiguous(memory_format=torch.channels_last_3d)
    scored = variant.chunk - int(model.warmup_frames)
    target = torch.poisson(torch.ones(variant.batch, scored, NEURONS["session_0"], device=device))
    return model, optimizer, stimulus, target, scored


def _step(variant: Variant, model: Any, optimizer: Any, stimulus: torch.Tensor, target: torch.Tensor) -> None:
    autocast = (
        torch.autocast(device_type=stimulus.device.type, dtype=torch.bfloat16)
        if variant.bf16
        else contextlib.nullcontext()
    )
    with autocast:
        prediction = model(stimulus, "session_0")
    loss = torch.nn.functional.poisson_nll_loss(prediction.float(), target, log_input=False)
    loss = loss + model.regularisation("session_0")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def measure(
    rounds: int, steps: int, device: torch.device, only: list[str] | None, batch_divisor: int = 1
) -> dict[str, Any]:
    chosen = [v for v in variants() if not only or v.name in only]
    for v in chosen:  # smaller batches for a slow machine: the throughput per frame barely changes
        v.batch = max(1, v.batch // batch_divisor)
    built = {v.name: _setup(v, device) for v in chosen}
    for v in chosen:  # warm-up, not timed
        model, optimizer, stimulus, target, _ = built[v.name]
        _step(v, model, optimizer, stimulus, target)
    for _ in range(rounds):
        for v in chosen:
            model, optimizer, stimulus, target, _ = built[v.name]
            times = []
            for _ in range(steps):
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t = time.perf_counter()
                _step(v, model, optimizer, stimulus, target)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t)
            v.times.append(statistics.median(times))
            print(f"  {v.name}: {v.times[-1]:.2f} s per step", flush=True)

    def throughput(v: Variant) -> list[float]:
        return [v.batch * built[v.name][4] * NEURONS["session_0"] / t for t in v.times]

    base = throughput(chosen[0])
    out: dict[str, Any] = {"device": str(device), "threads": torch.get_num_threads(), "variants": {}}
    for v in chosen:
        per_round = throughput(v)
        out["variants"][v.name] = {
            "model": v.model,
            "chunk": v.chunk,
            "batch": v.batch,
            "scored_frames_per_chunk": built[v.name][4],
            "channels_last": v.channels_last,
            "bf16": v.bf16,
            "frames_x_neurons_per_s": statistics.median(per_round),
            "frames_x_neurons_per_s_range": [min(per_round), max(per_round)],
            "speedup_vs_before": statistics.median([p / q for p, q in zip(per_round, base, strict=True)]),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant per round")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-divisor", type=int, default=1, help="divide every variant's batch size")
    parser.add_argument(
        "--only", default=None, help="comma-separated variant names (the first is the baseline)"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here; nothing measured")
        return 0
    only = [x.strip() for x in args.only.split(",")] if args.only else None
    result = measure(args.rounds, args.steps, device, only, args.batch_divisor)
    result["batch_divisor"] = args.batch_divisor
    for name, v in result["variants"].items():
        print(
            f"{name:28s} {v['frames_x_neurons_per_s']:10.0f} frames x neurons/s "
            f"[{v['frames_x_neurons_per_s_range'][0]:.0f}-{v['frames_x_neurons_per_s_range'][1]:.0f}]  "
            f"x{v['speedup_vs_before']:.2f} vs before"
        )
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
