"""``openretina characterise``: outputs, replacing only its own output, and every bad input."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import openretina_models as om
import pytest
import torch
from cli_helpers import run_cli, run_dirs, tutorial_args
from openretina_cli.commands import characterise_figures
from openretina_cli.commands.characterise import summary
from safetensors.torch import load_file

IN_SHAPE = (2, 10, 8)
SESSIONS = {"s0": 4, "s1": 3}
# small stimuli: short noise, one temporal frequency, four directions, a bar that fits 8 pixels of 25 µm
FAST = ["--noise-seconds", "4", "--temporal-frequencies", "2", "--directions", "4", "--bar-width-um", "100"]
DATA_INFO = {
    "input_shape": list(IN_SHAPE),
    "frame_rate_hz": 30.0,
    "pixel_size_um": 25.0,
    "stimulus_range": {"min": [-2.0, -2.0], "max": [2.0, 3.0]},
    "sessions": {
        "s0": {
            "n_neurons": 4,
            "neuron_ids": [10, 11, 12, 13],
            "metadata": {"cell_type": ["ON", "OFF", "ON", "OFF"]},
        },
        "s1": {"n_neurons": 3, "neuron_ids": [0, 1, 2], "metadata": {"cell_type": ["ON", "ON", "OFF"]}},
    },
}


def _run_dir(tmp_path: Path, data_info: dict, in_shape: tuple[int, int, int] = IN_SHAPE) -> Path:
    torch.manual_seed(0)
    model = om.create_model(
        "core_readout",
        in_shape=in_shape,
        n_neurons=SESSIONS,
        hidden_channels=[4],
        temporal_kernel_sizes=3,
        spatial_kernel_sizes=3,
    )
    run = tmp_path / "run"
    om.save_model(model, run / "model", data_info=data_info)
    (run / "config.yaml").write_text("exp_name: test\n")
    return run


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return _run_dir(tmp_path, DATA_INFO)


def _strict_json(path: Path) -> dict:
    def refuse(name: str) -> None:
        raise ValueError(f"{name} in strict JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_help_lists_characterise(capsys) -> None:
    assert "characterise" in run_cli(["--help"], capsys).out
    result = run_cli(["characterise", "--help"], capsys)
    assert result.code == 0
    for option in (
        "--stimuli",
        "--sessions",
        "--neurons",
        "--out",
        "--device",
        "--frame-rate",
        "--pixel-size-um",
    ):
        assert option in result.out


def test_characterise_every_neuron_with_every_stimulus(run: Path, capsys) -> None:
    result = run_cli(["characterise", str(run), *FAST], capsys)
    assert result.code == 0, result.err
    out = run / "characterisation"
    with (out / "neurons.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["session"], int(r["neuron"])) for r in rows] == [("s0", i) for i in range(4)] + [
        ("s1", i) for i in range(3)
    ]
    assert rows[2]["neuron_id"] == "12"
    assert rows[1]["cell_type"] == "OFF"
    for column in (
        "functional_type",
        "on_off_index",
        "transience_index",
        "dsi",
        "osi",
        "preferred_direction_deg",
        "ds_p_value",
        "chirp_preferred_frequency_hz",
        "preferred_spatial_frequency_cycles_per_um",
        "chromatic_preference_c0",
        "rf_x_um",
        "rf_sigma_major_um",
        "rf_angle_deg",
        "rf_surround_strength",
    ):
        assert column in rows[0], column
    settings = _strict_json(out / "characterisation.json")
    assert settings["command"] == "openretina characterise"
    assert settings["space"]["pixel_size_um"] == 25.0
    assert settings["stimuli"]["bars"]["parameters"]["width_um"] == 100.0
    assert settings["functional_types"]["agreement"]["cell_type_key"] == "cell_type"
    tensors = load_file(out / "responses.safetensors")
    assert tensors["s0/chirp"].shape == (4, 1, 990)
    assert tensors["s1/bar_tuning"].shape == (3, 4)
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert figures == [
        "chirp_by_type.png",
        "direction_selectivity.png",
        "indices_by_cell_type.png",
        "indices_by_type.png",
        "rf_mosaic_s0.png",
        "rf_mosaic_s1.png",
        "tuning_curves.png",
    ]
    brief = summary(out)
    assert brief["neurons"] == 7
    assert brief["stimuli"] == ["chirp", "bars", "flashes", "gratings", "noise"]
    assert "figures/chirp_by_type.png" in brief["figures"]
    assert summary(run) == {}
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_sessions_neurons_and_rerun_replace_only_its_own_output(run: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "chars"
    args = [
        "characterise",
        str(run),
        "--stimuli",
        "flashes",
        "--sessions",
        "s1",
        "--neurons",
        "0,2",
        "--out",
        str(out),
    ]
    assert run_cli([*args, "--no-figures"], capsys).code == 0
    with (out / "neurons.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["session"], r["neuron"]) for r in rows] == [("s1", "0"), ("s1", "2")]
    assert "functional_type" not in rows[0]  # types need the chirp or the bars
    assert not (out / "figures").exists()
    assert run_cli(args, capsys).code == 0  # again: its own output is replaced
    assert (out / "figures" / "indices_by_type.png").is_file()
    assert run_cli([*args, "--no-figures"], capsys).code == 0  # its own stale figures go
    assert not list((out / "figures").glob("*.png"))
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    shared = ["characterise", str(run), "--stimuli", "flashes", "--no-figures", "--out", str(foreign)]
    assert run_cli(shared, capsys).code == 0  # a user's other files stay beside the outputs
    assert (foreign / "notes.txt").read_text() == "keep me"
    assert (foreign / "neurons.csv").is_file()
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "neurons.csv").write_text("my own table")
    result = run_cli([*shared[:-1], str(taken)], capsys)
    assert result.code == 1
    assert "not written by openretina characterise" in " ".join(result.err.split())
    assert sorted(p.name for p in taken.iterdir()) == ["neurons.csv"]
    assert (taken / "neurons.csv").read_text() == "my own table"


def _fails(args: list[str], capsys, *needles: str) -> str:
    result = run_cli(args, capsys)
    assert result.code == 1, result.out
    message = " ".join(result.err.split())
    for needle in needles:
        assert needle in message, message
    return message


def test_bad_input_gets_one_message_and_nothing_written(run: Path, tmp_path: Path, capsys) -> None:
    base = ["characterise", str(run)]
    fast = [*base, *FAST]
    _fails([*base, "--stimuli", "chirp,bar"], capsys, "unknown stimulus 'bar'", "Did you mean: bars")
    _fails([*base, "--bar-width-um", "300"], capsys, "wider than the frame", "at most 200 µm")
    _fails([*base, *FAST, "--bar-speed-um-per-s", "10000"], capsys, "pixels per frame")
    _fails([*base, "--stimuli", "gratings", "--temporal-frequencies", "20"], capsys, "half the frame rate")
    _fails([*base, "--stimuli", "gratings", "--spatial-frequencies", "0.05"], capsys, "under 2 pixels")
    _fails([*fast, "--neurons", "5-9"], capsys, "No neuron left")
    _fails([*fast, "--sessions", "s2"], capsys, "no session 's2'")
    _fails([*fast, "--frame-rate", "-1"], capsys, "--frame-rate must be a positive number")
    _fails([*fast, "--cell-type-key", "kind"], capsys, "no per-neuron field 'kind'")
    _fails([*fast, "--out", str(run / "config.yaml")], capsys, "is a file")
    _fails(
        [*base, "--device", "cuda:7"] if not torch.cuda.is_available() else [*base, "--device", "nope"],
        capsys,
        "--device",
    )
    assert not (run / "characterisation").exists()


def test_unknown_frame_rate_and_pixel_size_name_the_options(tmp_path: Path, capsys) -> None:
    info = {k: v for k, v in DATA_INFO.items() if k not in ("frame_rate_hz", "pixel_size_um")}
    run = _run_dir(tmp_path, info)
    _fails(
        ["characterise", str(run), "--stimuli", "chirp"], capsys, "frame rate is unknown", "--frame-rate HZ"
    )
    _fails(
        ["characterise", str(run), "--stimuli", "bars", "--frame-rate", "30"],
        capsys,
        "pixel size is unknown",
        "--pixel-size-um UM",
    )
    assert not (run / "characterisation").exists()
    ok = run_cli(
        ["characterise", str(run), "--stimuli", "chirp", "--frame-rate", "30", "--no-figures"], capsys
    )
    assert ok.code == 0, ok.err
    assert _strict_json(run / "characterisation" / "characterisation.json")["space"]["frame_rate_hz"] == 30.0


def test_a_full_field_model_skips_bars_gratings_and_spatial_fields_runs_the_rest(
    tmp_path: Path, capsys
) -> None:
    info = dict(DATA_INFO, input_shape=[2, 1, 1])
    run = _run_dir(tmp_path, info, in_shape=(2, 1, 1))
    result = run_cli(["characterise", str(run), "--noise-seconds", "2", "--no-figures"], capsys)
    assert result.code == 0, result.err
    assert "Skipping bars" in result.out
    assert "Skipping gratings" in result.out
    assert "too small for a spatial receptive field" in result.out  # the noise gives temporal filters only
    settings = _strict_json(run / "characterisation" / "characterisation.json")
    assert list(settings["stimuli"]) == ["chirp", "flashes", "noise"]
    assert set(settings["skipped"]) == {"bars", "gratings"}
    with (run / "characterisation" / "neurons.csv").open() as handle:
        row = next(csv.DictReader(handle))
    assert row["on_off_index"] != ""
    assert row["rf_peak_lag_ms"] != ""
    assert "rf_x_um" not in row
    only = run_cli(["characterise", str(run), "--stimuli", "bars", "--out", str(tmp_path / "x")], capsys)
    assert only.code == 1
    assert "none of the stimuli" in only.err
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_characterise_a_trained_run_and_a_model_imported_from_1x(
    tutorial_dir: Path, tmp_path: Path, capsys
) -> None:
    log_dir = tmp_path / "logs"
    assert run_cli(["train", *tutorial_args(tutorial_dir, log_dir)], capsys).code == 0
    (trained,) = run_dirs(log_dir)
    args = [
        "characterise",
        str(trained),
        *FAST,
        "--frame-rate",
        "30",
        "--pixel-size-um",
        "30",
        "--no-figures",
    ]
    result = run_cli(args, capsys)
    assert result.code == 0, result.err
    assert (trained / "characterisation" / "neurons.csv").is_file()
    fixture = Path(__file__).parents[1] / "models" / "fixtures" / "openretina1" / "default_c2.ckpt"
    imported = tmp_path / "imported"
    assert run_cli(["import-1x", str(fixture), str(imported)], capsys).code == 0
    out = tmp_path / "onex_chars"
    args = [
        "characterise",
        str(imported),
        *FAST,
        "--frame-rate",
        "30",
        "--pixel-size-um",
        "30",
        "--out",
        str(out),
    ]
    result = run_cli(args, capsys)
    assert result.code == 0, result.err
    with (out / "neurons.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 12  # 7 + 5 neurons in the fixture's two sessions


def _draw_outside_the_parent(path: Path, parent: int) -> None:
    """A figure job that fails in a forked drawer (the other process) and draws in this one."""
    if os.getpid() != parent:
        raise RuntimeError("drawn in the other process")
    path.write_text("drawn")


def test_figures_a_second_process_failed_to_draw_are_drawn_by_the_command(tmp_path: Path) -> None:
    jobs = [
        characterise_figures.job(
            tmp_path / f"f{i}.png", partial(_draw_outside_the_parent, tmp_path / f"f{i}.png", os.getpid())
        )
        for i in range(3)
    ]
    assert characterise_figures.drawn(characterise_figures.draw(jobs)) == [
        str(tmp_path / f"f{i}.png") for i in range(3)
    ]
    background = characterise_figures.start(jobs[:1])
    background.close()  # an error is on its way: abandoned, nothing drawn again
    assert characterise_figures.drawn(characterise_figures.start(jobs[1:]).results()) == [
        str(tmp_path / f"f{i}.png") for i in (1, 2)
    ]


def test_the_command_imports_no_training_machinery_and_ends_once_written(run: Path, tmp_path: Path) -> None:
    """As a process of its own (the console script's way), the command imports neither the training
    stack nor, for the tables alone, matplotlib: their imports cost seconds of a command that should
    take less than a training epoch (issue 22). It ends as soon as its files are written, without the
    interpreter's teardown, with its messages printed."""
    unwanted = [
        "lightning", "pytorch_lightning", "torchmetrics", "hydra", "omegaconf", "torch._dynamo",
        "openretina_data", "h5py", "scipy", "sklearn", "pandas", "matplotlib",
    ]  # fmt: skip
    code = (
        "import atexit, sys\n"
        "from openretina_cli.main import main\n"
        "class Left:\n    def __del__(self): print('torn down')\n"
        "left = Left()\n"
        f"atexit.register(lambda: print('imported:', [m for m in {unwanted!r} if m in sys.modules]))\n"
        "sys.argv = ['openretina', 'characterise', *sys.argv[1:]]\n"
        "main()\n"
    )
    out = tmp_path / "tables"
    args = [str(run), "--out", str(out), "--no-figures", *FAST]
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "Wrote" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "imported: []"  # and nothing torn down after it
    assert (out / "neurons.csv").is_file()
