"""Reference fixtures for importing openretina 1.x checkpoints: real 1.1.1 checkpoints + 1.1.1's predictions.

Run from the repository root with our environment (`uv run python tools/openretina1_fixtures.py`). It
builds the 1.1.1 venv the benchmark harness uses (`tools/bench/peer.py`), writes tiny synthetic data in the
generic HDF5 layout, trains each 1.x model config below for 10 short epochs (100 steps) with 1.1.1's own
`openretina train`, and then — inside the 1.1.1 venv (this same file, `--predict`) — loads each
`_final.ckpt` the way 1.x does and records its predictions on a seeded input. Everything lands in
`tests/models/fixtures/openretina1/` (checkpoint + `<name>.npz` + `manifest.json`), so the tests never
need 1.x.

The seeded input is `numpy.random.default_rng(seed).standard_normal((2, C, T, H, W))` as float32;
the tests rebuild it from the seed in the manifest.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURE_DIR = REPO_ROOT / "tests" / "models" / "fixtures" / "openretina1"
HEIGHT, WIDTH = 16, 12
FRAMES_PER_STIMULUS = 1000
SESSIONS = {"session_0": 7, "session_1": 5}
INPUT_FRAMES = 60
INPUT_SEED = 1234
# Fixtures kept exactly as 1.x wrote them; the others are reduced to what Lightning's
# `save_weights_only=True` writes (no optimizer, scheduler or callback states) to keep the repo small.
FULL_CHECKPOINTS = ("default_c2",)

# The tutorial config's layout with fewer, smaller kernels (still even, so "same" pads unevenly).
_TUTORIAL_CORE = [
    "model.hidden_channels=[3,3,3]",
    "model.core.temporal_kernel_sizes=[8,4,4]",
    "model.core.spatial_kernel_sizes=[6,4,4]",
]
# name -> (colour channels, `openretina train` overrides on top of hdf5_core_readout).
_HOEFLING_CORE = [
    "model.core.temporal_kernel_sizes=[21,11]",
    "model.core.spatial_kernel_sizes=[7,5]",
    "model.core.hidden_padding=[0,2,2]",
    "model.hidden_channels=[3,3]",
]
CONFIGS: dict[str, tuple[int, list[str]]] = {
    # the tutorial config as shipped (custom_separable, hidden "same" padding with even kernels)
    "default_c1": (1, _TUTORIAL_CORE),
    "default_c2": (2, _TUTORIAL_CORE),
    "default_c3": (3, _TUTORIAL_CORE),
    # Höfling 2024 style: base_core_readout's 2-layer core and Gaussian-mask readout
    "hoefling_2layer_c2": (2, ["model=base_core_readout", *_HOEFLING_CORE]),
    # Höfling high-res style: max-pooling every 2 layers, dropout, a frame cut in the core
    "hoefling_pool_c2": (
        2,
        [
            "model=base_core_readout",
            "model.core.temporal_kernel_sizes=[11,5]",
            "model.core.spatial_kernel_sizes=[5,3]",
            "model.core.hidden_padding=[0,1,1]",
            "model.hidden_channels=[4,4]",
            "model.core.maxpool_every_n_layers=2",
            "model.core.dropout_rate=0.1",
            "model.core.cut_first_n_frames=2",
        ],
    ),
    "klindt_c2": (2, ["model=core_klindt_readout", *_HOEFLING_CORE]),
    "point_gaussian_c1": (
        1,
        [
            "model=core_gaussian_readout",
            "model.core.temporal_kernel_sizes=[15,5]",
            "model.core.spatial_kernel_sizes=[9,5]",
            "model.hidden_channels=[4,4]",
        ],
    ),
    "full_conv_c1": (
        1,
        [
            "model.core.convolution_type=full",
            "model.core.gamma_temporal=0",
            "model.hidden_channels=[3,3]",
            "model.core.temporal_kernel_sizes=[5,3]",
            "model.core.spatial_kernel_sizes=[5,3]",
            "model.core.hidden_padding=true",
        ],
    ),
    "lnp_c2": (
        2,
        [
            "model=linear_nonlinear_poisson",
            # the tutorial config sets these for its convolutional core; the LNP has none
            "~model.hidden_channels",
            "~model.core.temporal_kernel_sizes",
            "~model.core.spatial_kernel_sizes",
            "~model.core.hidden_padding",
        ],
    ),
}

_COMMON_OVERRIDES = [
    "data_io.test_names=[random_noise_2,random_noise_3]",
    f"data_io.video_height={HEIGHT}",
    f"data_io.video_width={WIDTH}",
    "dataloader.batch_size=4",
    "dataloader.clip_length=50",
    "dataloader.num_val_clips=2",
    "dataloader.train_chunk_size=50",
    # Enough steps for weights and batch-norm statistics to leave their tiny initial scales, so the
    # outputs vary with the input (after 3 steps they are constant to 1e-6).
    "trainer.max_epochs=10",
    "+trainer.limit_train_batches=10",
    "+trainer.limit_val_batches=1",
    "+trainer.limit_test_batches=1",
    "+trainer.accelerator=cpu",
    "trainer.precision=32-true",
    "logger=[csv]",
    "training_callbacks=[model_checkpoint]",
    "+data_io.data_info.response_rate_hz=30",
    "+data_io.data_info.stimulus_rate_hz=30",
    "+data_io.data_info.retina_pixel_size_um=12.5",
    "+data_io.data_info.animal_species=synthetic",
]


def write_data(root: Path, channels: int, seed: int) -> None:
    """Tiny data in 1.x's generic HDF5 layout: 4 stimuli, 2 sessions with metadata."""
    import h5py

    rng = np.random.default_rng(seed)
    (root / "stimuli").mkdir(parents=True)
    stimuli = {}
    for i in range(4):
        movie = rng.standard_normal((channels, FRAMES_PER_STIMULUS, HEIGHT, WIDTH))
        np.save(root / "stimuli" / f"random_noise_{i}.npy", movie)
        stimuli[f"random_noise_{i}"] = movie
    for session, n in SESSIONS.items():
        ys = rng.integers(2, HEIGHT - 3, size=n)
        xs = rng.integers(2, WIDTH - 3, size=n)
        colour = rng.integers(0, channels, size=n)
        with h5py.File(root / f"{session}.hdf5", "w") as f:
            for name, movie in stimuli.items():
                drive = np.stack(
                    [
                        movie[c, :, y - 1 : y + 2, x - 1 : x + 2].mean(axis=(1, 2))
                        for c, y, x in zip(colour, ys, xs, strict=True)
                    ]
                )
                drive = np.apply_along_axis(lambda v: np.convolve(v, np.ones(4) / 4, mode="same"), 1, drive)
                f[f"responses_{name}"] = np.log1p(np.exp(12 * drive - 1))
            f["session_info/celltypes"] = rng.integers(1, 33, size=n)
            f["session_info/roi_ids"] = np.arange(1, n + 1) * 10


