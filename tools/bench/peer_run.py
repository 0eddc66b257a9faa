"""Runs inside the PEER's venv (openretina 1.1.1). Imports only the stdlib, numpy, torch and the peer.

Never imported by our code, and it never imports ours (tools/bench holds no package of ours; the
harness starts this with PYTHONPATH unset). Subcommands:

  create-data --seed S DIR [peer create-data flags]   the peer's generator, with numpy seeded
  train [peer train args]                             the peer's `openretina train` + bench timer
  predict-latency --ckpt F --frames T --repeats R --out J
  predict-test --ckpt F --data-dir D --test-names a,b --norm-mean M --norm-std S --out NPZ
  probe-data --config-path C --out J [hydra overrides]  open-to-first-batch, epoch of batches, memory
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from epoch_probe import probe_epoch  # this folder is on sys.path: the script runs by its path

HOOKS = Path(__file__).resolve().parent / "hooks"


def _peer_cli(argv: list[str]) -> None:
    from openretina.cli.openretina_main import main

    sys.argv = ["openretina", *argv]
    main()


def create_data(argv: list[str]) -> None:
    import numpy as np

    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, required=True)
    args, rest = parser.parse_known_args(argv)
    np.random.seed(args.seed)  # 1.x's create-data draws from numpy's global generator, unseeded
    _peer_cli(["create-data", *rest])


def train(argv: list[str]) -> None:
    sys.path.insert(0, str(HOOKS))  # only bench_timer.py lives there
    _peer_cli(["train", *argv])


def _load(ckpt: str):  # type: ignore[no-untyped-def]
    from openretina.models.core_readout import load_core_readout_model

    model = load_core_readout_model(ckpt, "cpu")
    model.eval()
    return model


def predict_latency(argv: list[str]) -> None:
    import torch

    parser = argparse.ArgumentParser()
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    model = _load(args.ckpt)
    load_s = time.perf_counter() - t0
    session = sorted(model.readout.keys())[0]
    c, _, h, w = model.hparams["in_shape"] if "in_shape" in model.hparams else model.in_shape
    movie = torch.randn(1, c, args.frames, h, w, generator=torch.Generator().manual_seed(0))
    times = []
    with torch.no_grad():
        for _ in range(2):
            model(movie, session)
        for _ in range(args.repeats):
            t = time.perf_counter()
            model(movie, session)
            times.append(time.perf_counter() - t)
    Path(args.out).write_text(json.dumps({"load_s": load_s, "latency_s": times, "threads": torch.get_num_threads()}))


def predict_test(argv: list[str]) -> None:
    import h5py
    import numpy as np
    import torch

    parser = argparse.ArgumentParser()
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--test-names", required=True)
    parser.add_argument("--norm-mean", type=float, default=0.0)
    parser.add_argument("--norm-std", type=float, default=1.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    model = _load(args.ckpt)
    data_dir = Path(args.data_dir)
    out: dict[str, np.ndarray] = {}
    for session_file in sorted([*data_dir.glob("*.h5"), *data_dir.glob("*.hdf5")]):
        session = session_file.stem
        with h5py.File(session_file, "r") as f:
            for name in args.test_names.split(","):
                key = f"stimulus_{name}"
                movie = np.asarray(f[key]) if key in f else np.load(data_dir / "stimuli" / f"{name}.npy")
                x = torch.from_numpy((movie.astype(np.float32) - args.norm_mean) / args.norm_std)[None]
                with torch.no_grad():
                    out[f"{session}/{name}"] = model(x, session)[0].numpy()  # (T_out, N)
    np.savez(args.out, **out)


def probe_data(argv: list[str]) -> None:
    """The peer's own data path exactly as its train.py runs it, timed and measured."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--config-path", required=True)
    parser.add_argument("--config-name", default="hdf5_core_readout")
    parser.add_argument("--out", required=True)
    args, overrides = parser.parse_known_args(argv)
    import hydra
    import torch.utils.data as data
    from hydra import compose, initialize_config_dir
    from openretina.data_io.cyclers import LongCycler

    with initialize_config_dir(config_dir=str(Path(args.config_path).resolve()), version_base="1.3"):
        cfg = compose(config_name=args.config_name, overrides=overrides)

    def open_batches() -> data.DataLoader:
        movies = hydra.utils.call(cfg.data_io.stimuli)
        responses = hydra.utils.call(cfg.data_io.responses)
        loaders = hydra.utils.instantiate(cfg.dataloader, neuron_data_dictionary=responses, movies_dictionary=movies)
        return data.DataLoader(LongCycler(loaders["train"], shuffle=True), batch_size=None, num_workers=0)

    result = probe_epoch(open_batches)
    Path(args.out).write_text(json.dumps(result))


COMMANDS = {
    "create-data": create_data,
    "train": train,
    "predict-latency": predict_latency,
    "predict-test": predict_test,
    "probe-data": probe_data,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: peer_run.py {{{','.join(COMMANDS)}}} ...")
    if os.environ.get("PYTHONPATH"):
        sys.exit("peer_run.py must run with PYTHONPATH unset (the peer must not see other code)")
    COMMANDS[sys.argv[1]](sys.argv[2:])
