"""Score the trained model on validation and every test stimulus, per session and overall.

Test movies are run through the model in time chunks that overlap by the model's warm-up, so the
result equals one pass over the whole movie without holding its activations at once; sessions
that saw the same movie share one pass of the core. Only the validation clips and the test movies
are touched (never the training split), which keeps this phase shorter than one training epoch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from openretina_models import metrics, predict_sessions
from torch import nn

from openretina_cli.training.scoring import SplitScorer, nanmean

# Frames of model output per forward pass when predicting a whole test movie.
OUTPUT_FRAMES_PER_PASS = 2048


def predict_tests(model: nn.Module, sessions: Mapping[str, Any]) -> dict[tuple[str, str], np.ndarray]:
    """Model output (T - warmup, N) for every (session, test stimulus), on the model's device.

    Sessions that were shown the same movie (the same frames, see `Movie.shows_same_frames_as`)
    share one pass of the core; one movie is read at a time.
    """
    predictions: dict[tuple[str, str], np.ndarray] = {}
    chunk_frames = int(model.warmup_frames) + OUTPUT_FRAMES_PER_PASS
    for stimulus, groups in _same_movie_groups(sessions).items():
        for movie, names in groups:
            outputs = predict_sessions(model, movie.read_all(), names, chunk_frames=chunk_frames)
            predictions.update({(name, stimulus): output for name, output in outputs.items()})
    return predictions


def _same_movie_groups(sessions: Mapping[str, Any]) -> dict[str, list[tuple[Any, list[str]]]]:
    """Per test stimulus, the sessions grouped by the movie they were shown."""
    groups: dict[str, list[tuple[Any, list[str]]]] = {}
    for name, session in sessions.items():
        for stimulus, test in session.tests.items():
            for movie, names in groups.setdefault(stimulus, []):
                if movie.shows_same_frames_as(test.movie):
                    names.append(name)
                    break
            else:
                groups[stimulus].append((test.movie, [name]))
    return groups


@torch.no_grad()
def score_validation(
    model: nn.Module, batches: Iterable[Any], device: torch.device, n_neurons: Mapping[str, int]
) -> dict[str, float]:
    scorer = SplitScorer(n_neurons)
    for batch in batches:
        prediction = model(batch.stimulus.to(device), batch.session)
        target = batch.responses.to(device)[:, -prediction.shape[1] :]
        scorer.update(batch.session, prediction, target)
    return scorer.summary("val")


@torch.no_grad()
def score_tests(model: nn.Module, sessions: Mapping[str, Any], truth: Any = None) -> dict[str, float]:
    """``test/<stimulus>/{correlation,trial_correlation,oracle,fraction_oracle,feve}``, per session
    and overall. ``fraction_oracle`` divides the single-trial correlation by the oracle (both
    against single trials), so it is at most about 1.

    With the ground truth of a simulated retina (``truth``), also ``ceiling_correlation`` (true rate
    vs. observed responses: the best any model can reach), ``truth_correlation`` (model vs. true
    rate) and ``fraction_ceiling`` (the model's correlation as a fraction of the ceiling).
    """
    scores: dict[str, float] = {}
    by_stimulus: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    predictions = predict_tests(model, sessions)
    for session_name, session in sessions.items():
        for stimulus, test in session.tests.items():
            prediction = predictions[(session_name, stimulus)]  # (T', N)
            skip = test.responses.shape[1] - prediction.shape[0]
            target = test.responses[:, skip:]
            values = {"correlation": metrics.correlation(prediction.T, target)}
            if test.trials is not None and test.trials.shape[0] >= 2:
                trials = test.trials[:, :, skip:]
                oracle = metrics.oracle_correlation(trials)
                values["oracle"] = oracle
                values["trial_correlation"] = metrics.trial_correlation(prediction.T, trials)
                values["fraction_oracle"] = metrics.fraction_of_oracle(values["trial_correlation"], oracle)
                values["feve"] = metrics.feve(prediction.T, trials)
            if truth is not None and stimulus == truth.test_stimulus:
                rates = true_rates(truth, session_name, session, stimulus)[:, skip:]
                values["ceiling_correlation"] = metrics.correlation(rates, target)
                values["truth_correlation"] = metrics.correlation(prediction.T, rates)
            by_stimulus.setdefault(stimulus, {})[session_name] = values
    all_correlations = []
    for stimulus, per_session in sorted(by_stimulus.items()):
        kinds = sorted({kind for values in per_session.values() for kind in values})
        for kind in kinds:
            pooled = [values[kind] for values in per_session.values() if kind in values]
            scores[f"test/{stimulus}/{kind}"] = nanmean(np.concatenate(pooled))
            for session_name, values in sorted(per_session.items()):
                if kind in values:
                    scores[f"test/{stimulus}/{session_name}/{kind}"] = nanmean(values[kind])
        all_correlations.extend(values["correlation"] for values in per_session.values())
        ceiling_key = f"test/{stimulus}/ceiling_correlation"
        if ceiling_key in scores and scores[ceiling_key] > 0:
            scores[f"test/{stimulus}/fraction_ceiling"] = (
                scores[f"test/{stimulus}/correlation"] / scores[ceiling_key]
            )
    if all_correlations:
        scores["test/correlation"] = nanmean(np.concatenate(all_correlations))
        fractions = [v for k, v in scores.items() if k.count("/") == 2 and k.endswith("/fraction_oracle")]
        if fractions:
            scores["test/fraction_oracle"] = float(np.nanmean(fractions))
    return scores


def true_rates(truth: Any, session_name: str, session: Any, stimulus: str) -> np.ndarray:
    """The simulation's true rates (N, T) of the neurons the quality checks kept, in their order."""
    rates = np.asarray(truth.sessions[session_name][f"rates_{stimulus}"], dtype=np.float64)
    ids = np.asarray(session.neuron_metadata["neuron_ids"])
    if len(ids) == rates.shape[0]:
        return rates
    return rates[ids.astype(np.int64)]


def load_ground_truth(data_dir: Any) -> Any:
    """The ground truth of a simulated retina in ``data_dir``, or None for any other dataset."""
    from pathlib import Path

    if data_dir is None or not (Path(str(data_dir)) / "ground_truth").is_dir():
        return None
    from openretina_data import read_ground_truth

    return read_ground_truth(str(data_dir))
