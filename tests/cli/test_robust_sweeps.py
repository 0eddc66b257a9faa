"""Sweeps: the Optuna search config, the SLURM launcher config, and failing trials."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf
from openretina_cli import errors, extras
from openretina_cli.config.paths import packaged_config_dir, register_packaged_search_path
from openretina_cli.main import main
from robust_support import retina_args, retina_dir

__all__ = ["retina_dir"]  # the fixture, used by name


def _compose_with_hydra(overrides: list[str]) -> OmegaConf:
    register_packaged_search_path()
    with initialize_config_dir(config_dir=str(packaged_config_dir()), version_base="1.3"):
        return compose(
            config_name="simulated_retina_core_readout", overrides=overrides, return_hydra_config=True
        )


def test_optuna_search_composes_with_seeded_tpe_and_the_objective_direction() -> None:
    cfg = _compose_with_hydra(["hparams_search=optuna", "seed=7"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert sweeper.sampler.seed == 7
    assert sweeper.direction == "maximize" == cfg.objective_direction
    assert cfg.objective_target == "val/correlation"
    assert {"optimizer.lr", "model.gamma_input", "model.hidden_channels"} <= set(sweeper.params)
    assert "hparams_search" not in cfg


def test_optuna_direction_follows_objective_direction() -> None:
    cfg = _compose_with_hydra(
        ["hparams_search=optuna", "objective_direction=minimize", "objective_target=val/loss"]
    )
    assert cfg.hydra.sweeper.direction == "minimize"


def test_slurm_launcher_composes() -> None:
    cfg = _compose_with_hydra(["hydra/launcher=slurm", "hydra.launcher.partition=gpu"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.partition == "gpu"
    assert launcher.timeout_min == 240


@pytest.mark.parametrize(
    ("missing", "extra"),
    [
        ("hydra/sweeper/optuna", "optuna"),
        ("hydra/sweeper/sampler/tpe", "optuna"),
        ("hydra/launcher/submitit_slurm", "submitit"),
    ],
)
def test_a_missing_plugin_names_the_pip_command(
    monkeypatch: pytest.MonkeyPatch, missing: str, extra: str
) -> None:
    monkeypatch.setattr(extras, "installed", lambda module: False)
    error = MissingConfigException(f"Could not find '{missing}'", missing_cfg_file=missing, options=["basic"])
    message = errors.describe(error)
    assert f'pip install "openretina-cli[{extra}]"' in message
    assert missing in message


def test_an_installed_plugin_gets_the_usual_message() -> None:
    assert extras.missing_plugin_message("hydra/sweeper/optuna") is None  # installed in this environment
    assert extras.missing_plugin_message("model/unknown") is None


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = 0
    try:
        main(["train", *args])
    except SystemExit as ex:
        code = ex.code if isinstance(ex.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _optimization_results(log_dir: Path, exp_name: str) -> dict:
    (sweep,) = (log_dir / "multiruns" / exp_name).iterdir()
    return yaml.safe_load((sweep / "optimization_results.yaml").read_text())


@pytest.mark.slow
def test_optuna_search_runs_two_trials(
    retina_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_dir = tmp_path / "logs"
    args = [a for a in retina_args(retina_dir, log_dir) if not a.startswith("model.hidden_channels")]
    code, output = _run(
        [
            "-m",
            "hparams_search=optuna",
            *args,
            "trainer.max_epochs=1",
            "exp_name=search",
            "hydra.sweeper.n_trials=2",
            "model.hidden_channels=choice([4],[3])",
        ],
        capsys,
    )
    assert code == 0, output
    results = _optimization_results(log_dir, "search")
    assert math.isfinite(results["best_value"])
    assert {"optimizer.lr", "model.gamma_input", "model.hidden_channels"} <= set(results["best_params"])
    (sweep,) = (log_dir / "multiruns" / "search").iterdir()
    assert sorted(p.parent.name for p in sweep.glob("*/results.json")) == ["0", "1"]


@pytest.mark.slow
def test_a_failing_trial_reports_the_worst_score(
    retina_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_dir = tmp_path / "logs"
    # A negative weight decay passes config checks and fails when the optimizer is built in fit().
    code, output = _run(
        [
            "-m",
            "hparams_search=optuna",
            *retina_args(retina_dir, log_dir),
            "exp_name=failing",
            "hydra.sweeper.n_trials=1",
            "optimizer.weight_decay=-1.0",
        ],
        capsys,
    )
    assert code == 0, output
    assert "trial failed" in output
    assert "worst score" in output
    assert _optimization_results(log_dir, "failing")["best_value"] == -math.inf


@pytest.mark.slow
def test_without_objective_direction_a_failing_trial_fails_the_sweep(
    retina_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_dir = tmp_path / "logs"
    args = [*retina_args(retina_dir, log_dir), "exp_name=fails", "trainer.max_epochs=1"]
    code, output = _run(["-m", *args, "optimizer.weight_decay=0.0,-1.0"], capsys)
    assert code != 0
    assert "weight_decay" in output
