"""``openretina mei``: outputs, the three experiments, every bad input, and a real training run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import openretina_models as om
import pytest
import torch
from cli_helpers import run_cli
from openretina_models import insilico
from safetensors.torch import load_file

IN_SHAPE = (3, 8, 6)  # three colour channels
SESSIONS = {"s0": 4, "s1": 3}
FAST = ["--iterations", "4", "--frames", "6"]


def _run_dir(tmp_path: Path, data_info: dict | None) -> Path:
    """A finished run as `openretina train` leaves it: config.yaml and an exported model/."""
    torch.manual_seed(0)
    model = om.create_model(
        "core_readout",
        in_shape=IN_SHAPE,
        n_neurons=SESSIONS,
        hidden_channels=[4],
        temporal_kernel_sizes=3,
        spatial_kernel_sizes=3,
    )
    run = tmp_path / "run"
    om.save_model(model, run / "model", data_info=data_info)
    (run / "config.yaml").write_text("exp_name: test\n")
    return run


DATA_INFO = {
    "input_shape": list(IN_SHAPE),
    "frame_rate_hz": 30.0,
    "stimulus_range": {"min": [-1.0, -2.0, -0.5], "max": [1.5, 2.0, 0.5]},
    "sessions": {
        "s0": {
            "n_neurons": 4,
            "neuron_ids": [10, 11, 12, 13],
            "metadata": {"cell_type": ["ON", "OFF", "ON", "OFF"]},
        },
        "s1": {"n_neurons": 3, "neuron_ids": [0, 1, 2], "metadata": {}},
    },
}


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return _run_dir(tmp_path, DATA_INFO)


def test_help_lists_mei(capsys) -> None:
    assert "mei" in run_cli(["--help"], capsys).out
    result = run_cli(["mei", "--help"], capsys)
    assert result.code == 0
    for option in (
        "--session",
        "--neurons",
        "--frames",
        "--iterations",
        "--lr",
        "--norm",
        "--range",
        "--out",
    ):
        assert option in result.out


def test_meis_of_every_neuron_with_figures_and_videos(run: Path, capsys) -> None:
    result = run_cli(["mei", str(run), *FAST], capsys)
    assert result.code == 0, result.err
    out = run / "mei"
    tensors = load_file(out / "meis.safetensors")
    assert {k: tuple(v.shape) for k, v in tensors.items()} == {"s0": (4, 3, 6, 8, 6), "s1": (3, 3, 6, 8, 6)}
    summary = json.loads((out / "meis.json").read_text())
    assert summary["mode"] == "neuron"
    assert summary["note"] is None  # the model's own stimulus range was used
    targets = summary["targets"]
    assert [(t["session"], t["neuron"]) for t in targets] == [("s0", i) for i in range(4)] + [
        ("s1", i) for i in range(3)
    ]
    assert targets[2]["neuron_id"] == 12
    for target in targets:
        assert target["iterations"] == 4
        assert target["constraints"]["range_min"] == [-1.0, -2.0, -0.5]
        assert (out / target["figure"]).is_file()
        assert (out / target["video"]).suffix in (".mp4", ".gif")
        assert (out / target["video"]).stat().st_size > 0
    # the constraints hold exactly, channel by channel
    s0 = tensors["s0"].numpy()
    for channel, (low, high) in enumerate([(-1.0, 1.5), (-2.0, 2.0), (-0.5, 0.5)]):
        assert s0[:, channel].min() >= low - 1e-6
        assert s0[:, channel].max() <= high + 1e-6
    norm = summary["settings"]["constraints"]["max_norm"]
    assert np.linalg.norm(s0.reshape(4, -1), axis=1).max() <= norm * (1 + 1e-5)
    assert "Wrote" in result.out


def test_one_neuron_alone_gets_the_mei_it_gets_among_all(run: Path, tmp_path: Path, capsys) -> None:
    assert run_cli(["mei", str(run), *FAST, "--out", str(tmp_path / "all"), "--no-figures"], capsys).code == 0
    args = ["mei", str(run), *FAST, "--session", "s0", "--neurons", "2", "--out", str(tmp_path / "one")]
    assert run_cli([*args, "--no-figures"], capsys).code == 0
    together = load_file(tmp_path / "all" / "meis.safetensors")["s0"][2]
    alone = load_file(tmp_path / "one" / "meis.safetensors")["s0"][0]
    torch.testing.assert_close(alone, together, atol=1e-5, rtol=1e-4)
    assert not (tmp_path / "one" / "figures").exists()


def test_most_discriminative_stimuli_per_cell_type(run: Path, capsys) -> None:
    args = ["mei", str(run), *FAST, "--session", "s0", "--discriminative", "cell_type", "--no-figures"]
    result = run_cli(args, capsys)
    assert result.code == 0, result.err
    summary = json.loads((run / "mei" / "meis.json").read_text())
    assert summary["mode"] == "cluster"
    assert [(t["cluster"], t["neurons"]) for t in summary["targets"]] == [("OFF", [1, 3]), ("ON", [0, 2])]
    assert all(t["objective"] <= 0 for t in summary["targets"])  # log-probabilities
    assert load_file(run / "mei" / "meis.safetensors")["s0"].shape == (2, 3, 6, 8, 6)


def test_inner_units_of_a_core_layer(run: Path, capsys) -> None:
    args = ["mei", str(run), *FAST, "--inner", "core.blocks.0", "--channels", "1-2"]
    result = run_cli(args, capsys)
    assert result.code == 0, result.err
    summary = json.loads((run / "mei" / "meis.json").read_text())
    assert [t["channel"] for t in summary["targets"]] == [1, 2]
    assert load_file(run / "mei" / "meis.safetensors")["core.blocks.0"].shape == (2, 3, 6, 8, 6)
    assert (run / "mei" / summary["targets"][0]["figure"]).is_file()


def test_an_older_model_gets_the_documented_default_range(tmp_path: Path, capsys) -> None:
    run = _run_dir(tmp_path, {"input_shape": list(IN_SHAPE), "sessions": {}})
    result = run_cli(["mei", str(run), *FAST, "--no-figures", "--neurons", "0"], capsys)
    assert result.code == 0, result.err
    assert "no training stimulus range" in result.out
    summary = json.loads((run / "mei" / "meis.json").read_text())
    assert summary["settings"]["constraints"]["range_max"] == [insilico.DEFAULT_RANGE] * 3
    assert summary["settings"]["range_source"] == "default"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--session", "s9"], "--session 's9': the model has no such session"),
        (["--neurons", "4", "--session", "s0"], "Neuron 4 does not exist in session 's0', which has 4"),
        (["--neurons", "1,x"], "'x' is not an index"),
        (["--window", "0:9"], "--window: The time window 0:9 is longer"),
        (["--window", "3"], "START:STOP"),
        (["--frames", "2"], "--frames 2 is too short"),
        (["--range=1:2"], "excludes 0"),
        (["--range=2:-1"], "min 2.0 > max -1.0"),
        (["--range=-1:1", "--range=-1:1"], "2 --range values for a 3-channel model"),
        (["--norm", "0"], "--norm must be a positive number"),
        (["--norm", "-3"], "--norm must be a positive number"),
        (["--iterations", "0"], "--iterations must be at least 1"),
        (["--device", "gpu"], "--device 'gpu' is not a torch device"),
        (["--discriminative", "celltype"], "no per-neuron metadata field 'celltype'. Did you mean"),
        (["--inner", "core.nothing"], "--inner: Unknown layer 'core.nothing'"),
        (["--inner", "core.blocks.0", "--channels", "7"], "Channel 7 does not exist in layer"),
    ],
)
def test_bad_input_is_one_message_and_nothing_is_written(run: Path, capsys, extra, message) -> None:
    result = run_cli(["mei", str(run), *FAST, *extra], capsys)
    assert result.code != 0
    assert message in " ".join(result.err.split())
    assert "Traceback" not in result.err
    assert not (run / "mei").exists()


def test_model_arguments_resolve_like_eval(run: Path, tmp_path: Path, capsys) -> None:
    result = run_cli(
        ["mei", str(run / "model" / "model.json"), *FAST, "--no-figures", "--neurons", "0"], capsys
    )
    assert result.code == 0  # a model file inside a run still writes to <run>/mei
    assert (run / "mei" / "meis.json").is_file()
    lone = tmp_path / "lone"
    om.save_model(om.load_model(run / "model"), lone, data_info=DATA_INFO)
    result = run_cli(["mei", str(lone), *FAST], capsys)
    assert result.code != 0
    assert "is not a run directory: pass --out DIR" in result.err
    result = run_cli(["mei", str(run / "missing"), *FAST], capsys)
    assert result.code != 0
    assert "no such file or directory" in result.err


@pytest.mark.slow
def test_training_stores_the_stimulus_range_that_mei_uses(tmp_path: Path, capsys) -> None:
    from openretina_data import write_retina_dataset
    from robust_support import TINY

    data = write_retina_dataset(
        tmp_path / "data",
        num_sessions=1,
        neurons_per_session=3,
        height=6,
        width=6,
        train_frames=300,
        num_stimuli=2,
        clip_length=30,
        test_frames=40,
        test_trials=2,
    )
    logs = tmp_path / "logs"
    args = [
        "train",
        f"paths.data_dir={data}",
        f"paths.log_dir={logs}",
        *TINY,
        "trainer.max_epochs=1",
        "report=false",
    ]
    assert run_cli(args, capsys).code == 0
    (run,) = (logs / "runs" / "simulated_retina_core_readout").iterdir()
    stored = json.loads((run / "model" / "model.json").read_text())["data_info"]["stimulus_range"]
    movie = np.concatenate([np.load(p) for p in sorted((data / "stimuli").glob("natural_[0-9].npy"))], axis=1)
    np.testing.assert_allclose(stored["min"], movie.min(axis=(1, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(stored["max"], movie.max(axis=(1, 2, 3)), rtol=1e-5)
    result = run_cli(["mei", str(run), "--iterations", "2", "--no-figures"], capsys)
    assert result.code == 0, result.err
    summary = json.loads((run / "mei" / "meis.json").read_text())
    assert summary["settings"]["range_source"] == "model"
    assert summary["settings"]["constraints"]["range_min"] == pytest.approx(stored["min"])


def test_videos_are_mp4_with_an_encoder_and_gif_without(tmp_path: Path, monkeypatch) -> None:
    import sys
    import types

    from openretina_cli.insilico.figures import write_video

    stimulus = np.random.default_rng(0).standard_normal((3, 5, 4, 6)).astype(np.float32)
    written: list[tuple] = []

    def mimwrite(path, frames, fps, macro_block_size):
        written.append((len(frames), frames[0].shape, fps))
        Path(path).write_bytes(b"mp4")

    encoder = types.ModuleType("imageio.v2")
    encoder.mimwrite = mimwrite  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "imageio", types.ModuleType("imageio"))
    monkeypatch.setitem(sys.modules, "imageio.v2", encoder)
    assert write_video(tmp_path / "a", stimulus, 30.0).name == "a.mp4"
    frames, shape, fps = written[0]
    assert (frames, fps) == (5, 30.0)
    assert shape[0] % 16 == 0
    assert shape[1] % 16 == 0
    assert shape[2] == 3

    def broken(path, frames, fps, macro_block_size):
        Path(path).write_bytes(b"half")
        raise RuntimeError("no ffmpeg backend")

    encoder.mimwrite = broken  # type: ignore[attr-defined]
    gif = write_video(tmp_path / "b", stimulus, 30.0)
    assert gif.name == "b.gif"
    assert not (tmp_path / "b.mp4").exists()  # the failed attempt leaves nothing behind
    from PIL import Image

    with Image.open(gif) as image:
        assert image.n_frames == 5
