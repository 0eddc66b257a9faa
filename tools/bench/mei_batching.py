"""How much faster is one batched stimulus optimisation than one run per neuron?

Optimises the MEIs of N neurons (default 32) of one session twice per pair: as N separate runs of
`openretina_models.insilico.optimise_stimuli` (one target each) and as one run over a batch of N,
in the order separate, batched, separate, batched, ... Reports each pair's times and their ratio,
and checks that both give the same stimuli. Then times one forward + backward pass per stimulus
alone and in the batch, in each memory layout: the model's own arithmetic, the limit of what
batching can gain. CPU by default.

    uv run python tools/bench/mei_batching.py                      # the default experiment's model
    uv run python tools/bench/mei_batching.py --model RUN/model    # a trained model
    uv run python tools/bench/mei_batching.py --size small         # a small model (1 layer, 4 channels)
    uv run python tools/bench/mei_batching.py --layout contiguous  # without channels-last
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import statistics
import time

import openretina_models as om
import torch
from openretina_models import insilico
from openretina_models.insilico.layout import LAYOUTS

# The default experiment (configs/simulated_retina_core_readout.yaml) and a small model.
SIZES = {
    "default": {
        "in_shape": (2, 18, 16),
        "hidden_channels": [8, 8],
        "temporal_kernel_sizes": [11, 5],
        "spatial_kernel_sizes": [9, 5],
    },
    "small": {
        "in_shape": (2, 18, 16),
        "hidden_channels": [4],
        "temporal_kernel_sizes": [5],
        "spatial_kernel_sizes": [3],
    },
}


def build_model(args: argparse.Namespace) -> torch.nn.Module:
    if args.model:
        return om.load_model(args.model).eval()
    torch.manual_seed(0)
    kwargs = dict(SIZES[args.size])
    return om.create_model("core_readout", n_neurons={"s": args.neurons}, **kwargs).eval()


def optimise(model: torch.nn.Module, session: str, neurons: list[int], args: argparse.Namespace):
    c, h, w = model.in_shape
    frames = model.warmup_frames + args.output_frames
    objective = insilico.ResponseObjective(model, session, neurons)
    start = insilico.random_start((c, frames, h, w), seeds=neurons, std=0.01)
    norm = 0.25 * (c * frames * h * w) ** 0.5
    return insilico.optimise_stimuli(
        objective,
        model,
        start,
        constraints=[insilico.L2Norm(norm), insilico.ValueRange(-3.0, 3.0)],
        stopper=insilico.FixedIterations(args.iterations),
        layout=args.layout,
    )


def pass_ms(model: torch.nn.Module, session: str, neurons: list[int], args, memory_format) -> float:
    """Median ms per stimulus of one forward + backward pass over `neurons` as one batch: the
    model's own arithmetic, which no batching scheme can remove."""
    c, h, w = model.in_shape
    frames = model.warmup_frames + args.output_frames
    objective = insilico.ResponseObjective(model, session, neurons)
    stimuli = torch.randn(len(neurons), c, frames, h, w).contiguous(memory_format=memory_format)
    stimuli.requires_grad_(True)
    times = []
    for _ in range(6):  # the first pass sets oneDNN up and is not counted
        started = time.perf_counter()
        (-objective(stimuli).sum()).backward()
        times.append(time.perf_counter() - started)
    return 1e3 * statistics.median(times[1:]) / len(neurons)


def ceiling(model: torch.nn.Module, session: str, neurons: list[int], args) -> dict[str, dict[str, float]]:
    """Forward + backward per stimulus, alone and in the batch, in each layout."""
    trained = [p for p in model.parameters() if p.requires_grad]
    for parameter in trained:  # frozen, as optimise_stimuli has them
        parameter.requires_grad_(False)
    try:
        return {
            name: {
                "alone_ms": pass_ms(model, session, neurons[:1], args, memory_format),
                "batched_ms": pass_ms(model, session, neurons, args, memory_format),
            }
            for name, memory_format in LAYOUTS.items()
        }
    finally:
        for parameter in trained:
            parameter.requires_grad_(True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="a saved model (default: a fresh one of --size)")
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument("--session", help="session of --model (default: its first)")
    parser.add_argument("--neurons", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--output-frames", type=int, default=10, help="stimulus frames after the warm-up")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument(
        "--layout",
        choices=["auto", "fastest", *LAYOUTS],
        default="auto",
        help="memory layout the model sees (default: auto, channels-last for batches of 8+ on the CPU;"
        " fastest: the faster after timing both)",
    )
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = build_model(args)
    session = args.session or next(iter(model.n_neurons))
    neurons = list(range(min(args.neurons, model.n_neurons[session])))
    optimise(model, session, neurons[:2], args)  # warm-up, unmeasured
    pairs = []
    for pair in range(args.pairs):
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        alone = [optimise(model, session, [n], args) for n in neurons]
        separate_s = time.perf_counter() - started
        started = time.perf_counter()
        together = optimise(model, session, neurons, args)
        batched_s = time.perf_counter() - started
        batched = together.stimuli
        difference = max(float((batched[i] - a.stimuli[0]).abs().max()) for i, a in enumerate(alone))
        layouts = dict(collections.Counter(a.layout for a in alone))
        pairs.append(
            {
                "separate_s": separate_s,
                "batched_s": batched_s,
                "ratio": separate_s / batched_s,
                "max_difference": difference,
                "separate_layouts": layouts,
                "batched_layout": together.layout,
                "load_average_1min": [load_before, os.getloadavg()[0]],
            }
        )
        print(
            f"pair {pair + 1}: separate {separate_s:.2f} s, batched {batched_s:.2f} s, "
            f"ratio {separate_s / batched_s:.2f}x, max |difference| {difference:.1e}, "
            f"layouts: batched {together.layout}, separate {layouts}, "
            f"load average {load_before:.2f} -> {os.getloadavg()[0]:.2f}",
            flush=True,
        )
    ratios = [p["ratio"] for p in pairs]
    print(f"median ratio {statistics.median(ratios):.2f}x (min {min(ratios):.2f}, max {max(ratios):.2f})")
    passes = ceiling(model, session, neurons, args)
    for name, times in passes.items():
        print(
            f"forward + backward per stimulus, {name}: {times['alone_ms']:.2f} ms alone, "
            f"{times['batched_ms']:.2f} ms in a batch of {len(neurons)}"
        )
    if args.json:
        record = {
            "model": args.model or args.size,
            "neurons": len(neurons),
            "iterations": args.iterations,
            "layout": args.layout,
            "stimulus": [
                int(model.in_shape[0]),
                model.warmup_frames + args.output_frames,
                *model.in_shape[1:],
            ],
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(),
            "pairs": pairs,
            "pass_per_stimulus_ms": passes,
        }
        with open(args.json, "w") as handle:
            json.dump(record, handle, indent=2)


if __name__ == "__main__":
    main()
