"""GPU variant of benchmark cases 1–3, as one short script for an accelerator machine.

    python tools/bench/gpu_training.py --out gpu.json [--peer-python /path/to/peer/bin/python]

Also (issue 14) the large-frame case: the zoo's salamander_50x50 retina (1 ch, 50x50, 100 Hz) with
the Maheswaranathan model before and after (strided first layer, longer chunks), ours only.

Run it with the interpreter of an environment that has our packages and a CUDA torch (e.g.
`uv run python tools/bench/gpu_training.py` in a synced workspace). Without CUDA it says so and
exits 0 (writing a JSON that records why nothing was measured). With `--peer-python` (a venv with
openretina==1.1.1 and a CUDA torch) the two tools alternate run by run as on CPU; without it only
ours is measured. Per run it records training throughput, time in data loading (between steps)
vs compute (inside steps, timed with CUDA synchronisation), seconds per epoch, peak GPU memory
and GPU utilisation sampled from nvidia-smi every 0.2 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from folders import make_own_folder, remove_own_folder

sys.path.insert(0, str(Path(__file__).resolve().parent))

from contenders import (
    BENCH_SRC,
    HOOKS,
    PEER_TUTORIAL_ARCHITECTURE,
    TIMER_OVERRIDE,
    find_run_dir,
    tutorial_overrides,
)
from measure import run_measured
from peer import REPO_ROOT, clean_env
from stats import interleaved_order, pair_ratios, summarize
from timings import run_metrics
from zoo import MEMBERS

# The model and chunks of configs/maheswaranathan_2023_core_readout.yaml before and after issue 14
# (frame counts at 100 Hz: frame_counts_at_hz=null keeps them as given).
LARGE_FRAMES_BEFORE = [
    "frame_counts_at_hz=null",
    "dataloader.batch_size=64",
    "dataloader.train_chunk_size=90",
    "dataloader.clip_length=90",
    "model.hidden_channels=[16,16]",
    "model.temporal_kernel_sizes=[31,11]",
    "model.spatial_kernel_sizes=[15,7]",
    "model.pooling=[2,1]",
]
LARGE_FRAMES_AFTER = [
    "frame_counts_at_hz=null",
    "dataloader.batch_size=32",
    "dataloader.train_chunk_size=190",
    "dataloader.clip_length=190",
    "model.hidden_channels=[16,16]",
    "model.temporal_kernel_sizes=[31,11]",
    "model.spatial_kernel_sizes=[15,7]",
    "model.pooling=1",
    "model.stride=[2,1]",
]


class GpuSampler(threading.Thread):
    """Polls nvidia-smi for utilisation (%) and memory used (MiB) of GPU 0."""

    def __init__(self, interval_s: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.interval_s = interval_s
        self.samples: list[tuple[float, float, float]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        query = [
            "nvidia-smi",
            "--query-gpu=utilization.gpu,memory.used",
            "--format=csv,noheader,nounits",
            "-i",
            "0",
        ]
        while not self._halt.is_set():
            done = subprocess.run(query, capture_output=True, text=True)
            if done.returncode == 0 and done.stdout.strip():
                util, mem = (float(v) for v in done.stdout.strip().split(",")[:2])
                self.samples.append((time.time(), util, mem))
            self._halt.wait(self.interval_s)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def between(self, start: float, end: float) -> dict[str, float]:
        inside = [(u, m) for t, u, m in self.samples if start <= t <= end]
        if not inside:
            return {"gpu_util_pct": float("nan"), "gpu_mem_max_mib": float("nan")}
        return {
            "gpu_util_pct": statistics.mean(u for u, _ in inside),
            "gpu_mem_max_mib": max(m for _, m in inside),
        }


def _train(tool: str, python: Path, data: Path, overrides: list[str], log_dir: Path) -> dict[str, float]:
    remove_own_folder(log_dir, "timings.json")
    make_own_folder(log_dir)
    timings = log_dir / "timings.json"
    common = [*overrides, f"paths.log_dir={log_dir}", TIMER_OVERRIDE]
    if tool == "ours":
        if "data_io.test_names=[random_noise_2, random_noise_3]" in overrides:
            common += PEER_TUTORIAL_ARCHITECTURE  # identical settings on the tutorial data, as on CPU
        script = Path(python).parent / "openretina"
        cmd = [
            str(script),
            "train",
            "--config-path",
            str(REPO_ROOT / "configs"),
            "--config-name",
            "hdf5_core_readout",
            "trainer=gpu",
            *common,
        ]
        env = clean_env({"PYTHONPATH": str(HOOKS)})
    else:
        configs = REPO_ROOT / ".bench" / "peer-configs"
        cmd = [
            str(python),
            str(BENCH_SRC / "peer_run.py"),
            "train",
            "--config-path",
            str(configs),
            "--config-name",
            "hdf5_core_readout",
            "+trainer.accelerator=gpu",
            *common,
        ]
        env = clean_env({"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"})
    env.update(BENCH_TIMINGS_OUT=str(timings), BENCH_CUDA_SYNC="1", OPENRETINA_CACHE_DIRECTORY=str(log_dir))
    sampler = GpuSampler()
    sampler.start()
    result = run_measured(cmd, env=env, cwd=log_dir, log_path=log_dir / "log.txt", timeout_s=300)
    sampler.stop()
    metrics: dict[str, float] = {
        "returncode": float(result.returncode),
        "wall_s": result.wall_s,
        "peak_rss_mib": result.peak_rss_mib,
    }
    if result.returncode != 0 or not timings.is_file():
        print(f"  {tool} failed; see {log_dir / 'log.txt'}", flush=True)
        return metrics
    record = json.loads(timings.read_text())
    metrics.update(run_metrics(record, result.t_start + result.wall_s))
    batches = [b for b in record["train_batches"] if b[1] is not None]
    compute = sum(end - start for start, end, *_ in batches)
    metrics["compute_s"] = compute
    metrics["data_loading_share"] = (
        metrics["fetch_s"] / (metrics["fetch_s"] + compute) if compute else float("nan")
    )
    if batches:
        metrics.update(sampler.between(batches[0][0], batches[-1][1]))
    metrics["run_dir"] = str(find_run_dir(log_dir))  # type: ignore[assignment]
    return metrics


def _generate(python: Path, target: Path, args: list[str]) -> Path:
    if not (target / "stimuli").is_dir():
        script = Path(python).parent / "openretina"
        subprocess.run([str(script), "create-data", str(target), *args], check=True, env=clean_env())
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "tools" / "bench" / "results" / "gpu.json")
    parser.add_argument(
        "--peer-python", type=Path, default=None, help="python of a CUDA venv with openretina 1.1.1"
    )
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--work", type=Path, default=REPO_ROOT / ".bench" / "gpu")
    args = parser.parse_args(argv)

    import torch

    report: dict[str, Any] = {"schema": "openretina-bench-gpu/1", "cuda": torch.cuda.is_available()}
    if not torch.cuda.is_available():
        report["message"] = "no CUDA device visible to torch; nothing measured"
        print(f"gpu_training: {report['message']} (torch {torch.__version__}).")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
        return 0
    report["device"] = torch.cuda.get_device_name(0)
    report["torch"] = torch.__version__
    tools = ("ours", "peer") if args.peer_python else ("ours",)
    pythons = {"ours": Path(sys.executable), "peer": args.peer_python}
    ours_python = pythons["ours"]
    tutorial = _generate(ours_python, args.work / "data" / "tutorial", ["--kind", "tutorial"])
    sessions16 = _generate(
        ours_python, args.work / "data" / "sessions_16", ["--kind", "tutorial", "--num-sessions", "16"]
    )
    longer = _generate(
        ours_python, args.work / "data" / "length_8x", ["--kind", "tutorial", "--clip-length", "600"]
    )
    retina = _generate(ours_python, args.work / "data" / "retina", ["--kind", "retina"])
    salamander = next(m for m in MEMBERS if m.name == "salamander_50x50")  # issue 14: large frames
    large = _generate(
        ours_python, args.work / "data" / "large_frames", ["--kind", "retina", *salamander.cli_options()]
    )
    runs: list[tuple[str, Path, list[str]]] = [
        ("tutorial", tutorial, [*tutorial_overrides(tutorial), "trainer.max_epochs=3"]),
        ("scaling/sessions_16", sessions16, [*tutorial_overrides(sessions16), "trainer.max_epochs=1"]),
        ("scaling/length_8x", longer, [*tutorial_overrides(longer), "trainer.max_epochs=1"]),
        (
            "quality",
            retina,
            [
                f"paths.data_dir={retina}",
                "trainer.max_epochs=10000",
                "+trainer.max_time=00:00:01:00",
                "data_io.test_names=[natural_test]",
                "data_io.color_channels=2",
                "data_io.video_height=18",
                "data_io.video_width=16",
            ],
        ),
    ]
    large_data = [
        f"paths.data_dir={large}",
        "trainer.max_epochs=3",
        "data_io.test_names=[natural_test]",
        "data_io.color_channels=1",
        "data_io.video_height=50",
        "data_io.video_width=50",
    ]
    # Maheswaranathan-sized input (1 ch, 50x50, 100 Hz, 40-frame filters), ours only: the
    # maheswaranathan_2023 model before issue 14 and the strided first layer with longer chunks after.
    large_runs = [
        ("large_frames/before", large, [*large_data, *LARGE_FRAMES_BEFORE]),
        ("large_frames/after", large, [*large_data, *LARGE_FRAMES_AFTER]),
    ]
    report["cases"] = {}
    for name, data, overrides in [*runs, *large_runs]:
        case_tools = ("ours",) if name.startswith("large_frames") else tools
        per_tool: dict[str, list[dict[str, float]]] = {t: [] for t in case_tools}
        order = (
            interleaved_order(args.pairs)
            if len(case_tools) == 2
            else [(i, "ours") for i in range(args.pairs)]
        )
        for pair, tool in order:
            print(f"[gpu] {name} {tool} {pair}", flush=True)
            per_tool[tool].append(
                _train(tool, pythons[tool], data, overrides, args.work / "runs" / name / f"{tool}-{pair}")
            )
        summary: dict[str, Any] = {}
        for metric in (
            "throughput",
            "epoch_s",
            "step_s",
            "fetch_s",
            "data_loading_share",
            "gpu_util_pct",
            "gpu_mem_max_mib",
            "first_step_s",
            "peak_rss_mib",
        ):
            values = {t: [r.get(metric) for r in per_tool[t]] for t in case_tools}
            summary[metric] = {t: summarize(v).to_dict() for t, v in values.items()}
            if len(case_tools) == 2:
                summary[metric]["ratio"] = summarize(pair_ratios(values["ours"], values["peer"])).to_dict()
        report["cases"][name] = {"runs": per_tool, "summary": summary}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
    print(f"gpu_training: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
