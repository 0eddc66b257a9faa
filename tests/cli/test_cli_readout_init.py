"""`readout_init: sta`: readouts start at the receptive fields the training data shows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openretina_models as om
import pytest
from openretina_cli.training.readout_init import place_readouts_at_receptive_fields
from openretina_data import load_hdf5_dataset, make_splits, read_ground_truth, write_retina_dataset


@pytest.fixture(scope="module")
def retina(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, object, Path]:
    directory = write_retina_dataset(
        tmp_path_factory.mktemp("retina") / "data", num_sessions=2, neurons_per_session=5, num_colors=1,
        height=24, width=20, train_frames=3000, num_stimuli=2, clip_length=50, test_frames=100,
        test_trials=2, mean_rate=3.0, seed=3,
    )  # fmt: skip
    dataset = load_hdf5_dataset(directory, test_names=["natural_test"])
    splits = make_splits(dataset, clip_length=50, num_val_clips=4, train_chunk_size=50, seed=0)
    return dataset, splits, directory


def _model(dataset: object, **options: object) -> om.RetinaModel:
    return om.create_model(
        options.pop("name", "core_readout"),
        in_shape=tuple(dataset.data_info.input_shape),
        n_neurons=dataset.n_neurons,
        **options,
    )


@pytest.mark.parametrize("stride", [1, [2, 1]])
def test_readouts_start_at_the_true_centres(retina: tuple, stride: object) -> None:
    dataset, splits, directory = retina
    model = _model(dataset, hidden_channels=[4, 4], temporal_kernel_sizes=[9, 5], spatial_kernel_sizes=[7, 3],
                   stride=stride)  # fmt: skip
    line = place_readouts_at_receptive_fields(model, dataset, splits)
    assert line.startswith("Readout positions start at the receptive-field centres of 10/10 neurons")
    truth = read_ground_truth(directory)
    scale, offset = model.core.feature_pixels()
    for session in dataset.sessions:
        readout = model.readout[session]
        _, height, width = readout.in_shape
        x, y = readout.position.detach().numpy().T
        rows = ((y + 1) / 2 * (height - 1)) * scale + offset  # back to stimulus pixels
        cols = ((x + 1) / 2 * (width - 1)) * scale + offset
        true = truth.sessions[session]["position"]
        assert np.abs(rows - true[:, 0]).max() < 1.5
        assert np.abs(cols - true[:, 1]).max() < 1.5


def test_models_without_positions_say_it_does_not_apply(retina: tuple) -> None:
    dataset, splits, _ = retina
    factorised = _model(dataset, hidden_channels=[4], temporal_kernel_sizes=[5], spatial_kernel_sizes=[3],
                        readout="factorised")  # fmt: skip
    assert "FactorisedReadout readout has no positions" in place_readouts_at_receptive_fields(
        factorised, dataset, splits
    )
    lnp = _model(dataset, name="lnp", temporal_kernel_size=5)
    assert "does not apply" in place_readouts_at_receptive_fields(lnp, dataset, splits)


def test_neurons_without_a_receptive_field_are_named(retina: tuple) -> None:
    dataset, splits, _ = retina
    silent = {
        name: np.random.default_rng(0).permuted(s.train_responses, axis=1) if name == "session_1" else None
        for name, s in dataset.sessions.items()
    }
    from dataclasses import replace

    shuffled = dataset.replace_sessions(
        {
            name: replace(s, train_responses=silent[name]) if silent[name] is not None else s
            for name, s in dataset.sessions.items()
        }
    )
    model = _model(dataset, hidden_channels=[4], temporal_kernel_sizes=[5], spatial_kernel_sizes=[3])
    line = place_readouts_at_receptive_fields(model, shuffled, splits)
    assert "of 5/10 neurons" in line
    assert "keep a random start: session_1: 0, 1, 2, 3, 4" in line
