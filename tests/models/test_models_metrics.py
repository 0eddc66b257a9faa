"""Whole-split correlation, oracle and FEVE against plain numpy references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from openretina_models import metrics
from openretina_models.metrics import CorrelationAccumulator


def numpy_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-column Pearson correlation of (samples, neurons) arrays."""
    return np.array([np.corrcoef(a[:, i], b[:, i])[0, 1] for i in range(a.shape[1])])


def test_accumulator_equals_correlation_over_the_whole_split() -> None:
    rng = np.random.default_rng(0)
    pred = rng.normal(size=(10, 30, 4))  # (batch, time, neurons)
    target = pred * np.array([1, 0.5, -1, 0.1]) + rng.normal(size=pred.shape)
    acc = CorrelationAccumulator()
    for i in range(0, 10, 3):  # uneven batches
        acc.update(torch.from_numpy(pred[i : i + 3]).float(), torch.from_numpy(target[i : i + 3]).float())
    expected = numpy_corr(pred.reshape(-1, 4), target.reshape(-1, 4))
    np.testing.assert_allclose(acc.compute().numpy(), expected, rtol=1e-5)
    per_batch_mean = np.mean(
        [
            numpy_corr(pred[i : i + 3].reshape(-1, 4), target[i : i + 3].reshape(-1, 4))
            for i in range(0, 10, 3)
        ],
        axis=0,
    )
    assert not np.allclose(per_batch_mean, expected)  # what 1.x reported is a different number


def test_merge_and_state_sum_equal_one_pass() -> None:
    rng = np.random.default_rng(1)
    pred, target = (torch.from_numpy(rng.normal(size=(6, 20, 3))) for _ in range(2))
    whole, left, right = CorrelationAccumulator(), CorrelationAccumulator(3), CorrelationAccumulator(3)
    whole.update(pred, target)
    left.update(pred[:2], target[:2])
    right.update(pred[2:], target[2:])
    summed = CorrelationAccumulator(3)
    summed.state = left.state + right.state  # what torch.distributed.all_reduce(SUM) does
    torch.testing.assert_close(left.merge(right).compute(), whole.compute())
    torch.testing.assert_close(summed.compute(), whole.compute())


def test_silent_and_constant_neurons_are_nan_and_counted() -> None:
    rng = np.random.default_rng(2)
    pred = torch.from_numpy(rng.normal(size=(50, 4)))
    target = pred.clone()
    target[:, 1] = 0.0  # silent neuron
    pred[:, 2] = 3.0  # constant prediction
    target[:, 3] = 1e4 + pred[:, 3]  # a large offset is still resolved in float64
    acc = CorrelationAccumulator()
    acc.update(pred, target)
    result = acc.compute()
    assert result[0] == pytest.approx(1.0)
    assert torch.isnan(result[1])
    assert torch.isnan(result[2])
    assert result[3] == pytest.approx(1.0, abs=1e-6)
    assert acc.n_undefined() == 2
    assert metrics.summarise(result)["n_undefined"] == 2


def test_accumulator_stable_for_float32_inputs_with_large_offsets() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200_000, 1)).astype(np.float32)
    acc = CorrelationAccumulator()
    for chunk in np.array_split(np.arange(len(x)), 50):
        acc.update(torch.from_numpy(x[chunk] + 1000), torch.from_numpy(2 * x[chunk] + 500))
    assert acc.compute()[0].item() == pytest.approx(1.0, abs=1e-6)


def test_mismatched_shapes_and_empty_accumulator_raise() -> None:
    acc = CorrelationAccumulator()
    with pytest.raises(ValueError, match="update"):
        acc.compute()
    with pytest.raises(ValueError, match="differ"):
        acc.update(torch.zeros(3, 2), torch.zeros(3, 3))


def trials_fixture(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(3, 100)) * np.array([[2.0], [1.0], [0.5]])
    trials = signal[None] + rng.normal(size=(5, 3, 100))
    return signal, trials


def test_oracle_matches_leave_one_out_reference() -> None:
    _, trials = trials_fixture()
    r = trials.shape[0]
    expected = np.mean(
        [
            [np.corrcoef(trials[i, n], np.delete(trials[:, n], i, axis=0).mean(0))[0, 1] for n in range(3)]
            for i in range(r)
        ],
        axis=0,
    )
    np.testing.assert_allclose(metrics.oracle_correlation(trials), expected, rtol=1e-10)


def test_feve_reference_values() -> None:
    signal, trials = trials_fixture()
    noise = trials.var(axis=0, ddof=1).mean(axis=-1)
    total = np.array([trials[:, n].reshape(-1).var(ddof=1) for n in range(3)])
    mse = ((trials - signal[None]) ** 2).mean(axis=(0, 2))
    expected = 1 - (mse - noise) / (total - noise)
    np.testing.assert_allclose(metrics.feve(signal, trials), expected, rtol=1e-10)
    # A prediction equal to the trial mean explains all explainable variance up to sampling noise.
    assert np.all(metrics.feve(trials.mean(0), trials) > 0.95)
    assert np.all(metrics.feve(np.zeros_like(signal), trials) < 0.1)


def test_silent_neuron_in_trials_is_nan_not_a_crash() -> None:
    signal, trials = trials_fixture()
    trials[:, 1] = 0.0
    assert np.isnan(metrics.oracle_correlation(trials)[1])
    assert np.isnan(metrics.feve(signal, trials)[1])
    assert np.isfinite(metrics.feve(signal, trials)[[0, 2]]).all()


