"""``openretina characterise`` runs on the model of every shipped outer config (trained one batch)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from cli_helpers import run_cli
from openretina_cli.config_paths import packaged_config_dir
from test_cli_every_config import ONE_BATCH, SRIDHAR_MODEL_OVERRIDES, fixture_overrides

# Units given on the command line (fixtures may lack them) and stimuli small enough for any frame.
SMALL = [
    "--frame-rate",
    "30",
    "--pixel-size-um",
    "10",
    "--bar-width-um",
    "20",
    "--bar-speed-um-per-s",
    "300",
    "--temporal-frequencies",
    "2",
    "--directions",
    "4",
    "--noise-seconds",
    "2",
    "--no-figures",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(path.stem for path in packaged_config_dir().glob("*.yaml")))
def test_characterise_the_model_of_every_outer_config(
    name: str, tutorial_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one_batch = [o for o in ONE_BATCH if not (name in SRIDHAR_MODEL_OVERRIDES and o.startswith("model."))]
    args = ["train", "--config-name", name, f"paths.log_dir={tmp_path / 'logs'}", *one_batch]
    assert run_cli([*args, *fixture_overrides(name, tutorial_dir, tmp_path)], capsys).code == 0
    (run_dir,) = (tmp_path / "logs" / "openretina_assets" / "runs").glob("*/*")
    result = run_cli(["characterise", str(run_dir), *SMALL], capsys)
    assert result.code == 0, result.err
    with (run_dir / "characterisation" / "neurons.csv").open() as handle:
        assert list(csv.DictReader(handle))
