"""``openretina check-data DIR``: load a dataset as training would, run its quality checks, report.

The dataset is read with the ``data_io`` and ``quality_checks`` of an outer config, so what this
reports is what a training run on the same config would keep and drop.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(commands: argparse._SubParsersAction) -> None:
    check = commands.add_parser(
        "check-data",
        help="load a dataset, run the quality checks and print a report (exit 1 on failure)",
        description=(
            "Load DIR with the data_io config of an outer config, run its quality checks and print "
            "the report. Extra arguments are Hydra overrides, e.g. "
            "data_io.test_names='[random_noise_2]' quality_checks.min_mean_rate=0.01"
        ),
    )
    check.add_argument("directory", metavar="DIR", help="dataset directory")
    check.add_argument(
        "--config-name",
        default="hdf5_core_readout",
        help="outer config whose data_io and quality_checks are used (default: hdf5_core_readout)",
    )
    check.add_argument("--config-path", default=None, help="your own config directory (optional)")
    check.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="Hydra overrides")


def run(parsed: argparse.Namespace) -> int:
    """Load a dataset as training would, run the quality checks and print the report.

    On a directory in the generic HDF5 layout whose test stimuli nobody named
    (``data_io.test_names`` left unset), stimuli with repeated trials are taken as tests and every
    other stimulus as training, and the command says so. Exit status 1 when loading fails or a
    check whose action is ``fail`` finds a problem.
    """
    from omegaconf import OmegaConf

    from openretina_cli.config.compose import compose_config
    from openretina_cli.config.data import load_checked_dataset
    from openretina_cli.errors import reporting_errors
    from openretina_cli.training.report import print_quality_report, print_stimuli

    directory = Path(parsed.directory).expanduser().resolve()
    overrides = [f"paths.data_dir={directory}", *parsed.overrides]
    survey = None
    with reporting_errors():
        cfg = compose_config(parsed.config_name, overrides, config_path=parsed.config_path)
        if _reads_hdf5_layout(cfg):
            from openretina_data.hdf5_reader import survey_stimuli

            survey = survey_stimuli(directory)
            if OmegaConf.is_missing(cfg.data_io, "test_names"):
                tests = [stimulus.name for stimulus in survey if stimulus.has_trials]
                cfg.data_io.test_names = tests
                print(
                    "data_io.test_names not given: "
                    + (
                        f"taking the stimuli with repeated trials as tests ({', '.join(tests)})"
                        if tests
                        else "no stimulus has repeated trials, so every stimulus is listed as training"
                    )
                    + ". Pass data_io.test_names='[...]' to choose."
                )
        checked = load_checked_dataset(cfg)
    if survey is not None:
        print_stimuli(survey, set(OmegaConf.to_container(cfg.data_io.test_names) or []))
    print_quality_report(checked.report, checked.dataset)
    return 0


def _reads_hdf5_layout(cfg: Any) -> bool:
    return str(cfg.data_io.get("_target_", "")).endswith("load_hdf5_dataset")
