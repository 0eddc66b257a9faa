"""Our packages installed the way a user gets them, on the same torch build as the peer.

The workspace venv is a developer's environment: a CUDA build of torch plus the dev group
(optuna brings scipy, the plots bring matplotlib). torchmetrics, which Lightning imports,
imports scipy.signal and matplotlib whenever they are installed, so a start-up measured there
includes ~1 s and ~100 MiB that `pip install openretina-cli` never installs. These venvs hold
what pip installs from our packages' metadata, with the peer's torch (`peer.PEER_TORCH`, CPU)
installed first, so the two tools differ by their own code and dependencies, not by torch builds.

Our packages are installed from the working tree (non-editable, as a wheel would be) and
reinstalled whenever their sources change, so a benchmark always measures the current code.

Run directly (`python tools/bench/user_install.py`) to build `.bench/ours-venv` ahead of time;
with `--plain-pip-torch`, `.bench/ours-venv-pip-torch` gets whatever torch pip picks (PyPI's CUDA build).
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from pathlib import Path

from folders import remove_own_folder
from peer import BENCH_DIR, PEER_TORCH, REPO_ROOT, clean_env

PACKAGES = REPO_ROOT / "packages"
# What `pip install openretina-cli` installs (the data package with its torch extra).
CLI_INSTALL = ("openretina-data[torch]", "openretina-models", "openretina-cli")
MODELS_INSTALL = ("openretina-models",)


def _source_digest(requirements: tuple[str, ...]) -> str:
    """Hash of the packages' files (sources, metadata, packaged configs): changes mean reinstall."""
    digest = hashlib.sha256()
    roots = [PACKAGES / r.split("[")[0] for r in requirements]
    if "openretina-cli" in requirements:
        roots.append(REPO_ROOT / "configs")
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                digest.update(str(path.relative_to(REPO_ROOT)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def _pip(venv: Path, *args: str) -> None:
    cmd = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *args]
    print(f"[user-install] $ {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, check=True, env=clean_env())


def _local(requirement: str) -> str:
    """`openretina-data[torch]` -> `/…/packages/openretina-data[torch]` (pip's local-path form)."""
    name, bracket, extras = requirement.partition("[")
    return f"{PACKAGES / name}{bracket}{extras}"


def ensure_user_install(
    name: str = "ours-venv",
    requirements: tuple[str, ...] = CLI_INSTALL,
    bench_dir: Path = BENCH_DIR,
    torch: str = f"torch=={PEER_TORCH}",
) -> Path:
    """`.bench/<name>`: `torch` first, then `requirements` from the working tree (idempotent).

    `torch="torch"` installs what pip picks by itself (on Linux, PyPI's newest CUDA build): the
    environment a user gets from a plain `pip install openretina-cli`.
    """
    venv = bench_dir / name
    marker = venv / "bench-ready"
    digest = _source_digest(requirements)
    local = [_local(r) for r in requirements]
    if not marker.is_file():
        remove_own_folder(venv, "pyvenv.cfg")
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=clean_env())
        _pip(venv, torch)
        _pip(venv, *local, torch)
    elif marker.read_text().strip() != digest:
        _pip(venv, "--no-deps", "--force-reinstall", *local)
    marker.write_text(digest + "\n")
    return venv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--plain-pip-torch",
        action="store_true",
        help="build .bench/ours-venv-pip-torch with the torch pip picks itself instead of the peer's build",
    )
    args = parser.parse_args(argv)
    if args.plain_pip_torch:
        built = ensure_user_install("ours-venv-pip-torch", torch="torch")
    else:
        built = ensure_user_install()
    print(f"ours (user install) ready: {built}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
