"""CC_max and CC_norm (Schoppe et al. 2016): unbiased by the number of trials, unlike the
fraction of the leave-one-out oracle, which a noise-free model exceeds."""

from __future__ import annotations

import numpy as np
import pytest
from openretina_models import metrics


def _trials(repeats: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(40, 500))
    return truth, truth[None] + rng.normal(size=(repeats, 40, 500)) * 1.5


@pytest.mark.parametrize("repeats", [2, 4, 16])
def test_the_true_response_scores_one_whatever_the_number_of_trials(repeats: int) -> None:
    truth, trials = _trials(repeats)
    assert np.nanmean(metrics.normalised_correlation(truth, trials)) == pytest.approx(1.0, abs=0.03)
    mean = trials.mean(axis=0)
    assert np.nanmean(metrics.max_correlation(trials)) == pytest.approx(
        np.nanmean(metrics.correlation(truth, mean)), abs=0.03
    )


def test_the_oracle_fraction_of_the_true_response_exceeds_one_with_few_trials() -> None:
    truth, trials = _trials(2)
    fraction = metrics.fraction_of_oracle(
        metrics.trial_correlation(truth, trials), metrics.oracle_correlation(trials)
    )
    assert np.nanmean(fraction) > 1.2  # why the report headlines CC_norm and FEVE instead


def test_a_worse_model_scores_lower_and_noise_only_neurons_are_undefined() -> None:
    truth, trials = _trials(4)
    rng = np.random.default_rng(1)
    worse = truth + rng.normal(size=truth.shape) * 2.0
    assert np.nanmean(metrics.normalised_correlation(worse, trials)) < 0.6
    silent = np.zeros((3, 2, 100))
    assert np.isnan(metrics.normalised_correlation(np.ones((2, 100)), silent)).all()
    assert np.isnan(metrics.max_correlation(silent)).all()


def test_neuron_scores_include_both() -> None:
    truth, trials = _trials(3)
    scores = metrics.neuron_scores(truth, trials.mean(axis=0), trials)
    assert {"max_correlation", "normalised_correlation"} <= set(scores)
