"""The two contenders and how each is started: our `openretina` and openretina 1.1.1 (the peer).

Both run as subprocesses from their own environments; ours from .bench/ours-venv (a user's install
on the peer's torch build, see user_install.py) or any venv given with --ours-venv, the peer from
.bench/peer-venv through peer_run.py. Each gets a clean environment: for ours only
tools/bench/hooks (the timer callback) goes on PYTHONPATH, the peer gets no PYTHONPATH at all.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from peer import REPO_ROOT, PeerEnv, clean_env

BENCH_SRC = Path(__file__).resolve().parent
HOOKS = BENCH_SRC / "hooks"
OURS_VENV = REPO_ROOT / ".venv"
TIMER_OVERRIDE = "+training_callbacks.bench_timer._target_=bench_timer.BenchTimer"

TOOLS = ("ours", "peer")


@dataclass(frozen=True)
class Contender:
    name: str  # "ours" | "peer"
    python: Path
    train_prefix: tuple[str, ...]  # the command up to (not including) --config-path
    config_path: Path
    env: dict[str, str]
    fixed_overrides: tuple[str, ...] = ()  # added to every training run of this contender

    def train_command(self, config_name: str, overrides: list[str], *, with_timer: bool = True) -> list[str]:
        cmd = [*self.train_prefix, "--config-path", str(self.config_path), "--config-name", config_name]
        return [*cmd, *overrides, *self.fixed_overrides, *([TIMER_OVERRIDE] if with_timer else [])]

    def run_env(self, **extra: str) -> dict[str, str]:
        return {**self.env, **extra}


def ours(cache_dir: Path, venv: Path = OURS_VENV) -> Contender:
    python = venv / "bin" / "python"
    env = clean_env({"PYTHONPATH": str(HOOKS), "OPENRETINA_CACHE_DIRECTORY": str(cache_dir)}, venv=venv)
    return Contender(
        name="ours",
        python=python,
        train_prefix=(str(venv / "bin" / "openretina"), "train"),
        config_path=REPO_ROOT / "configs",
        env=env,
    )


def peer(peer_env: PeerEnv, cache_dir: Path, precision: str | None = None) -> Contender:
    """1.1.1 through peer_run.py; `precision` overrides its `trainer.precision` in every run.

    1.x's tutorial config trains at `16-mixed`, which Lightning runs on CPU as bfloat16 autocast:
    on a CPU without bfloat16 instructions (AMD Zen 3, say) every convolution is emulated and 1.1.1
    is several times slower than at 32 bits. `precision="32"` compares at matched precision.
    """
    env = clean_env(
        {
            # 1.x's test phase reloads a checkpoint holding an omegaconf DictConfig, which
            # torch >= 2.6 refuses under weights_only loading.
            "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1",
            "OPENRETINA_CACHE_DIRECTORY": str(cache_dir),
        },
        venv=peer_env.venv,
    )
    return Contender(
        name="peer",
        python=peer_env.python,
        train_prefix=(str(peer_env.python), str(BENCH_SRC / "peer_run.py"), "train"),
        config_path=peer_env.configs,
        env=env,
        fixed_overrides=(f"trainer.precision={precision}",) if precision else (),
    )


def tutorial_overrides(data_dir: Path, *, height: int = 16, width: int = 8) -> list[str]:
    """The documented tutorial overrides, shared verbatim by both tools."""
    return [
        f"paths.data_dir={data_dir}",
        "data_io.test_names=[random_noise_2, random_noise_3]",
        "data_io.color_channels=3",
        f"data_io.video_height={height}",
        f"data_io.video_width={width}",
    ]


# The peer's tutorial model (its hdf5_core_readout.yaml): three layers of 8 channels with 8-frame
# temporal and 8-pixel spatial kernels, trained on batches of 64 chunks. Ours takes the same sizes
# and batch size for the identical-settings case (our own default batch size is 16).
PEER_TUTORIAL_ARCHITECTURE = [
    "dataloader.batch_size=64",
    "model.hidden_channels=[8,8,8]",
    "model.temporal_kernel_sizes=[8,8,8]",
    "model.spatial_kernel_sizes=[8,8,8]",
    "model.spatial_padding=[0,4,4]",
]


def find_run_dir(log_dir: Path) -> Path | None:
    """The run directory under <log_dir>/runs/<exp_name>/<timestamp>/ (ours) or
    <log_dir>/openretina_assets/runs/... (openretina 1.x)."""
    runs = sorted((log_dir / "runs").glob("*/*")) + sorted(
        (log_dir / "openretina_assets" / "runs").glob("*/*")
    )
    return runs[-1] if runs else None


def compile_bytecode(python: Path, *paths: Path) -> None:
    """Byte-compile an environment, as pip does at install time (uv does not by default).

    Both tools then start from cached bytecode like any normal installation; without it, on a
    machine that sets PYTHONDONTWRITEBYTECODE, every run would recompile lightning, torch, … anew.
    Up-to-date files are skipped, so this is quick after the first time.
    """
    cmd = [str(python), "-m", "compileall", "-q", "-j", "0", *[str(p) for p in paths]]
    subprocess.run(cmd, env=clean_env(), check=False, stdout=subprocess.DEVNULL)


def site_packages(venv: Path) -> Path:
    return next(venv.glob("lib/python3*/site-packages"))


def prepare_bytecode(peer_env: PeerEnv, ours_venv: Path = OURS_VENV) -> None:
    """Bytecode for both contenders: our venv and workspace sources, and the peer's venv."""
    sources = [
        REPO_ROOT / "packages" / name / "src"
        for name in ("openretina-cli", "openretina-data", "openretina-models")
    ]
    compile_bytecode(ours_venv / "bin" / "python", site_packages(ours_venv), *sources)
    compile_bytecode(peer_env.python, site_packages(peer_env.venv))
