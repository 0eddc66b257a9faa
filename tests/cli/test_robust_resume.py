"""Resume: a run killed at any point continues from last.ckpt and ends with the same metrics."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from openretina_cli.errors import ConfigError
from openretina_cli.training.resume import (
    resume_arguments,
    resume_checkpoint,
    resumed_config,
    rng_states,
    run_dir_of,
    set_rng_states,
)
from robust_support import command, environment, metrics, retina_args, retina_dir, run_dir, train

__all__ = ["retina_dir"]  # the fixture, used by name


def _saved_run(tmp_path: Path) -> Path:
    directory = tmp_path / "run"
    (directory / "checkpoints").mkdir(parents=True)
    config = {
        "seed": 1,
        "resume": None,
        "trainer": {"max_epochs": 3, "accelerator": "cpu"},
        "model": {"hidden_channels": [4]},
        "paths": {"output_dir": str(directory)},
    }
    (directory / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(config)))
    return directory


def _composed(directory: Path, **changes: object) -> OmegaConf:
    config = OmegaConf.load(directory / "config.yaml")
    for key, value in changes.items():
        OmegaConf.update(config, key, value)
    config.resume = str(directory)
    return config


def test_resume_arguments_point_hydra_at_the_run_directory(tmp_path: Path) -> None:
    directory = _saved_run(tmp_path)
    args = resume_arguments([f"resume={directory}", "trainer.max_epochs=5"])
    assert f"hydra.run.dir='{directory}'" in args
    assert "hydra.output_subdir=null" in args
    assert resume_arguments(["seed=3"]) == ["seed=3"]


def test_resume_arguments_accept_a_checkpoint_file(tmp_path: Path) -> None:
    directory = _saved_run(tmp_path)
    assert run_dir_of(directory / "checkpoints" / "last.ckpt") == directory
    args = resume_arguments([f"+resume={directory / 'checkpoints' / 'last.ckpt'}"])
    assert f"hydra.run.dir='{directory}'" in args


def test_resume_arguments_reject_a_missing_directory_and_multirun(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such run directory"):
        resume_arguments([f"resume={tmp_path / 'nope'}"])
    with pytest.raises(ConfigError, match="multirun"):
        resume_arguments(["-m", f"resume={_saved_run(tmp_path)}"])


def test_resumed_config_is_the_saved_one(tmp_path: Path) -> None:
    directory = _saved_run(tmp_path)
    composed = _composed(directory, seed=99, **{"model.hidden_channels": [64]})  # today's config files
    config = resumed_config(composed, directory, [f"resume={directory}"])
    assert config.seed == 1
    assert list(config.model.hidden_channels) == [4]
    assert config.resume == str(directory)


def test_resumed_config_takes_a_longer_training_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = _saved_run(tmp_path)
    composed = _composed(directory, **{"trainer.max_epochs": 10})
    config = resumed_config(composed, directory, [f"resume={directory}", "trainer.max_epochs=10"])
    assert config.trainer.max_epochs == 10
    assert "trainer.max_epochs changed from 3 to 10" in caplog.text


def test_resumed_config_refuses_overrides_that_change_the_run(tmp_path: Path) -> None:
    directory = _saved_run(tmp_path)
    composed = _composed(directory, seed=5, **{"model.hidden_channels": [8]})
    with pytest.raises(ConfigError) as error:
        resumed_config(composed, directory, [f"resume={directory}", "seed=5", "model=core_readout"])
    message = str(error.value)
    assert "seed (1 -> 5)" in message
    assert "model.hidden_channels ([4] -> [8])" in message
    assert "paths.load_model_path=" in message


def test_resumed_config_accepts_overrides_that_repeat_the_saved_values(tmp_path: Path) -> None:
    directory = _saved_run(tmp_path)
    config = resumed_config(_composed(directory), directory, [f"resume={directory}", "seed=1"])
    assert config.seed == 1


def test_resumed_config_must_write_into_the_resumed_run(tmp_path: Path) -> None:
    directory = _saved_run(tmp_path)
    with pytest.raises(ConfigError, match=r"hydra\.run\.dir"):
        resumed_config(_composed(directory), tmp_path / "elsewhere", [])


def test_resume_checkpoint_is_last_ckpt_or_a_fresh_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = _saved_run(tmp_path)
    config = OmegaConf.create({"resume": str(directory)})
    assert resume_checkpoint(config, directory) is None  # killed before the first checkpoint
    assert "training it again from the start" in caplog.text
    (directory / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert resume_checkpoint(config, directory) == str(directory / "checkpoints" / "last.ckpt")
    assert resume_checkpoint(OmegaConf.create({"resume": None}), directory) is None


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path: Path) -> None:
    import random

    import numpy as np
    import torch

    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    path = tmp_path / "states.pt"
    torch.save(rng_states(), path)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_states(torch.load(path, weights_only=True))
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


def _kill_after_first_checkpoint(args: list[str], log_dir: Path, exp_name: str, cwd: Path) -> Path:
    """Start a run and SIGKILL it, with every process it started, once its first last.ckpt exists."""
    process = subprocess.Popen(
        command(args),
        cwd=cwd,
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, like a cluster job
    )
    root = log_dir / "runs" / exp_name
    deadline = time.monotonic() + 300
    try:
        while not list(root.glob("*/checkpoints/last.ckpt")):
            if process.poll() is not None:
                pytest.fail(f"the run ended before its first checkpoint: {process.stderr.read().decode()}")
            if time.monotonic() > deadline:
                pytest.fail("no last.ckpt within 300 s")
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    return run_dir(log_dir, exp_name)


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_metrics(retina_dir: Path, tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    args = retina_args(retina_dir, log_dir, "trainer.max_epochs=3", "model.dropout=0.2")
    train([*args, "exp_name=whole"], cwd=tmp_path)
    whole = run_dir(log_dir, "whole")

    killed = _kill_after_first_checkpoint([*args, "exp_name=killed"], log_dir, "killed", tmp_path)
    assert not (killed / "results.json").exists()
    train([f"resume={killed}"], cwd=tmp_path)

    expected, resumed = metrics(whole), metrics(killed)
    assert expected.keys() == resumed.keys()
    for name, value in expected.items():
        other = resumed[name]
        assert (value is None and other is None) or math.isclose(value, other, rel_tol=0, abs_tol=1e-6), (
            name,
            value,
            other,
        )
    results = json.loads((killed / "results.json").read_text())
    assert results["epochs"] == json.loads((whole / "results.json").read_text())["epochs"]
    assert results["run_dir"] == str(killed)
    assert Path(results["best_checkpoint"]).parent == killed / "checkpoints"
    assert (killed / "csv.until_resume_1" / "metrics.csv").is_file()  # the epochs before the kill


def test_earlier_metrics_are_kept_on_resume(tmp_path: Path) -> None:
    from openretina_cli.training.resume import keep_earlier_metrics

    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "metrics.csv").write_text("epoch\n0\n")
    assert keep_earlier_metrics(tmp_path) == [tmp_path / "csv.until_resume_1" / "metrics.csv"]
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "metrics.csv").write_text("epoch\n1\n")
    (tmp_path / "metrics.csv").write_text("epoch\n1\n")
    assert keep_earlier_metrics(tmp_path) == [
        tmp_path / "csv.until_resume_2" / "metrics.csv",
        tmp_path / "metrics.until_resume_1.csv",
    ]
    assert (tmp_path / "csv.until_resume_1" / "metrics.csv").read_text() == "epoch\n0\n"


def _train_here(args: list[str]) -> None:
    from openretina_cli.main import main

    code: int | str | None = 0
    try:
        main(["train", *args])
    except SystemExit as ex:
        code = ex.code
    assert code in (0, None), f"openretina train {args} exited {code}"


@pytest.mark.slow
@pytest.mark.parametrize("killed_when", ["before the first checkpoint", "during the final evaluation"])
def test_resume_from_other_kill_points(retina_dir: Path, tmp_path: Path, killed_when: str) -> None:
    import shutil

    log_dir = tmp_path / "logs"
    args = retina_args(retina_dir, log_dir, "trainer.max_epochs=2")
    _train_here([*args, "exp_name=whole"])
    _train_here([*args, "exp_name=killed"])
    killed = run_dir(log_dir, "killed")
    # What a SIGKILL at that point leaves behind.
    for name in ("results.json", "model"):
        shutil.rmtree(killed / name) if (killed / name).is_dir() else (killed / name).unlink()
    if killed_when == "before the first checkpoint":
        shutil.rmtree(killed / "checkpoints")
        shutil.rmtree(killed / "csv")
    _train_here([f"resume={killed}"])
    assert metrics(killed) == metrics(run_dir(log_dir, "whole"))
    assert json.loads((killed / "results.json").read_text())["epochs"] == 2


@pytest.mark.slow
def test_a_killed_ddp_run_resumes_to_the_same_metrics(retina_dir: Path, tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    args = retina_args(retina_dir, log_dir, "trainer=ddp", "trainer.devices=2", "trainer.max_epochs=2")
    train([*args, "exp_name=whole"], cwd=tmp_path)
    killed = _kill_after_first_checkpoint([*args, "exp_name=killed"], log_dir, "killed", tmp_path)
    train([f"resume={killed}"], cwd=tmp_path)
    assert metrics(killed) == metrics(run_dir(log_dir, "whole"))
