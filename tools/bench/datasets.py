"""The benchmark's datasets, generated once into .bench/data/ and shared by both tools.

Both tools read the same files (the 1.x layout is common to both), so every comparison is on
identical data. The tutorial and scaling sets come from 1.x's own `create-data` (numpy seeded);
the simulated retina with ground truth comes from ours (`openretina create-data --kind retina`).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

from contenders import BENCH_SRC, OURS_VENV
from folders import remove_own_folder
from peer import PeerEnv, clean_env

SEED = 0


def _generate(target: Path, cmd: Sequence[str | Path], env: dict[str, str]) -> Path:
    """Run a generator into `target` once; a `bench-dataset.json` marker says it finished."""
    marker = target / "bench-dataset.json"
    command = [str(c) for c in cmd]
    if marker.is_file() and json.loads(marker.read_text()).get("command") == command:
        return target
    remove_own_folder(target, "bench-dataset.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    print(f"[data] generating {target.name}", flush=True)
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"generating {target} failed ({' '.join(command)}):\n{done.stdout}\n{done.stderr}")
    marker.write_text(json.dumps({"command": command}))
    return target


def peer_generated(peer: PeerEnv, root: Path, name: str, *, sessions: int = 2, clip_length: int = 75) -> Path:
    """1.x's tutorial data (3 colours, 16×8 px, 4 stimuli of 70–73 clips), seeded."""
    target = root / name
    cmd = [
        peer.python,
        BENCH_SRC / "peer_run.py",
        "create-data",
        "--seed",
        str(SEED),
        target,
        "--num-sessions",
        str(sessions),
        "--clip-length",
        str(clip_length),
    ]
    return _generate(target, cmd, clean_env(venv=peer.venv))


def ours_retina(root: Path, name: str, options: Sequence[str]) -> Path:
    """Our simulated retina with ground truth (`openretina create-data --kind retina`)."""
    target = root / name
    cmd = [OURS_VENV / "bin" / "openretina", "create-data", target, "--kind", "retina", *options]
    return _generate(target, cmd, clean_env(venv=OURS_VENV))


def float32_mib(data_dir: Path) -> float:
    """Size of every stimulus and response array of a dataset if held once in float32."""
    import h5py
    import numpy as np

    total = 0
    for npy in (data_dir / "stimuli").glob("*.npy"):
        total += np.load(npy, mmap_mode="r").size
    for h5 in [*data_dir.glob("*.h5"), *data_dir.glob("*.hdf5")]:
        with h5py.File(h5, "r") as f:
            for key, item in f.items():
                if isinstance(item, h5py.Dataset) and (key.startswith(("responses_", "stimulus_"))):
                    total += item.size
    return total * 4 / 2**20
