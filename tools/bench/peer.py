"""The benchmark peer: openretina 1.1.1 from PyPI in its own venv under `.bench/`.

The peer never sees our code and we never import it: everything of the peer runs as a subprocess
of `.bench/peer-venv/bin/python` with a clean environment (no PYTHONPATH, no VIRTUAL_ENV).

The install recipe is the lean one measured on this kind of machine: torch 2.13.0 (CPU) first,
then `openretina==1.1.1 torch==2.13.0`, then torchvision removed (PyPI's torchvision beside that
torch breaks every `openretina` command). The wheel ships no configs, so they come from the sdist.

Run directly (`python tools/bench/peer.py`) to build the venv ahead of a benchmark.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from folders import make_own_folder, remove_own_folder

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO_ROOT / ".bench"
PEER_VERSION = "1.1.1"
PEER_TORCH = "2.13.0"

# Environment variables that could leak our workspace into the peer's interpreter, and
# PYTHONDONTWRITEBYTECODE, which this machine sets: it would make every run recompile every module
# it imports, a cost no normal installation pays (see contenders.compile_bytecode).
_DROPPED_ENV = (
    "PYTHONPATH",
    "PYTHONHOME",
    "VIRTUAL_ENV",
    "UV_PROJECT_ENVIRONMENT",
    "CONDA_PREFIX",
    "PYTHONDONTWRITEBYTECODE",
)


@dataclass(frozen=True)
class PeerEnv:
    """Where the peer lives: its interpreter, its `openretina` script and its configs."""

    venv: Path
    configs: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def script(self) -> Path:
        return self.venv / "bin" / "openretina"

    @property
    def marker(self) -> Path:
        return self.venv / "bench-ready.json"


def default_peer(bench_dir: Path = BENCH_DIR) -> PeerEnv:
    return PeerEnv(venv=bench_dir / "peer-venv", configs=bench_dir / "peer-configs")


def clean_env(extra: dict[str, str] | None = None, venv: Path | None = None) -> dict[str, str]:
    """A copy of os.environ without anything that points at our workspace (or stops bytecode caching).

    With `venv`, its bin/ goes first on PATH. The peer's test phase needs
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 with torch >= 2.6 (it pickles an omegaconf DictConfig).
    """
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    if venv is not None:
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra or {})
    return env


def _run(cmd: list[str | Path], **kwargs: object) -> None:
    printable = " ".join(str(c) for c in cmd)
    print(f"[peer] $ {printable}", flush=True)
    subprocess.run([str(c) for c in cmd], check=True, env=clean_env(), **kwargs)  # type: ignore[call-overload]


def _extract_configs(sdist_dir: Path, target: Path) -> None:
    archives = sorted(sdist_dir.glob("openretina-*.tar.gz"))
    if not archives:
        raise FileNotFoundError(f"no openretina sdist in {sdist_dir}: `pip download` produced nothing usable")
    with tarfile.open(archives[0]) as tar:
        members = [m for m in tar.getmembers() if "/configs/" in m.name and m.isfile()]
        if not members:
            raise FileNotFoundError(f"{archives[0].name} has no configs/ folder; cannot run the peer's CLI")
        tmp = target.with_suffix(".tmp")
        remove_own_folder(tmp)
        make_own_folder(tmp)
        for member in members:
            relative = member.name.split("/configs/", 1)[1]
            out = tmp / relative
            out.parent.mkdir(parents=True, exist_ok=True)
            extracted = tar.extractfile(member)
            assert extracted is not None
            out.write_bytes(extracted.read())
    remove_own_folder(target)
    tmp.rename(target)


def ensure_peer(peer: PeerEnv | None = None, *, quiet: bool = False) -> PeerEnv:
    """Build the peer's venv and configs unless a previous build finished (idempotent)."""
    peer = peer or default_peer()
    if peer.marker.is_file() and (peer.configs / "hdf5_core_readout.yaml").is_file():
        return peer
    pip_quiet = ["-q"] if quiet else []
    if not peer.python.is_file():
        peer.venv.parent.mkdir(parents=True, exist_ok=True)
        _run(["python3", "-m", "venv", peer.venv])
    pip = [peer.python, "-m", "pip", "install", *pip_quiet]
    _run([*pip, f"torch=={PEER_TORCH}"])
    _run([*pip, f"openretina=={PEER_VERSION}", f"torch=={PEER_TORCH}"])
    _run([peer.python, "-m", "pip", "uninstall", "-y", "torchvision"])
    with tempfile.TemporaryDirectory() as tmp:
        _run(
            [
                peer.python,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                "-d",
                tmp,
                f"openretina=={PEER_VERSION}",
            ]
        )
        _extract_configs(Path(tmp), peer.configs)
    versions = subprocess.run(
        [
            str(peer.python),
            "-c",
            "import json, importlib.metadata as m; "
            "print(json.dumps({d: m.version(d) for d in "
            "('openretina', 'torch', 'lightning', 'hydra-core', 'numpy')}))",
        ],
        check=True,
        capture_output=True,
        text=True,
        env=clean_env(),
    ).stdout
    peer.marker.write_text(versions)
    return peer


def peer_versions(peer: PeerEnv | None = None) -> dict[str, str]:
    """Package versions recorded when the peer was built (openretina, torch, lightning, …)."""
    peer = peer or default_peer()
    return json.loads(peer.marker.read_text()) if peer.marker.is_file() else {}


if __name__ == "__main__":
    built = ensure_peer()
    print(f"peer ready: {built.python}  configs: {built.configs}  {peer_versions(built)}")
    sys.exit(0)
