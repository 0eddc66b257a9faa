"""frame_counts_at_hz: the config's frame counts follow time on data at another frame rate."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cli_helpers import run_cli, run_dirs
from omegaconf import OmegaConf
from openretina_cli.config.frame_rate import frames_for_rate, rescale_to_frame_rate
from openretina_cli.errors import ConfigError


def _cfg(reference: float | None, kernels: object = (11, 5)) -> OmegaConf:
    return OmegaConf.create(
        {
            "frame_counts_at_hz": reference,
            "model": {"temporal_kernel_sizes": list(kernels) if isinstance(kernels, tuple) else kernels},
            "dataloader": {"train_chunk_size": 50, "clip_length": 75, "batch_size": 16},
        }
    )


def test_counts_are_rescaled_to_the_same_time_span() -> None:
    done = rescale_to_frame_rate(_cfg(30.0), 100.0)
    assert list(done.cfg.model.temporal_kernel_sizes) == [37, 17]
    assert done.cfg.dataloader.train_chunk_size == 167
    assert done.cfg.dataloader.clip_length == 250
    assert done.cfg.dataloader.batch_size == 5  # a batch holds the same seconds of movie
    assert done.cfg.frame_counts_at_hz == 100.0  # rescaling the saved config again changes nothing
    assert rescale_to_frame_rate(done.cfg, 100.0).note is None
    assert "[11, 5] -> [37, 17]" in (done.note or "")
    slower = rescale_to_frame_rate(_cfg(30.0, kernels=9), 10.0)
    assert slower.cfg.model.temporal_kernel_sizes == 3
    assert frames_for_rate(1, 100.0, 10.0) == 1


@pytest.mark.parametrize(("reference", "rate"), [(None, 100.0), (30.0, None), (30.0, 30.0)])
def test_nothing_changes_without_both_rates_or_at_the_same_rate(
    reference: float | None, rate: float | None
) -> None:
    cfg = _cfg(reference)
    done = rescale_to_frame_rate(cfg, rate)
    assert done.note is None
    assert done.cfg == cfg


def test_a_bad_reference_rate_is_one_message() -> None:
    with pytest.raises(ConfigError, match="frame_counts_at_hz=0 is not a frame rate"):
        rescale_to_frame_rate(_cfg(0.0), 100.0)


@pytest.mark.slow
def test_a_run_on_100hz_data_trains_with_time_scaled_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from openretina_data import write_retina_dataset

    data = write_retina_dataset(
        tmp_path / "retina", num_sessions=1, neurons_per_session=3, num_colors=1, height=6, width=6,
        train_frames=1600, num_stimuli=1, clip_length=200, test_frames=200, test_trials=2,
        frame_rate_hz=100.0, filter_frames=30,
    )  # fmt: skip
    result = run_cli(
        [
            "train",
            "--config-name",
            "hdf5_core_readout",
            f"paths.data_dir={data}",
            "data_io.test_names=[natural_test]",
            f"paths.log_dir={tmp_path / 'logs'}",
            "model.hidden_channels=[2]",
            "model.temporal_kernel_sizes=[30]",  # 100 frames at 100 Hz: more than an unscaled clip
            "model.spatial_kernel_sizes=[3]",
            "dataloader.num_val_clips=1",
            "dataloader.train_chunk_size=60",
            "dataloader.clip_length=90",
            "trainer=debug",
            "trainer.detect_anomaly=false",
            "trainer.enable_progress_bar=false",
            "report=false",
        ],
        capsys,
    )
    assert result.code == 0, result.err
    assert "rescaled to the same time span" in result.out
    (run_dir,) = run_dirs(tmp_path / "logs")
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["model"]["temporal_kernel_sizes"] == [100]
    assert saved["dataloader"]["train_chunk_size"] == frames_for_rate(60, 30.0, 100.0) == 200
    assert saved["dataloader"]["batch_size"] == 5
    assert saved["frame_counts_at_hz"] == 100.0
    # eval rebuilds the data exactly as training did (the counts rescaled the same way)
    result = run_cli(["eval", str(run_dir), "--no-figures"], capsys)
    assert result.code == 0, result.err
    assert (run_dir / "eval" / "summary.json").is_file()
