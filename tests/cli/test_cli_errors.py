"""Mistakes end in one message naming the key and the fix, exit code 1, and no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import run_cli, tutorial_args
from openretina_cli.errors import closest


def assert_one_message(err: str, *needles: str) -> None:
    assert "Traceback" not in err
    assert err.count("Error:") == 1, err
    for needle in needles:
        assert needle in err, err


def train(args: list[str], capsys: pytest.CaptureFixture[str]):
    return run_cli(["train", *args], capsys)


def test_closest_names() -> None:
    assert closest("max_epoch", ["max_epochs", "min_epochs", "devices"]) == ["max_epochs", "min_epochs"]


def test_misspelled_override_key(capsys: pytest.CaptureFixture[str]) -> None:
    result = train(["trainer.max_epoch=1"], capsys)
    assert result.code == 1
    assert_one_message(result.err, "'trainer.max_epoch'", "trainer.max_epochs", "+trainer.max_epoch=")


def test_unknown_group_option(capsys: pytest.CaptureFixture[str]) -> None:
    result = train(["logger=tensorbord"], capsys)
    assert result.code == 1
    assert_one_message(result.err, "'tensorbord'", "logger=tensorboard", "wandb")


def test_missing_required_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = train(
        ["--config-name", "hdf5_core_readout", f"paths.log_dir={tmp_path}", "paths.data_dir=x"], capsys
    )
    assert result.code == 1
    assert_one_message(result.err, "data_io.test_names", "data_io.test_names=")
    assert not (tmp_path / "runs").exists()


def test_wrong_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = train([f"paths.log_dir={tmp_path}", "dataloader.batch_size=many"], capsys)
    assert result.code == 1
    assert_one_message(result.err, "'dataloader.batch_size'", "'many'", "int")
    assert not (tmp_path / "runs").exists()


def test_misspelled_key_in_a_yaml_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "exp.yaml").write_text(
        "defaults:\n  - hdf5_core_readout\n  - _self_\n\ndataloader:\n  batchsize: 8\n"
    )
    result = train(
        [
            "--config-path",
            str(tmp_path / "mine"),
            "--config-name",
            "exp",
            f"paths.log_dir={tmp_path}",
            "paths.data_dir=x",
            "data_io.test_names=[a]",
        ],
        capsys,
    )
    assert result.code == 1
    assert_one_message(result.err, "'dataloader.batchsize'", "dataloader.batch_size")


def test_unknown_model_hyperparameter(
    tutorial_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = train([*tutorial_args(tutorial_dir, tmp_path), "+model.hiden_channels=[2]"], capsys)
    assert result.code == 1
    assert_one_message(result.err, "'model.hiden_channels'", "model.hidden_channels")
    assert not (tmp_path / "runs").exists()


def test_unknown_model_name(tutorial_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = train([*tutorial_args(tutorial_dir, tmp_path), "model.name=core_redout"], capsys)
    assert result.code == 1
    assert_one_message(result.err, "model.name=core_readout")


def test_invalid_choice(capsys: pytest.CaptureFixture[str]) -> None:
    result = train(["loss=poison"], capsys)
    assert result.code == 1
    assert_one_message(result.err, "'loss'", "loss=poisson")


def test_data_error_names_the_file_and_leaves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = train(
        [
            "--config-name",
            "hdf5_core_readout",
            f"paths.data_dir={tmp_path / 'nowhere'}",
            "data_io.test_names=[a]",
            f"paths.log_dir={tmp_path / 'logs'}",
        ],
        capsys,
    )
    assert result.code == 1
    assert_one_message(result.err, "Data error", "nowhere")
    assert not (tmp_path / "logs" / "runs").exists()


def test_wrong_frame_shape_is_a_data_error(
    tutorial_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = train([*tutorial_args(tutorial_dir, tmp_path), "data_io.color_channels=2"], capsys)
    assert result.code == 1
    assert_one_message(result.err, "Data error", "color_channels")


def test_full_error_shows_the_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from hydra.errors import ConfigCompositionException

    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(ConfigCompositionException):
        train(["trainer.max_epoch=1"], capsys)
