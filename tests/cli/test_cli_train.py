"""End to end: `openretina train` on a tiny tutorial dataset, and what a run leaves behind."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from cli_helpers import read_results, run_cli, run_dirs, tutorial_args
from openretina_cli.main import main


def train_once(data_dir: Path, log_dir: Path, *overrides: str) -> Path:
    main(["train", *tutorial_args(data_dir, log_dir), *overrides])
    (run_dir,) = run_dirs(log_dir)
    return run_dir


@pytest.fixture(scope="module")
def finished_run(tutorial_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_once(tutorial_dir, tmp_path_factory.mktemp("logs"), "seed=3")


def test_run_directory_contents(finished_run: Path) -> None:
    names = {path.name for path in finished_run.iterdir()}
    assert {
        ".hydra",
        "config.yaml",
        "quality_report.json",
        "quality_report.txt",
        "results.json",
        "model",
    } <= names
    assert {"config.yaml", "overrides.yaml"} <= {p.name for p in (finished_run / ".hydra").iterdir()}
    assert (finished_run / "checkpoints" / "last.ckpt").is_file()
    assert (finished_run / "csv" / "metrics.csv").is_file()
    resolved = yaml.safe_load((finished_run / "config.yaml").read_text())
    assert resolved["seed"] == 3
    assert resolved["paths"]["output_dir"] == str(finished_run)


def test_results_json_names_the_metrics(finished_run: Path) -> None:
    results = read_results(finished_run)
    metrics = results["metrics"]
    for name in (
        "val/correlation",
        "val/session_0/correlation",
        "test/correlation",
        "test/random_noise_2/correlation",
        "test/random_noise_2/session_1/correlation",
    ):
        assert name in metrics
        assert metrics[name] is not None
        assert -1 <= metrics[name] <= 1
    assert results["objective_target"] == "val/correlation"
    assert results["objective"] == metrics["val/correlation"]
    assert results["best_checkpoint"].endswith(".ckpt")
    assert results["timing_s"]["evaluation"] >= 0


def test_results_json_times_every_phase(finished_run: Path) -> None:
    """Where a short run's time and memory go, phase by phase (issue 24; tools/bench reads them)."""
    results = read_results(finished_run)
    timing, cpu, peaks = results["timing_s"], results["cpu_s"], results["peak_rss_mib"]
    phases = ["config", "data", "imports", "model", "trainer", "fit", "load_best", "evaluation", "baseline"]
    phases += ["stimulus_range", "export", "results"]
    assert min(timing[p] for p in phases) >= 0
    assert min(cpu[p] for p in phases) >= 0
    assert min(peaks[p] for p in phases) > 0
    assert [peaks[p] for p in phases] == sorted(peaks[p] for p in phases)  # a running maximum
    assert timing["setup"] >= timing["data"] + timing["model"]
    if timing.get("startup") is not None:  # Linux (/proc): the whole process, from its start
        assert timing["process"] >= timing["startup"] + timing["setup"] + timing["fit"]


def test_exported_model_loads_without_the_cli(finished_run: Path) -> None:
    import torch
    from openretina_models import load_model

    model = load_model(finished_run / "model")
    assert not model.training
    out = model(torch.zeros(model.stimulus_shape(30)), "session_0")
    assert out.shape[-1] > 0
    assert torch.isfinite(out).all()


def test_quality_report_lists_the_checks(finished_run: Path) -> None:
    import json

    report = json.loads((finished_run / "quality_report.json").read_text())
    assert {row["check"] for row in report["rows"]} >= {"non_finite", "constant"}


@pytest.mark.slow
def test_same_seed_gives_identical_metrics(tutorial_dir: Path, tmp_path: Path) -> None:
    first = read_results(train_once(tutorial_dir, tmp_path / "a", "seed=5"))["metrics"]
    second = read_results(train_once(tutorial_dir, tmp_path / "b", "seed=5"))["metrics"]
    assert first == second
    third = read_results(train_once(tutorial_dir, tmp_path / "c", "seed=6"))["metrics"]
    assert third != first


@pytest.mark.slow
def test_exp_name_names_the_run_directory(tutorial_dir: Path, tmp_path: Path) -> None:
    train_once_named = [*tutorial_args(tutorial_dir, tmp_path), "exp_name=my_first_openretina_run"]
    main(["train", *train_once_named])
    assert len(run_dirs(tmp_path, "my_first_openretina_run")) == 1


@pytest.mark.slow
def test_multirun_sweeps_and_returns_each_objective(
    tutorial_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli(["train", "-m", *tutorial_args(tutorial_dir, tmp_path), "seed=1,2"], capsys)
    assert result.code == 0, result.err
    sweep = tmp_path / "multiruns" / "hdf5_core_readout"
    (stamp,) = sweep.iterdir()
    assert sorted(p.name for p in stamp.iterdir() if p.is_dir()) == ["0", "1"]
    assert all((stamp / job / "results.json").is_file() for job in ("0", "1"))


@pytest.mark.slow
def test_failing_trial_reports_the_worst_score_with_objective_direction(
    tutorial_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hydra.core.utils import JobReturn

    returned: list[JobReturn] = []
    import hydra._internal.core_plugins.basic_launcher as launcher

    original = launcher.run_job

    def spy(*args: object, **kwargs: object) -> JobReturn:
        job = original(*args, **kwargs)
        returned.append(job)
        return job

    launcher.run_job = spy
    try:
        result = run_cli(
            [
                "train",
                "-m",
                *tutorial_args(tutorial_dir, tmp_path),
                "objective_direction=maximize",
                "dataloader.clip_length=100000,40",
            ],
            capsys,
        )
    finally:
        launcher.run_job = original
    assert result.code == 0, result.err
    values = [job.return_value for job in returned]
    assert values[0] == -math.inf
    assert math.isfinite(values[1])


@pytest.mark.slow
def test_optuna_search_config_runs_trials(
    tutorial_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli(
        [
            "train",
            *tutorial_args(tutorial_dir, tmp_path),
            "hparams_search=optuna",
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.sampler.n_startup_trials=2",
        ],
        capsys,
    )
    assert result.code == 0, result.err
    sweep = tmp_path / "multiruns" / "hdf5_core_readout"
    (stamp,) = sweep.iterdir()
    assert len(list(stamp.glob("*/results.json"))) == 2
    assert (stamp / "optimization_results.yaml").is_file()


def test_readout_start_is_reported_and_recorded(finished_run: Path) -> None:
    import json
    import re

    notes = json.loads((finished_run / "quality_report.json").read_text())["data_notes"]
    (line,) = [note for note in notes if note.startswith("Readout positions start")]
    assert re.match(r"Readout positions start at the receptive-field centres of \d+/\d+ neurons", line)


def test_unknown_readout_init_is_refused(tutorial_dir: Path, tmp_path: Path, capsys) -> None:
    result = run_cli(["train", *tutorial_args(tutorial_dir, tmp_path), "readout_init=stx"], capsys)
    assert result.code != 0
    assert "Invalid value 'stx' for config key 'readout_init'" in result.err
    assert "readout_init=sta" in result.err
    assert not run_dirs(tmp_path)
