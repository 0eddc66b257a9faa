"""Every outer config composes to exactly what it composed to before the configs shared a base.

The fixtures are ``openretina train --cfg job --config-name NAME`` as printed before the outer
configs were rewritten to extend ``base.yaml`` (issue 20); a change of any default shows up here.
Two run-level keys were left out by some outer configs and filled in by code; ``base.yaml`` now
states them, with the values the code used, so those configs print them and nothing else changes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from openretina_cli.main import main

FIXTURES = Path(__file__).parent / "fixtures" / "resolved_configs"
NAMES = sorted(path.stem for path in FIXTURES.glob("*.yaml"))
# What the code assumed when an outer config left the key out (before issue 20).
MADE_EXPLICIT = {"readout_init": "random", "frame_counts_at_hz": None}


LATER_KEYS = ("baseline",)


# Issue 24: the published-dataset configs start readouts at the STA centres (their records left
# readout_init out, so it is checked where MADE_EXPLICIT's keys are) and take batches small enough
# that a small recording still gives each epoch several steps.
STA_START = (
    "goldin_2022_core_readout",
    "hoefling_2024_core_readout_high_res",
    "hoefling_2024_core_readout_low_res",
    "karamanlis_2024_core_readout",
    "sridhar_2025_nm_core_readout",
    "sridhar_2025_wn_core_readout",
    "vystrcilova_2024_nm_cnn",
    "vystrcilova_2024_wn_cnn",
)
SMALLER_BATCHES = {
    "karamanlis_2024_core_readout": 4,
    "sridhar_2025_nm_core_readout": 4,
    "sridhar_2025_nm_single_cell_sc": 4,
    "sridhar_2025_wn_core_readout": 4,
    "vystrcilova_2024_nm_ln": 4,
    "vystrcilova_2024_wn_ln": 4,
}


def made_explicit(name: str) -> dict:
    """MADE_EXPLICIT as this config states it now."""
    return {**MADE_EXPLICIT, "readout_init": "sta"} if name in STA_START else MADE_EXPLICIT


def apply_later_changes(before: dict, name: str) -> None:
    """The changes made on purpose after the record, and nothing else. Issue 21: every run
    evaluates a linear baseline, runs go to ``<log_dir>/runs`` (so the default log_dir keeps 1.x's
    ``./openretina_assets``), and the generic HDF5 data may name its channels. Issue 22: the
    default retina states its pixel size and is cached under a folder that says so. Issue 24:
    ``STA_START`` (see ``made_explicit``), ``SMALLER_BATCHES``, and the generic config validates on
    at most a fifth of a session's clips (the others keep their split). Issue 22 again: the default
    experiment trains a wider network (16 + 16 channels) for 30 epochs, so that the
    characterisation of its neurons recovers the simulated retina's ground truth."""
    before["baseline"] = True
    before["paths"]["log_dir"] += "/openretina_assets"
    if str(before["data_io"].get("_target_", "")).endswith("load_hdf5_dataset"):
        before["data_io"].setdefault("channel_names", None)
    if name == "simulated_retina_core_readout":
        before["data_io"]["generate"]["pixel_size_um"] = 50.0
        before["paths"]["data_dir"] += "_px${data_io.generate.pixel_size_um}"
        before["model"]["hidden_channels"] = [16, 16]
        before["trainer"]["max_epochs"] = 30
    if name in SMALLER_BATCHES:
        before["dataloader"]["batch_size"] = SMALLER_BATCHES[name]
    before["dataloader"]["max_val_fraction"] = 0.2 if name == "hdf5_core_readout" else None


def normalised(text: str) -> str:
    """The printed config with this machine's home and working directory replaced by placeholders."""
    for value, placeholder in ((os.getcwd(), "<cwd>"), (os.path.expanduser("~"), "<home>")):
        if value not in ("", "/"):
            text = text.replace(value, placeholder)
    return text


def test_every_outer_config_has_a_fixture() -> None:
    from openretina_cli.config.paths import packaged_config_dir

    outer = sorted(p.stem for p in packaged_config_dir().glob("*.yaml"))
    assert outer == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_outer_config_composes_as_before(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    main(["train", "--cfg", "job", "--config-name", name])
    printed = yaml.safe_load(normalised(capsys.readouterr().out))
    before = yaml.safe_load(normalised((FIXTURES / f"{name}.yaml").read_text()))
    for key, value in made_explicit(name).items():
        if key not in before:
            assert printed.pop(key) == value
    apply_later_changes(before, name)
    assert printed == before
    assert [k for k in printed if k not in LATER_KEYS] == [k for k in before if k not in LATER_KEYS]


def test_an_outer_config_without_the_base_names_the_missing_key(tmp_path: Path) -> None:
    from omegaconf import OmegaConf
    from openretina_cli.config.compose import compose_config
    from openretina_cli.config.schema import validate
    from openretina_cli.errors import ConfigError

    overrides = [f"paths.output_dir={tmp_path}", "paths.data_dir=x", "data_io.test_names=[a]"]
    cfg = compose_config("hdf5_core_readout", overrides)
    OmegaConf.set_struct(cfg, False)
    del cfg["readout_init"]
    with pytest.raises(ConfigError, match=r"no 'readout_init'.*- base"):
        validate(cfg)
    cfg = compose_config("hdf5_core_readout", overrides)
    validate(cfg)  # the shipped config itself is complete
