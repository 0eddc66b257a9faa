"""A run whose validation correlation stays near zero prints one warning; a healthy run prints none."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
from cli_helpers import run_cli
from openretina_cli.training.not_learning import NotLearningWarning, not_learning_message

WARNING = "the model is not learning"


def _trainer(value: float | None, *, sanity: bool = False) -> SimpleNamespace:
    metrics = {} if value is None else {"val/correlation": value}
    return SimpleNamespace(sanity_checking=sanity, callback_metrics=metrics, is_global_zero=True)


def _feed(callback: NotLearningWarning, values: list[float | None], **kwargs: bool) -> None:
    for value in values:
        callback.on_validation_end(_trainer(value, **kwargs), None)


def test_warns_once_after_the_first_epochs(capsys: pytest.CaptureFixture[str]) -> None:
    callback = NotLearningWarning(epochs=3)
    _feed(callback, [0.01, float("nan")])
    assert capsys.readouterr().err == ""
    _feed(callback, [0.02, 0.0, 0.01])
    err = capsys.readouterr().err
    assert err.count(WARNING) == 1
    assert len(err.strip().splitlines()) == 1
    for hint in ("misaligned", "optimizer.lr", "readout_init_sigma"):
        assert hint in err


@pytest.mark.parametrize(
    ("values", "sanity"),
    [([0.01, 0.3, 0.02], False), ([0.0, 0.0, 0.0], True), ([0.5, 0.0, 0.0, 0.0], False)],
)
def test_silent_when_learning_or_sanity_checking(
    values: list[float], sanity: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    _feed(NotLearningWarning(epochs=3), values, sanity=sanity)
    assert capsys.readouterr().err == ""


def test_resumed_state_counts_earlier_epochs(capsys: pytest.CaptureFixture[str]) -> None:
    first = NotLearningWarning(epochs=2)
    _feed(first, [0.0])
    resumed = NotLearningWarning(epochs=2)
    resumed.load_state_dict(first.state_dict())
    _feed(resumed, [0.01])
    assert WARNING in capsys.readouterr().err
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        NotLearningWarning(epochs=0)


def test_message_names_monitor_threshold_and_best() -> None:
    message = not_learning_message("val/correlation", 0.05, 3, 0.012)
    assert message.startswith("val/correlation stayed below 0.05 for the first 3 epochs (best 0.012)")


def _retina(directory: Path, shuffle: bool) -> Path:
    from openretina_data import write_retina_dataset

    data = write_retina_dataset(
        directory, num_sessions=1, neurons_per_session=6, num_colors=1, height=8, width=8,
        train_frames=2400, num_stimuli=2, clip_length=80, test_frames=80, test_trials=2, mean_rate=4.0,
    )  # fmt: skip
    if shuffle:  # break the stimulus-response relation: responses permuted in time
        rng = np.random.default_rng(0)
        with h5py.File(data / "session_0.h5", "r+") as handle:
            training = [k for k in handle if k.startswith("responses_natural_") and not k.endswith("_test")]
            for key in training:
                values = handle[key][()]
                handle[key][...] = values[:, rng.permutation(values.shape[1])]
    return data


def _train(data: Path, log_dir: Path, capsys: pytest.CaptureFixture[str]) -> str:
    result = run_cli(
        [
            "train",
            "--config-name",
            "hdf5_core_readout",
            f"paths.data_dir={data}",
            "data_io.test_names=[natural_test]",
            f"paths.log_dir={log_dir}",
            "dataloader.batch_size=8",
            "dataloader.clip_length=80",
            "dataloader.train_chunk_size=40",
            "dataloader.num_val_clips=6",
            "model.hidden_channels=[4]",
            "model.temporal_kernel_sizes=[12]",
            "model.spatial_kernel_sizes=[5]",
            "trainer.max_epochs=3",
            "trainer.enable_progress_bar=false",
            "training_callbacks.early_stopping=null",
            "report=false",
        ],
        capsys,
    )
    assert result.code == 0, result.err
    return result.err


@pytest.mark.slow
def test_shuffled_responses_warn_and_a_healthy_run_does_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shuffled = _train(_retina(tmp_path / "shuffled", shuffle=True), tmp_path / "logs-shuffled", capsys)
    assert shuffled.count(WARNING) == 1
    healthy = _train(_retina(tmp_path / "healthy", shuffle=False), tmp_path / "logs-healthy", capsys)
    assert WARNING not in healthy
