"""Every shipped config composes, and every option of every group instantiates."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf
from openretina_cli.config.compose import compose_config
from openretina_cli.config.instantiate import instantiate_named
from openretina_cli.config.model import model_hyperparameters, resolve_auto_stride
from openretina_cli.config.paths import packaged_config_dir
from openretina_cli.config.schema import validate

CONFIGS = packaged_config_dir()
OUTER_CONFIGS = sorted(path.stem for path in CONFIGS.glob("*.yaml"))


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONFIGS / group).glob("*.yaml"))


def compose(name: str, tmp_path: Path, *overrides: str):
    """The config with run paths in tmp_path and any still-required (???) data_io value filled in."""
    cfg = compose_config(
        name,
        [
            f"paths.output_dir={tmp_path}",
            f"paths.log_dir={tmp_path}",
            f"paths.cache_dir={tmp_path}",
            *overrides,
        ],
    )
    if OmegaConf.is_missing(cfg.paths, "data_dir"):
        cfg.paths.data_dir = str(tmp_path)
    if "test_names" in list(cfg.data_io.keys()) and OmegaConf.is_missing(
        cfg.data_io, "test_names"
    ):  # `in` skips ???
        cfg.data_io.test_names = ["a"]
    return cfg


def test_the_required_outer_configs_exist() -> None:
    for name in (
        "hdf5_core_readout",
        "simulated_retina_core_readout",
        "hoefling_2024_core_readout_high_res",
        "hoefling_2024_core_readout_low_res",
        "maheswaranathan_2023_core_readout",
        "template_outer_config",
    ):
        assert name in OUTER_CONFIGS


@pytest.mark.parametrize("name", OUTER_CONFIGS)
def test_every_outer_config_composes_and_validates(name: str, tmp_path: Path) -> None:
    cfg = compose(name, tmp_path)
    validate(cfg)
    assert cfg.exp_name
    model_hyperparameters(cfg.model)
    OmegaConf.to_container(cfg.data_io, resolve=True)


@pytest.mark.parametrize("option", options("trainer"))
def test_every_trainer_instantiates(option: str, tmp_path: Path) -> None:
    import lightning.pytorch as pl

    cfg = compose("hdf5_core_readout", tmp_path, f"trainer={option}")
    overrides = {"accelerator": "cpu", "devices": 1} if option in ("gpu", "ddp") else {}
    if option == "ddp":
        overrides["strategy"] = "ddp"  # built but not launched: one CPU device in a test
        overrides["devices"] = 1
    trainer = instantiate(cfg.trainer, **overrides, logger=False, enable_progress_bar=False)
    assert isinstance(trainer, pl.Trainer)
    if option == "debug":
        assert trainer.max_epochs == 1
        assert trainer.limit_train_batches == 3


@pytest.mark.parametrize("option", options("logger"))
def test_every_logger_instantiates(option: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = compose("hdf5_core_readout", tmp_path, f"logger={option}")
    loggers = instantiate_named(cfg.logger, "logger")
    assert loggers
    for logger in loggers:
        directory = getattr(logger, "save_dir", None) or getattr(logger, "_tracking_uri", "")
        assert str(tmp_path) in str(directory)
    if option == "wandb":
        assert loggers[0]._offline is True


@pytest.mark.parametrize("option", options("training_callbacks"))
def test_every_callback_set_instantiates(option: str, tmp_path: Path) -> None:
    cfg = compose("hdf5_core_readout", tmp_path, f"training_callbacks={option}")
    names = {
        type(callback).__name__
        for callback in instantiate_named(cfg.training_callbacks, "training_callbacks")
    }
    assert {"ModelCheckpoint", "LearningRateMonitor"} <= names
    assert ("EarlyStopping" in names) == (option == "default")


@pytest.mark.parametrize("option", options("optimizer"))
def test_every_optimizer_instantiates(option: str, tmp_path: Path) -> None:
    import torch

    cfg = compose("hdf5_core_readout", tmp_path, f"optimizer={option}")
    factory = instantiate(cfg.optimizer)
    assert isinstance(factory([torch.nn.Parameter(torch.zeros(2))]), torch.optim.Optimizer)


@pytest.mark.parametrize("option", options("lr_scheduler"))
def test_every_lr_scheduler_instantiates(option: str, tmp_path: Path) -> None:
    import torch

    cfg = compose("hdf5_core_readout", tmp_path, f"lr_scheduler={option}")
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    if cfg.lr_scheduler.scheduler is None:
        assert option == "constant"
        return
    scheduler = instantiate(cfg.lr_scheduler.scheduler)(optimizer)
    assert hasattr(scheduler, "step")


@pytest.mark.parametrize("option", options("model"))
def test_every_model_option_builds(option: str, tmp_path: Path) -> None:
    import torch
    from openretina_models import create_model

    cfg = compose("hdf5_core_readout", tmp_path, f"model={option}")
    name, hyper = model_hyperparameters(cfg.model)
    resolve_auto_stride(hyper, (2, 18, 16))  # as build_model does for the data's frames
    model = create_model(name, in_shape=(2, 18, 16), n_neurons={"s": 3}, **hyper)
    out = model(torch.zeros(model.stimulus_shape(40)), "s")
    assert out.shape == (1, 40 - model.warmup_frames, 3)


@pytest.mark.parametrize("option", options("quality_checks"))
def test_every_quality_checks_option_is_valid(option: str, tmp_path: Path) -> None:
    from openretina_data import QualityConfig

    cfg = compose("hdf5_core_readout", tmp_path, f"quality_checks={option}")
    values = OmegaConf.to_container(cfg.quality_checks)
    if option == "hoefling_2024":  # the published ROI selection, used inside data_io of Höfling configs
        from openretina_data.datasets.hoefling_2024.quality import hoefling_quality_checks

        assert set(values) <= set(__import__("inspect").signature(hoefling_quality_checks).parameters)
        return
    QualityConfig(**values)


@pytest.mark.parametrize("option", options("data_io"))
def test_every_data_io_targets_an_openretina_data_loader(option: str, tmp_path: Path) -> None:
    import inspect

    from openretina_cli.config.instantiate import locate_target

    cfg = compose("hdf5_core_readout", tmp_path, f"data_io={option}")
    loader = locate_target(cfg.data_io, "data_io")
    assert loader.__module__.startswith("openretina_data")
    accepted = inspect.signature(loader).parameters
    for key in cfg.data_io:
        if not (str(key).startswith("_") and str(key).endswith("_")) and key not in (
            "generate",
            "channel_names",
        ):
            assert key in accepted, f"data_io/{option}.yaml: {key} is not an argument of {loader.__name__}"


def test_hydra_run_dir_follows_the_1x_layout_unless_a_log_dir_is_given() -> None:
    text = (CONFIGS / "hydra" / "default.yaml").read_text()
    assert "${paths.log_dir}/runs/${exp_name}/" in text
    assert "chdir: false" in text
    # no log_dir given: <cwd or OPENRETINA_LOG_DIR>/openretina_assets/runs/..., as in 1.x
    paths = (CONFIGS / "paths" / "default.yaml").read_text()
    assert "log_dir: ${oc.env:OPENRETINA_LOG_DIR,.}/openretina_assets" in paths


@pytest.mark.parametrize("name", [n for n in OUTER_CONFIGS if n != "template_outer_config"])
def test_core_readout_configs_start_readouts_at_receptive_fields(name: str, tmp_path: Path) -> None:
    """Issue 24: from a random start near the frame centre, readouts learn little on small
    recordings; every shipped core + readout config starts them at the STA centres."""
    cfg = compose(name, tmp_path)
    if cfg.model.get("name") == "core_readout":
        assert cfg.readout_init == "sta"