def test_fraction_of_oracle() -> None:
    result = metrics.fraction_of_oracle([0.4, 0.3, 0.2, np.nan], [0.8, 0.0, np.nan, 0.5])
    np.testing.assert_allclose(result, [0.5, np.nan, np.nan, np.nan])


def test_trials_need_two_repeats() -> None:
    with pytest.raises(ValueError, match="at least 2 trials"):
        metrics.oracle_correlation(np.zeros((1, 3, 10)))


def test_trial_correlation_is_the_mean_single_trial_correlation() -> None:
    signal, trials = trials_fixture()
    expected = np.mean(
        [[np.corrcoef(signal[n], trials[i, n])[0, 1] for n in range(3)] for i in range(5)], axis=0
    )
    np.testing.assert_allclose(metrics.trial_correlation(signal, trials), expected, rtol=1e-10)
    # Against the trial mean the same prediction scores higher: that is why fraction_of_oracle
    # should use the single-trial correlation.
    assert np.all(metrics.correlation(signal, trials.mean(0)) > metrics.trial_correlation(signal, trials))


@settings(max_examples=25, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=1, max_value=39), max_size=6, unique=True),
    seed=st.integers(min_value=0, max_value=10_000),
)
def test_any_split_into_batches_gives_the_whole_split_correlation(cuts: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    pred = rng.normal(size=(40, 3))
    target = pred * rng.normal(size=3) + rng.normal(size=(40, 3))
    acc = CorrelationAccumulator()
    bounds = [0, *sorted(cuts), 40]
    for a, b in itertools.pairwise(bounds):
        acc.update(torch.from_numpy(pred[a:b]), torch.from_numpy(target[a:b]))
    np.testing.assert_allclose(acc.compute().numpy(), numpy_corr(pred, target), rtol=1e-9, atol=1e-12)


def _trials_and_prediction(seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    signal = rng.gamma(2.0, 1.0, size=(4, 60))  # (N, T)
    trials = signal[None] * np.array([1.0, 0.5, 2.0, 0.0])[None, :, None] + rng.normal(size=(5, 4, 60))
    prediction = np.abs(signal + 0.3 * rng.normal(size=signal.shape)) + 0.1
    return trials, prediction


def test_mse_and_poisson_loss_match_numpy() -> None:
    trials, prediction = _trials_and_prediction()
    target = trials.mean(axis=0)
    np.testing.assert_allclose(metrics.mse(prediction, target), ((prediction - target) ** 2).mean(axis=1))
    expected = (prediction - target * np.log(prediction + 1e-8)).mean(axis=1)
    np.testing.assert_allclose(metrics.poisson_loss(prediction, target), expected)


def test_jackknife_oracle_pools_trials_and_time_like_1x() -> None:
    trials, _ = _trials_and_prediction()
    r, n, _ = trials.shape
    expected = []
    for i in range(n):
        loo = np.stack([np.delete(trials[:, i], k, axis=0).mean(axis=0) for k in range(r)])
        expected.append(np.corrcoef(loo.reshape(-1), trials[:, i].reshape(-1))[0, 1])
    np.testing.assert_allclose(metrics.jackknife_oracle(trials), expected, rtol=1e-10)


def test_fev_is_the_explainable_over_total_variance_ratio() -> None:
    trials, _ = _trials_and_prediction()
    total = np.array([trials[:, i].reshape(-1).var(ddof=1) for i in range(4)])
    noise = trials.var(axis=0, ddof=1).mean(axis=1)
    expected = np.clip(total - noise, 0, None) / total
    np.testing.assert_allclose(metrics.explainable_variance_fraction(trials), expected, rtol=1e-10)
    assert metrics.explainable_variance_fraction(trials)[3] < 0.2  # the pure-noise neuron


def test_neuron_scores_has_every_metric_and_the_trial_spread() -> None:
    trials, prediction = _trials_and_prediction()
    scores = metrics.neuron_scores(prediction, trials.mean(axis=0), trials)
    assert set(scores) == {
        "correlation",
        "mse",
        "poisson_loss",
        "trial_correlation",
        "trial_correlation_std",
        "oracle",
        "jackknife_oracle",
        "fraction_oracle",
        "fev",
        "feve",
        "max_correlation",
        "normalised_correlation",
    }
    per_trial = np.array([numpy_corr(prediction.T, t.T) for t in trials])
    np.testing.assert_allclose(scores["trial_correlation"], per_trial.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(scores["trial_correlation_std"], per_trial.std(axis=0), rtol=1e-10)
    np.testing.assert_allclose(
        scores["correlation"], numpy_corr(prediction.T, trials.mean(axis=0).T), rtol=1e-10
    )
    assert set(metrics.neuron_scores(prediction, trials[0])) == {"correlation", "mse", "poisson_loss"}


def test_per_neuron_losses_of_an_all_nan_neuron_are_nan_without_a_warning() -> None:
    import warnings

    prediction = np.ones((2, 5))
    target = np.array([[1.0, 2, 3, 4, 5], [np.nan] * 5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(metrics.mse(prediction, target)[1])
        assert np.isnan(metrics.poisson_loss(prediction, target)[1])
    assert metrics.mse(prediction, target)[0] == pytest.approx(np.mean((np.arange(1, 6) - 1.0) ** 2))
