"""Every shipped outer config trains for one batch on its fixture data (so no config can rot)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from cli_helpers import read_results, run_cli
from openretina_cli.config.paths import packaged_config_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))

ONE_BATCH = [
    "trainer=debug",
    "trainer.limit_train_batches=1",
    "trainer.limit_val_batches=1",
    "trainer.detect_anomaly=false",
    "trainer.enable_progress_bar=false",
    "model.hidden_channels=[2,2]",
]


def fixture_overrides(name: str, tutorial_dir: Path, tmp_path: Path) -> list[str]:
    """Overrides pointing an outer config at small local data instead of real or downloaded data."""
    if name in ("hdf5_core_readout", "template_outer_config"):
        return [
            f"paths.data_dir={tutorial_dir}",
            "data_io.test_names=[random_noise_2]",
            "dataloader.clip_length=40",
            "dataloader.train_chunk_size=30",
            "dataloader.num_val_clips=2",
            "model.temporal_kernel_sizes=[5,3]",
        ]
    if name == "simulated_retina_core_readout":
        return [
            f"paths.cache_dir={tmp_path / 'cache'}",
            "data_io.generate.train_frames=400",
            "data_io.generate.neurons_per_session=3",
            "data_io.generate.test_frames=60",
            "data_io.generate.test_trials=3",
            "dataloader.num_val_clips=2",
        ]
    if name.startswith("hoefling_2024"):
        from fixtures_published import write_hoefling_fixture

        files = write_hoefling_fixture(tmp_path / "hoefling")
        return [
            f"data_io.responses_path={files['responses']}",
            f"data_io.movies_path={files['movies']}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            "data_io.quality_checks.verbose=false",
            "model.spatial_kernel_sizes=[3,3]",
        ]
    if name == "maheswaranathan_2023_core_readout":
        from fixtures_published import write_maheswaranathan_fixture

        root = write_maheswaranathan_fixture(tmp_path / "maheswaranathan")
        return [
            f"data_io.base_data_path={root}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            "dataloader.num_val_clips=1",
        ]
    if name == "goldin_2022_core_readout":
        from fixtures_published import write_goldin_fixture

        root = write_goldin_fixture(tmp_path / "goldin")
        return [
            f"paths.data_dir={root}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            "dataloader.num_val_clips=12",
            "model.spatial_kernel_sizes=[5,3]",
        ]
    if name == "karamanlis_2024_core_readout":
        from fixtures_published import write_karamanlis_fixture

        root = write_karamanlis_fixture(tmp_path / "karamanlis")
        return [
            f"paths.data_dir={root}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            "dataloader.num_val_clips=2",
            "model.spatial_kernel_sizes=[5,3]",
            "model.temporal_kernel_sizes=[5,3]",
        ]
    if name.startswith(("sridhar_2025", "vystrcilova_2024")):
        from fixtures_sridhar import write_sridhar_nm_fixture, write_sridhar_wn_fixture

        white_noise = "_wn_" in name
        write = write_sridhar_wn_fixture if white_noise else write_sridhar_nm_fixture
        single_cell = name in SRIDHAR_MODEL_OVERRIDES
        root = write(tmp_path / "sridhar", frames_per_trial=40, n_trials=5, test_frames=30, stas=single_cell)
        overrides = [
            f"paths.data_dir={root}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            "data_io.test_frames=30",
            "trainer.max_epochs=1",  # vystrcilova_2024_nm_cnn sets 15
            "dataloader.clip_length=40",
            "dataloader.train_chunk_size=40",
            "~data_io.excluded_cells",  # the published lists name cells the fixture lacks
            "+data_io.excluded_cells={01: [1]}",
        ]
        return overrides + SRIDHAR_MODEL_OVERRIDES.get(
            name, ["model.temporal_kernel_sizes=[5,3]", "model.spatial_kernel_sizes=[5,3]"]
        )
    raise AssertionError(f"no fixture data for the outer config {name!r}: add it here")


# Single-cell models have no core: these overrides replace ONE_BATCH's model ones (and pick a
# cell the fixture has).
SRIDHAR_MODEL_OVERRIDES: dict[str, list[str]] = {
    "vystrcilova_2024_nm_ln": ["data_io.cells={01: [1]}"],
    "vystrcilova_2024_wn_ln": [],
    "sridhar_2025_nm_single_cell_sc": ["data_io.sessions=['01']"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(path.stem for path in packaged_config_dir().glob("*.yaml")))
def test_outer_config_trains_one_batch(
    name: str, tutorial_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one_batch = [o for o in ONE_BATCH if not (name in SRIDHAR_MODEL_OVERRIDES and o.startswith("model."))]
    args = ["train", "--config-name", name, f"paths.log_dir={tmp_path / 'logs'}", *one_batch]
    result = run_cli([*args, *fixture_overrides(name, tutorial_dir, tmp_path)], capsys)
    assert result.code == 0, result.err
    (run_dir,) = (tmp_path / "logs" / "runs").glob("*/*")
    metrics = read_results(run_dir)["metrics"]
    assert "val/correlation" in metrics
    assert "test/correlation" in metrics
    if name == "simulated_retina_core_readout":  # repeated trials and a known ground truth
        for kind in ("oracle", "trial_correlation", "fraction_oracle", "feve", "fraction_ceiling"):
            assert f"test/natural_test/{kind}" in metrics
