"""The peak memory of a run's own process after training, two versions of our code alternating
(issue 24).

A process's peak RSS (VmHWM) is usually training's; to see what evaluation, baseline and report
add, each run here resets the kernel's peak mark (``/proc/self/clear_refs``, Linux) when the run
hands training's freed memory back (the first `garbage_collection.return_freed_memory`, at the
start of the evaluation), and reads it again when the run has finished. Runs are the tutorial
case's (`tools/bench/cases.py`: 1.x's tutorial architecture, 3 epochs) in one environment (default
.bench/ours-venv) with each version's source tree first on PYTHONPATH, as `post_training.py` does.
Prints one JSON line per run and writes them all to ``--out``.

    uv run python tools/bench/post_training_rss.py --tree before=/tmp/old --tree after=. --runs 2 \\
        --out tools/bench/results/issue24/post_s9/post_training_rss.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("openretina-cli", "openretina-data", "openretina-models")
OVERRIDES = [
    "data_io.test_names=[random_noise_2, random_noise_3]",
    "data_io.color_channels=3",
    "data_io.video_height=16",
    "data_io.video_width=8",
    "trainer.max_epochs=3",
    "dataloader.batch_size=64",
    "model.hidden_channels=[8,8,8]",
    "model.temporal_kernel_sizes=[8,8,8]",
    "model.spatial_kernel_sizes=[8,8,8]",
    "model.spatial_padding=[0,4,4]",
    "++trainer.enable_progress_bar=false",
]

# Run inside the measured process: mark the post-training peak, then train as `openretina train`.
PROBE = """
import json, sys
from openretina_cli import garbage_collection

def status():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) // 1024 for key in ("VmRSS", "VmHWM")}

seen = {}
hand_back = garbage_collection.return_freed_memory

def marked():
    hand_back()
    if not seen:
        seen["after_training"] = status()
        open("/proc/self/clear_refs", "w").write("5")

garbage_collection.return_freed_memory = marked
from openretina_cli.commands.train import run_train

run_train(sys.argv[1:])
seen["end"] = status()
seen["matplotlib_imported"] = "matplotlib" in sys.modules
print("RSS " + json.dumps(seen), flush=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", required=True, help="NAME=FOLDER, twice")
    parser.add_argument("--venv", type=Path, default=REPO_ROOT / ".bench" / "ours-venv")
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT / ".bench" / "data" / "tutorial")
    parser.add_argument("--runs", type=int, default=2, help="runs per version, alternating")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    trees = dict(item.split("=", 1) for item in args.tree)
    records = []
    with tempfile.TemporaryDirectory(prefix="post-rss-") as scratch:
        for run in range(args.runs):
            for name, folder in trees.items() if run % 2 == 0 else reversed(trees.items()):
                sources = [str(Path(folder).resolve() / "packages" / p / "src") for p in PACKAGES]
                env = {**os.environ, "PYTHONPATH": os.pathsep.join(sources)}
                log_dir = Path(scratch) / f"{name}-{run}"
                command = [
                    str(args.venv / "bin" / "python"),
                    "-c",
                    PROBE,
                    "--config-path",
                    str(REPO_ROOT / "configs"),
                    "--config-name",
                    "hdf5_core_readout",
                    f"paths.data_dir={args.data_dir}",
                    f"paths.log_dir={log_dir}",
                    *OVERRIDES,
                ]
                done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
                lines = [line for line in done.stdout.splitlines() if line.startswith("RSS ")]
                if done.returncode != 0 or not lines:
                    sys.exit(f"{name} run {run} failed:\n{done.stderr[-3000:]}")
                record = {"version": name, "run": run, **json.loads(lines[-1][4:])}
                print(json.dumps(record), flush=True)
                records.append(record)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"trees": trees, "runs": records}, indent=1) + "\n")


if __name__ == "__main__":
    main()
