"""Time per neuron of `openretina characterise`'s work: all neurons of a session at once vs one at a time.

Builds the default experiment's network (untrained: the time does not depend on the weights; or
`--model RUN/model`), makes the default stimuli (chirp, 8 bar directions, flashes, gratings,
120 s of dense noise) and runs `insilico.characterisation.characterise` on all N neurons of one
session in one call, and on `--single` neurons each in a call of its own, alternating
batched, single, batched, single... Prints the seconds per stimulus and per neuron of each, the
ratio, and the load average before and after (the machine may be shared).

With `--against-epoch`, each repetition first trains the default experiment (`openretina train`,
`--epochs` epochs, no baseline, the benchmark's epoch timer as an extra callback) and then
characterises that run's trained model (all neurons of both sessions) three ways: the whole
command as a user runs it (`openretina characterise RUN`, a process of its own: start, imports,
model, stimuli, types, files, figures and the refresh of the run's report), the command with
`--no-figures --out` (tables only), the library call in this process (its batches on one-thread
workers, one per torch thread, and once more in turn on all of torch's threads), and the whole command
called in this process (imports done, as at the end of a training run); and, as the floor of
any such process, `python -c "import torch"`. Training epochs and characterisations thus
alternate under the same load.

    uv run python tools/bench/characterise.py                    # 32 neurons, 3 alone, 2 pairs
    uv run python tools/bench/characterise.py --model RUN/model --neurons 64
    uv run python tools/bench/characterise.py --against-epoch --pairs 2
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
    return timed_sessions(model, {session: neurons}, space, sets)


def timed_sessions(model: torch.nn.Module, sessions: dict, space, sets) -> dict[str, float]:
    marks: dict[str, float] = {}
    start = last = time.perf_counter()

    def progress(name: str, _: int) -> None:
        nonlocal last
        now = time.perf_counter()
        marks[name] = now - last
        last = now

    characterisation.characterise(model, sessions, space, sets, progress=progress)
    marks["total"] = time.perf_counter() - start
    return marks


HOOKS = Path(__file__).resolve().parent / "hooks"
TIMER = "+training_callbacks.bench_timer._target_=bench_timer.BenchTimer"


def train_default(log_dir: Path, epochs: int) -> tuple[list[float], Path]:
    """Train the default experiment; the seconds of each training epoch (validation included) and the run."""
    timings = log_dir / "timer.json"
    env = dict(
        os.environ,
        PYTHONPATH=str(HOOKS),
        BENCH_TIMINGS_OUT=str(timings),
        BENCH_T0=str(time.time()),
    )
    command = [
        "openretina", "train", TIMER, f"trainer.max_epochs={epochs}", "baseline=false",
        f"paths.log_dir={log_dir}",
    ]  # fmt: skip
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    epochs_s = [end - start for start, end in json.loads(timings.read_text())["train_epochs"]]
    (run,) = [p.parent for p in log_dir.glob("runs/*/*/results.json")]
    return epochs_s, run


def process_seconds(command: list[str]) -> float:
    """Wall-clock seconds of `command` as a process of its own."""
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def command_seconds(*args: str) -> float:
    """Wall-clock seconds of `openretina characterise ARGS` as a process of its own."""
    return process_seconds(["openretina", "characterise", *args])


def in_process_seconds(run: Path, out: Path) -> float:
    """Seconds of the whole command (model, stimuli, types, files, figures) called in this process
    with torch and matplotlib already imported: about what characterising at the end of a training
    run, in the run's own process, would add to it (that run would not even load the model)."""
    from contextlib import redirect_stdout

    from openretina_cli.commands import characterise_figures
    from openretina_cli.main import main as cli

    # a training run's report has imported matplotlib already (`_pyplot` in the code before issue 22's s9)
    (getattr(characterise_figures, "_matplotlib", None) or characterise_figures._pyplot)()
    start = time.perf_counter()
    with open(os.devnull, "w") as sink, redirect_stdout(sink):
        cli(["characterise", str(run), "--out", str(out)])
    return time.perf_counter() - start


def intra_op_seconds(model: torch.nn.Module, space, sets) -> float | None:
    """The library call the way it ran before its batches were shown side by side (issue 22, s9):
    everything in turn, each operation on all of torch's threads (None: a library without
    `workers`, which runs that way anyway)."""
    if "workers" not in inspect.signature(characterisation.characterise).parameters:
        return None
    start = time.perf_counter()
    characterisation.characterise(model, {s: None for s in model.n_neurons}, space, sets, workers=1)
    return time.perf_counter() - start


def against_epoch(pairs: int, epochs: int) -> dict[str, object]:
    """Training epochs and characterisations of the trained model, alternating."""
    rows = []
    for _ in range(pairs):
        work = Path(tempfile.mkdtemp(prefix="bench_characterise_"))
        try:
            load = os.getloadavg()[0]
            epochs_s, run = train_default(work / "logs", epochs)
            load_between = os.getloadavg()[0]
            command_s = command_seconds(str(run))  # into RUN/characterisation, refreshing the report
            tables_s = command_seconds(str(run), "--no-figures", "--out", str(work / "tables"))
            torch_s = process_seconds([sys.executable, "-c", "import torch"])  # the floor of any command
            model = om.load_model(run / "model").eval()
            space = stimuli.StimulusSpace.from_model(
                model, pixel_size_um=model.data_info.get("pixel_size_um") or DATA_INFO["pixel_size_um"]
            )
            sets, _ = characterisation.make_stimuli(space)
            neurons = sum(int(n) for n in model.n_neurons.values())
            marks = timed_sessions(model, {s: None for s in model.n_neurons}, space, sets)
            intra_op_s = intra_op_seconds(model, space, sets)
            in_process_s = in_process_seconds(run, work / "in_process")
            rows.append(
                {
                    "load_before": round(load, 1),
                    "epoch_s": [round(e, 2) for e in epochs_s],
                    "load_after_training": round(load_between, 1),
                    "neurons": neurons,
                    "command_s": round(command_s, 2),
                    "command_no_figures_s": round(tables_s, 2),
                    "python_import_torch_s": round(torch_s, 2),
                    "library_s": round(marks["total"], 2),
                    "library_per_neuron_s": round(marks["total"] / neurons, 3),
                    "library_stages_s": {k: round(v, 2) for k, v in marks.items()},
                    "library_one_worker_s": None if intra_op_s is None else round(intra_op_s, 2),
                    "command_in_process_s": round(in_process_s, 2),
                    "load_after": round(os.getloadavg()[0], 1),
                }
            )
            print(json.dumps(rows[-1]), file=sys.stderr)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return {
        "machine": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "pairs": rows,
    }


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
    parser.add_argument(
        "--against-epoch", action="store_true", help="alternate training epochs of the default experiment"
    )
    parser.add_argument("--epochs", type=int, default=2, help="training epochs per repetition (default 2)")
    args = parser.parse_args()
    if args.against_epoch:
        result = against_epoch(args.pairs, args.epochs)
        print(json.dumps(result, indent=2))
        if args.out:
            Path(args.out).write_text(json.dumps(result, indent=2))
        return
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
