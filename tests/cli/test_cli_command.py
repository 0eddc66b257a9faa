"""The command surface: subcommands, versions, Hydra's help and flags for `openretina train`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cli_helpers import run_cli
from openretina_cli.config.compose import absolutise_config_path
from openretina_cli.config.paths import DEFAULT_CONFIG_NAME, packaged_config_dir


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(["--help"], capsys)
    assert result.code == 0
    for command in ("train", "eval", "create-data", "check-data", "--version"):
        assert command in result.out


def test_no_arguments_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli([], capsys)
    assert result.code == 0
    assert "create-data" in result.out


def test_version_names_all_three_packages(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(["--version"], capsys)
    assert result.code == 0
    for distribution in ("openretina-cli", "openretina-data", "openretina-models"):
        assert distribution in result.out


def test_train_help_is_hydra_help_with_config_groups(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(["train", "--help"], capsys)
    assert result.code == 0
    assert "== Configuration groups ==" in result.out
    for group in ("data_io:", "model: core_readout", "trainer:", "logger:", "training_callbacks:"):
        assert group in result.out
    assert "debug" in result.out
    assert "tensorboard" in result.out


def test_train_hydra_help(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(["train", "--hydra-help"], capsys)
    assert result.code == 0
    assert "--multirun" in result.out


def test_cfg_job_prints_the_composed_config_with_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(
        ["train", "--cfg", "job", "trainer=debug", "seed=7", "+extra=1", "~lr_scheduler"], capsys
    )
    assert result.code == 0
    assert "seed: 7" in result.out
    assert "limit_train_batches: 3" in result.out
    assert "extra: 1" in result.out
    assert "lr_scheduler" not in result.out
    assert "exp_name: simulated_retina_core_readout" in result.out


def test_info_lists_the_packaged_search_path(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(["train", "--info", "searchpath"], capsys)
    assert result.code == 0
    assert str(packaged_config_dir()) in result.out


def test_default_config_is_the_simulated_retina() -> None:
    assert (packaged_config_dir() / f"{DEFAULT_CONFIG_NAME}.yaml").is_file()


def test_config_path_is_relative_to_the_working_directory(tmp_path: Path) -> None:
    args = absolutise_config_path(["--config-path", "configs", "-cp=other", "x=1"], cwd=str(tmp_path))
    assert args == ["--config-path", str(tmp_path / "configs"), f"-cp={tmp_path / 'other'}", "x=1"]
    assert absolutise_config_path(["--config-path=/abs"], cwd="/x") == ["--config-path=/abs"]


def test_config_path_from_the_repository_root(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(packaged_config_dir().parent)
    result = run_cli(
        ["train", "--config-path", "configs", "--config-name", "hdf5_core_readout", "--cfg", "job"], capsys
    )
    assert result.code == 0, result.err
    assert "exp_name: hdf5_core_readout" in result.out


def test_user_config_dir_composes_packaged_groups(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mine" / "model").mkdir(parents=True)
    (tmp_path / "mine" / "model" / "small.yaml").write_text("defaults:\n  - core_readout\n\ndropout: 0.25\n")
    (tmp_path / "mine" / "my_experiment.yaml").write_text(
        "defaults:\n  - simulated_retina_core_readout\n  - override model: small\n  - _self_\n\n"
        "exp_name: mine\n"
    )
    monkeypatch.chdir(tmp_path)
    result = run_cli(
        ["train", "--config-path", "mine", "--config-name", "my_experiment", "--cfg", "job"], capsys
    )
    assert result.code == 0, result.err
    assert "exp_name: mine" in result.out
    assert "dropout: 0.25" in result.out  # the user's model option over the packaged core_readout
    assert "trainer:" in result.out  # packaged groups came along


def test_shell_completion_of_subcommands(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMP_LINE", "openretina cre")
    monkeypatch.setenv("COMP_POINT", str(len("openretina cre")))
    result = run_cli(["-sc", "query=bash"], capsys)
    assert result.out.split() == ["create-data"]


def test_shell_completion_of_train_overrides(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    line = "openretina train trainer="
    monkeypatch.setenv("COMP_LINE", line)
    monkeypatch.setenv("COMP_POINT", str(len(line)))
    result = run_cli(["-sc", "query=bash"], capsys)
    assert "trainer=debug" in result.out.split()


def test_shell_completion_install_script(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(["train", "-sc", "install=bash"], capsys)
    assert result.code == 0
    assert "hydra_bash_completion" in result.out


def test_create_data_tutorial(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(
        ["create-data", str(tmp_path / "d"), "--num-stimuli", "2", "--clip-length", "5", "--num-colors", "1"],
        capsys,
    )
    assert result.code == 0, result.err
    assert sorted(p.name for p in (tmp_path / "d" / "stimuli").iterdir()) == [
        "random_noise_0.npy",
        "random_noise_1.npy",
    ]


def test_create_data_unknown_option_names_the_valid_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli(["create-data", str(tmp_path / "d"), "--option", "num_colours=2"], capsys)
    assert result.code == 1
    assert "num_colors" in result.err
    assert not (tmp_path / "d").exists()


def test_check_data_prints_the_report(tutorial_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(["check-data", str(tutorial_dir), "data_io.test_names=[random_noise_2]"], capsys)
    assert result.code == 0, result.err
    assert "Quality checks" in result.out
    assert "session_0" in result.out
    assert "non_finite" in result.out


def test_check_data_on_a_bare_directory_lists_every_stimulus_as_training(
    tutorial_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli(["check-data", str(tutorial_dir)], capsys)
    assert result.code == 0, result.err
    out = " ".join(result.out.split())
    assert "no stimulus has repeated trials, so every stimulus is listed as training" in out
    for name in ("random_noise_0", "random_noise_1", "random_noise_2"):
        assert f"{name} │ training" in out
    assert "Quality checks" in out


def test_check_data_recognises_repeated_stimuli_as_tests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from openretina_data import write_retina_dataset

    data = write_retina_dataset(
        tmp_path / "retina", num_sessions=2, neurons_per_session=3, num_colors=1, height=6, width=6,
        train_frames=200, num_stimuli=2, clip_length=20, test_frames=40, test_trials=4,
    )  # fmt: skip
    result = run_cli(["check-data", str(data)], capsys)
    assert result.code == 0, result.err
    out = " ".join(result.out.split())
    assert "taking the stimuli with repeated trials as tests (natural_test)" in out
    assert "natural_test │ test │ 40 │ 4 │ session_0, session_1" in out
    assert "natural_0 │ training" in out
    given = run_cli(["check-data", str(data), "data_io.test_names=[natural_test]"], capsys)
    assert given.code == 0, given.err
    assert "not given" not in given.out


def test_check_data_fails_on_a_failed_check(tutorial_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(
        [
            "check-data",
            str(tutorial_dir),
            "data_io.test_names=[random_noise_2]",
            "quality_checks.min_mean_rate=1000",
            "quality_checks.min_mean_rate_action=fail",
        ],
        capsys,
    )
    assert result.code == 1
    assert "Data error" in result.err
    assert "Traceback" not in result.err


def test_startup_does_not_import_torch() -> None:
    """`openretina --help` and `train --help` stay fast: no torch or lightning before a run."""
    import subprocess
    import sys

    code = (
        "import sys; from openretina_cli.main import main\n"
        "try:\n    main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules, 'lightning' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ}, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "False False"


def test_create_data_retina_writes_ground_truth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["create-data", str(tmp_path / "r"), "--kind", "retina", "--num-sessions", "1", "--seed", "2"]
    options = ["train_frames=120", "test_frames=40", "test_trials=2", "neurons_per_session=3"]
    result = run_cli([*args, *[f"--option={option}" for option in options]], capsys)
    assert result.code == 0, result.err
    assert (tmp_path / "r" / "ground_truth" / "ground_truth.h5").is_file()
    assert len(list((tmp_path / "r").glob("*.h*5"))) == 1
