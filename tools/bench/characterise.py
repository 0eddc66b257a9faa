"""Time per neuron of `openretina characterise`'s work: all neurons of a session at once vs one at a time.

Builds the default experiment's network (untrained: the time does not depend on the weights; or
`--model RUN/model`), makes the default stimuli (chirp, 8 bar directions, flashes, gratings,
120 s of dense noise) and runs `insilico.characterisation.characterise` on all N neurons of one
session in one call, and on `--single` neurons each in a call of its own, alternating
batched, single, batched, single... Prints the seconds per stimulus and per neuron of each, the
ratio, and the load average before and after (the machine may be shared).

    uv run python tools/bench/characterise.py                    # 32 neurons, 3 alone, 2 pairs
    uv run python tools/bench/characterise.py --model RUN/model --neurons 64
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import openretina_models as om
import torch
from openretina_models.insilico import characterisation, stimuli

DEFAULT = {
    "in_shape": (2, 18, 16),
    "hidden_channels": [8, 8],
    "temporal_kernel_sizes": [11, 5],
    "spatial_kernel_sizes": [9, 5],
}
DATA_INFO = {
    "input_shape": [2, 18, 16],
    "frame_rate_hz": 30.0,
    "pixel_size_um": 30.0,
    "stimulus_range": {"min": [-4.9, -5.0], "max": [5.0, 4.8]},
}


def timed(model: torch.nn.Module, session: str, neurons: list[int] | None, space, sets) -> dict[str, float]:
    marks: dict[str, float] = {}
    start = last = time.perf_counter()

    def progress(name: str, _: int) -> None:
        nonlocal last
        now = time.perf_counter()
        marks[name] = now - last
        last = now

    characterisation.characterise(model, {session: neurons}, space, sets, progress=progress)
    marks["total"] = time.perf_counter() - start
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default=None, help="a trained model (default: the default network, untrained)"
    )
    parser.add_argument("--neurons", type=int, default=32, help="neurons of the untrained model's session")
    parser.add_argument("--single", type=int, default=3, help="neurons characterised one at a time")
    parser.add_argument("--pairs", type=int, default=2, help="batched/single repetitions")
    parser.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.model:
        model = om.load_model(args.model).eval()
        space = stimuli.StimulusSpace.from_model(
            model, pixel_size_um=model.data_info.get("pixel_size_um") or 30.0
        )
    else:
        model = om.create_model("core_readout", n_neurons={"s": args.neurons}, **DEFAULT).eval()
        model.data_info = DATA_INFO
        space = stimuli.StimulusSpace.from_model(model)
    session = next(iter(model.n_neurons))
    count = int(model.n_neurons[session])
    sets, _ = characterisation.make_stimuli(space)
    load_before = os.getloadavg()
    batched, single = [], []
    for _ in range(args.pairs):
        batched.append(timed(model, session, None, space, sets))
        single.append([timed(model, session, [i], space, sets) for i in range(args.single)])
    load_after = os.getloadavg()
    best_batched = min(batched, key=lambda m: m["total"])
    per_neuron_batched = best_batched["total"] / count
    per_neuron_single = min(sum(m["total"] for m in run) / len(run) for run in single)
    result = {
        "machine": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "neurons": count,
        "single_neurons": args.single,
        "batched_seconds": [round(m["total"], 2) for m in batched],
        "batched_stages_best": {k: round(v, 2) for k, v in best_batched.items()},
        "per_neuron_batched_s": round(per_neuron_batched, 3),
        "per_neuron_single_s": round(per_neuron_single, 3),
        "speed_up": round(per_neuron_single / per_neuron_batched, 1),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