def train_all(only: list[str] | None) -> None:
    sys.path.insert(0, str(REPO_ROOT / "tools" / "bench"))
    from peer import clean_env, ensure_peer

    peer = ensure_peer()
    FIXTURE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, (channels, overrides) in CONFIGS.items():
            if only and name not in only:
                continue
            data_dir = Path(tmp) / f"data_{name}"
            write_data(data_dir, channels, seed=len(name) * 7 + channels)
            log_dir = Path(tmp) / f"runs_{name}"
            command = [
                str(peer.script),
                "train",
                "--config-path",
                str(peer.configs),
                "--config-name",
                "hdf5_core_readout",
                f"paths.data_dir={data_dir}",
                f"paths.log_dir={log_dir}",
                f"data_io.color_channels={channels}",
                f"model.in_shape=[{channels},100,{HEIGHT},{WIDTH}]",
                f"exp_name={name}",
                "seed=7",
                *_COMMON_OVERRIDES,
                *overrides,
            ]
            print(f"[1.x] training {name}", flush=True)
            env = clean_env({"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "HYDRA_FULL_ERROR": "1"}, peer.venv)
            subprocess.run(command, check=True, env=env, cwd=tmp)
            finals = sorted(log_dir.rglob("*_final.ckpt"))
            if len(finals) != 1:
                raise RuntimeError(f"{name}: expected one _final.ckpt under {log_dir}, found {finals}")
            target = FIXTURE_DIR / f"{name}.ckpt"
            shutil.copyfile(finals[0], target)
            shape = [2, channels, INPUT_FRAMES, HEIGHT, WIDTH]  # as in write_manifest
            subprocess.run(
                [str(peer.python), __file__, "--predict", str(target), json.dumps(shape), str(INPUT_SEED)],
                check=True,
                env=env,
            )
            if name not in FULL_CHECKPOINTS:
                subprocess.run(
                    [str(peer.python), __file__, "--weights-only", str(target)], check=True, env=env
                )
    if not only or EXAMPLE in only:
        print(f"[1.x] training {EXAMPLE}", flush=True)
        target = FIXTURE_DIR / f"{EXAMPLE}.ckpt"
        env = clean_env({"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}, peer.venv)
        shape = [2, 2, INPUT_FRAMES, HEIGHT, WIDTH]
        for step in (
            ["--example", str(target)],
            ["--predict", str(target), json.dumps(shape), str(INPUT_SEED)],
        ):
            subprocess.run([str(peer.python), __file__, *step], check=True, env=env)
        subprocess.run([str(peer.python), __file__, "--weights-only", str(target)], check=True, env=env)
    write_manifest()


def write_manifest() -> None:
    """`manifest.json`: every fixture present, with its input shape, seed and 1.x overrides."""
    manifest = {
        name: {
            "input_shape": [2, channels, INPUT_FRAMES, HEIGHT, WIDTH],
            "input_seed": INPUT_SEED,
            "full_checkpoint": name in FULL_CHECKPOINTS,
            "overrides": overrides,
        }
        for name, (channels, overrides) in sorted({**CONFIGS, EXAMPLE: EXAMPLE_DESCRIPTION}.items())
        if (FIXTURE_DIR / f"{name}.npz").is_file()
    }
    (FIXTURE_DIR / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def predict_with_1x(checkpoint: Path, shape: list[int], seed: int) -> None:
    """Inside the 1.1.1 venv: load the checkpoint as 1.x does and store its outputs per session."""
    import torch
    from openretina.models.core_readout import load_core_readout_model

    model = load_core_readout_model(str(checkpoint), device="cpu").eval()
    x = torch.from_numpy(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))
    outputs = {}
    with torch.no_grad():
        for session in sorted(model.readout.keys()):
            outputs[session] = model(x, data_key=session).numpy().astype(np.float32)
    np.savez_compressed(checkpoint.with_suffix(".npz"), **outputs)
    print(f"[1.x] {checkpoint.name}: " + ", ".join(f"{k} {v.shape}" for k, v in outputs.items()))


EXAMPLE = "example_core_readout_c2"  # 1.x's code-only ExampleCoreReadout (its legacy loader's fallback)
EXAMPLE_DESCRIPTION = (
    2,
    [
        "ExampleCoreReadout in code: hidden (3, 3), temporal (11, 5), spatial (5, 3), "
        "hidden padding (0, 1, 1), cut 10"
    ],
)


def train_example_with_1x(checkpoint: Path) -> None:
    """Inside the 1.1.1 venv: train an `ExampleCoreReadout` (flat hyper-parameters, no Hydra) for 60
    steps on seeded synthetic data and save it with Lightning, the way code-only 1.x users did."""
    import lightning
    import torch
    from openretina.data_io.base_dataloader import DataPoint
    from openretina.models.core_readout import ExampleCoreReadout

    torch.manual_seed(3)
    sessions = dict(SESSIONS)
    rng = np.random.default_rng(5)
    info = {
        "n_neurons_dict": sessions,
        "mean_activity_dict": {k: torch.full((n,), 0.8) for k, n in sessions.items()},
        "input_shape": (2, HEIGHT, WIDTH),
        "sessions_kwargs": {k: {"celltypes": rng.integers(1, 33, size=n)} for k, n in sessions.items()},
        "stim_mean": 36.98,
        "stim_std": 36.98,
        "stimulus_rate_hz": 30,
        "retina_pixel_size_um": 50.0,
    }
    model = ExampleCoreReadout(
        in_shape=(2, 100, HEIGHT, WIDTH),
        hidden_channels=(3, 3),
        temporal_kernel_sizes=(11, 5),
        spatial_kernel_sizes=(5, 3),
        n_neurons_dict=sessions,
        core_hidden_padding=(0, 1, 1),
        cut_first_n_frames_in_core=10,
        data_info=info,
    )
    batches = []
    for step in range(60):
        session = sorted(sessions)[step % 2]
        x = torch.from_numpy(rng.standard_normal((4, 2, 50, HEIGHT, WIDTH)).astype(np.float32))
        drive = x[:, :, :, 4:8, 3:7].mean(dim=(1, 3, 4))[:, :, None] * torch.linspace(
            -3, 3, sessions[session]
        )
        batches.append((session, DataPoint(x, torch.nn.functional.softplus(drive + 1))))
    loader = torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False)
    trainer = lightning.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=str(checkpoint.parent),
    )
    # 1.x's convolution keeps its last output as an attribute, and this model pickles its modules
    # into the hyper-parameters: a small last (validation) batch keeps the checkpoint small.
    small = [(key, DataPoint(point.inputs[:1, :, :20], point.targets[:1, :20])) for key, point in batches[:2]]
    validation = torch.utils.data.DataLoader(small, batch_size=None, shuffle=False)
    trainer.fit(model, train_dataloaders=loader, val_dataloaders=validation)
    trainer.save_checkpoint(str(checkpoint))


def keep_weights_only(checkpoint: Path) -> None:
    """Inside the 1.1.1 venv: drop optimizer, scheduler and callback states, as `save_weights_only` does."""
    import torch

    content = torch.load(checkpoint, map_location="cpu", weights_only=False)
    for key in ("optimizer_states", "lr_schedulers", "callbacks"):
        content.pop(key, None)
    torch.save(content, checkpoint)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predict", nargs=3, metavar=("CKPT", "SHAPE", "SEED"), help=argparse.SUPPRESS)
    parser.add_argument("--weights-only", metavar="CKPT", help=argparse.SUPPRESS)
    parser.add_argument("--example", metavar="CKPT", help=argparse.SUPPRESS)
    parser.add_argument("--only", nargs="*", help="fixture names to (re)build (default: all)")
    args = parser.parse_args()
    if args.example:
        train_example_with_1x(Path(args.example))
    elif args.weights_only:
        keep_weights_only(Path(args.weights_only))
    elif args.predict:
        predict_with_1x(Path(args.predict[0]), json.loads(args.predict[1]), int(args.predict[2]))
    else:
        train_all(args.only)


if __name__ == "__main__":
    main()
