"""``openretina characterise`` runs on the model of every shipped outer config.

Each config's model is built untrained on its fixture data (no training: training every config is
``test_cli_every_config``'s job) and saved as a model folder, then characterised with stimuli small
enough for any frame. One test loops over all configs so the sweep stays within a CI budget.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from cli_helpers import run_cli
from openretina_cli.config.paths import packaged_config_dir
from test_cli_every_config import ONE_BATCH, SRIDHAR_MODEL_OVERRIDES, fixture_overrides

# Units given on the command line (fixtures may lack them) and stimuli small enough for any frame.
# A low frame rate (the chirp's 8 Hz needs 17+) and one grating keep every stimulus short: the
# sridhar fixtures' frames are large.
SMALL = [
    "--frame-rate",
    "20",
    "--pixel-size-um",
    "5",
    "--bar-width-um",
    "20",
    "--bar-speed-um-per-s",
    "400",
    "--spatial-frequencies",
    "0.025",
    "--temporal-frequencies",
    "2",
    "--directions",
    "4",
    "--noise-seconds",
    "3",
    "--no-figures",
]


def _untrained_model(name: str, tutorial_dir: Path, tmp_path: Path) -> Path:
    """The model folder of outer config `name`, built as a run would build it, before training."""
    import torch
    from openretina_cli.config.compose import compose_config
    from openretina_cli.config.data import load_checked_dataset
    from openretina_cli.config.frame_rate import rescale_to_frame_rate
    from openretina_cli.config.model import build_model
    from openretina_models import save_model

    small = [o for o in ONE_BATCH if o.startswith("model.") and name not in SRIDHAR_MODEL_OVERRIDES]
    overrides = [
        f"paths.log_dir={tmp_path / 'logs'}",
        *small,
        *(o for o in fixture_overrides(name, tutorial_dir, tmp_path) if not o.startswith("trainer.")),
    ]
    cfg = compose_config(name, overrides)
    dataset = load_checked_dataset(cfg).dataset
    cfg = rescale_to_frame_rate(cfg, dataset.data_info.frame_rate_hz).cfg
    torch.manual_seed(0)
    model = build_model(cfg.model, dataset)
    return Path(
        save_model(
            model.eval(),
            tmp_path / "model",
            data_info=dataset.data_info.with_stimulus_range(dataset.sessions).to_dict(),
        )
    )


@pytest.mark.slow
def test_characterise_the_model_of_every_outer_config(
    tutorial_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = sorted(path.stem for path in packaged_config_dir().glob("*.yaml"))
    assert len(names) >= 10
    failed: dict[str, str] = {}
    for name in names:
        work = tmp_path / name
        work.mkdir()
        model_dir = _untrained_model(name, tutorial_dir, work)
        out = work / "characterisation"
        result = run_cli(["characterise", str(model_dir), *SMALL, "--out", str(out)], capsys)
        if result.code != 0:
            failed[name] = result.err
            continue
        with (out / "neurons.csv").open() as handle:
            if not list(csv.DictReader(handle)):
                failed[name] = "neurons.csv has no rows"
    assert not failed, failed
