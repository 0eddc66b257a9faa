"""The MEI of a model fitted to the simulated retina reproduces each neuron's true receptive field.

The simulated cells are linear-nonlinear: for them the most exciting input under a norm budget is
the linear filter itself, so the MEI's spatial map at its peak frame must match the true receptive
field (signed, each colour channel weighted as the cell weighs it). The model is a small core +
readout network fitted here in plain PyTorch, not an LN model: nothing in it knows the answer.
"""

from __future__ import annotations

import numpy as np
import openretina_models as om
import pytest
import torch
from openretina_data import load_hdf5_dataset, read_ground_truth, write_retina_dataset
from openretina_models import insilico

SESSION = "session_0"
NEURONS = 10
SIZE = 10


def _fit(movie: torch.Tensor, responses: torch.Tensor, mean: np.ndarray, steps: int) -> torch.nn.Module:
    torch.manual_seed(0)
    model = om.create_model(
        "core_readout",
        in_shape=(movie.shape[0], SIZE, SIZE),
        n_neurons={SESSION: NEURONS},
        mean_activity={SESSION: mean},
        hidden_channels=[8],
        temporal_kernel_sizes=15,
        spatial_kernel_sizes=7,
    )
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    warmup, length = model.warmup_frames, 40
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        starts = torch.randint(0, movie.shape[1] - warmup - length, (16,), generator=generator).tolist()
        x = torch.stack([movie[:, a : a + warmup + length] for a in starts])
        y = torch.stack([responses[:, a + warmup : a + warmup + length].T for a in starts])
        loss = om.losses.poisson_loss(model(x, SESSION), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval()


def peak_frame_correlations(meis: np.ndarray, truth: dict[str, np.ndarray]) -> np.ndarray:
    """Per neuron: correlation of the MEI's (C, H, W) map at its highest-energy frame with
    polarity x colour weight x spatial RF."""
    correlations = []
    for n, mei in enumerate(meis):
        peak = int((mei**2).sum(axis=(0, 2, 3)).argmax())
        true = truth["polarity"][n] * truth["colour_weights"][n][:, None, None] * truth["spatial_rf"][n][None]
        correlations.append(np.corrcoef(mei[:, peak].ravel(), true.ravel())[0, 1])
    return np.asarray(correlations)


@pytest.mark.slow
def test_meis_of_a_fitted_model_match_the_true_receptive_fields(tmp_path) -> None:
    folder = write_retina_dataset(
        tmp_path / "retina",
        seed=0,
        num_sessions=1,
        neurons_per_session=NEURONS,
        height=SIZE,
        width=SIZE,
        train_frames=3000,
        test_frames=60,
        test_trials=2,
    )
    dataset = load_hdf5_dataset(folder, test_names=["natural_test"])
    session = dataset.sessions[SESSION]
    movie = torch.from_numpy(session.train_movie.read_all())
    responses = torch.from_numpy(session.train_responses)
    model = _fit(movie, responses, dataset.mean_activity()[SESSION], steps=100)

    frames = model.warmup_frames + 1  # one output frame: the MEI is the filter that drives it
    objective = insilico.ResponseObjective(model, SESSION, range(NEURONS), window=(0, 1))
    start = insilico.random_start((2, frames, SIZE, SIZE), seeds=range(NEURONS), std=0.01)
    result = insilico.optimise_stimuli(
        objective,
        model,
        start,
        constraints=[insilico.L2Norm(5.0), insilico.ValueRange(-3.0, 3.0)],
        stopper=insilico.FixedIterations(60),
    )
    correlations = peak_frame_correlations(
        result.stimuli.numpy(), read_ground_truth(folder).sessions[SESSION]
    )
    assert bool((result.values > result.start_values).all())
    assert np.mean(correlations >= 0.8) >= 0.8, np.round(correlations, 2)
    # and an untrained model's MEIs do not: the check can fail
    untrained = _fit(movie, responses, dataset.mean_activity()[SESSION], steps=0)
    objective = insilico.ResponseObjective(untrained, SESSION, range(NEURONS), window=(0, 1))
    chance = insilico.optimise_stimuli(
        objective, untrained, start, constraints=[insilico.L2Norm(5.0)], stopper=insilico.FixedIterations(60)
    )
    truth = read_ground_truth(folder).sessions[SESSION]
    assert np.mean(peak_frame_correlations(chance.stimuli.numpy(), truth) >= 0.8) < 0.5
