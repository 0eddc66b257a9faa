"""Per-neuron evaluation of a trained model on the validation clips and every test stimulus.

One pass computes, per split and session, every metric of `openretina_models.metrics.neuron_scores`
and keeps the aligned predictions and recordings the report draws. The scores a training run
writes to ``results.json`` are means of these per-neuron values (`run_scores`), so ``openretina
eval`` and training report the same numbers by construction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from openretina_models import metrics
from torch import nn

from openretina_cli.evaluation.predict import predict_tests, true_rates
from openretina_cli.evaluation.results import (
    TEST,
    VALIDATION,
    Evaluation,
    SessionResult,
    SplitResult,
)


def nanmean(values: np.ndarray) -> float:
    """Mean over defined (non-NaN) values; NaN when none is defined (never a warning)."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else float("nan")


# Scores that go into results.json per test stimulus (the per-neuron table has every metric).
RUN_SCORE_KINDS = (
    "correlation",
    "trial_correlation",
    "oracle",
    "fraction_oracle",
    "feve",
    "ceiling_correlation",
    "truth_correlation",
    "baseline_correlation",  # the linear-nonlinear baseline (evaluation/baseline.py), when fitted
)


def split_keys(stimuli: Iterable[str]) -> list[str]:
    """Every split key a dataset offers: ``val`` and ``test/<stimulus>`` per test stimulus."""
    return [VALIDATION, *(f"{TEST}/{name}" for name in sorted(stimuli))]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Any,
    validation_batches: Iterable[Any] | None,
    device: torch.device | str = "cpu",
    truth: Any = None,
    test_stimuli: Sequence[str] | None = None,
) -> Evaluation:
    """Score ``model`` per neuron on the validation batches (None: skip) and the test stimuli
    (None: all of them; an empty list: none)."""
    splits: list[SplitResult] = []
    if validation_batches is not None:
        splits.append(_validation(model, validation_batches, torch.device(device)))
    sessions = dataset.sessions
    stimuli = sorted({name for session in sessions.values() for name in session.tests})
    wanted = stimuli if test_stimuli is None else [name for name in stimuli if name in set(test_stimuli)]
    if wanted:
        splits.extend(_tests(model, sessions, wanted, truth))
    return Evaluation(splits, int(model.warmup_frames), truth)


def _validation(model: nn.Module, batches: Iterable[Any], device: torch.device) -> SplitResult:
    predictions: dict[str, list[np.ndarray]] = {}
    targets: dict[str, list[np.ndarray]] = {}
    for batch in batches:
        prediction = model(batch.stimulus.to(device), batch.session)
        target = batch.responses[:, -prediction.shape[1] :]
        n = prediction.shape[-1]
        predictions.setdefault(batch.session, []).append(prediction.float().cpu().numpy().reshape(-1, n))
        targets.setdefault(batch.session, []).append(target.float().cpu().numpy().reshape(-1, n))
    split = SplitResult(VALIDATION)
    for session in sorted(predictions):
        prediction = np.concatenate(predictions[session]).T
        target = np.concatenate(targets[session]).T
        split.sessions[session] = SessionResult(metrics.neuron_scores(prediction, target), prediction, target)
    return split


def _tests(
    model: nn.Module, sessions: Mapping[str, Any], stimuli: list[str], truth: Any
) -> list[SplitResult]:
    chosen = {
        name: _with_tests(session, stimuli)
        for name, session in sessions.items()
        if set(session.tests) & set(stimuli)
    }
    predictions = predict_tests(model, chosen)
    results = {stimulus: SplitResult(stimulus) for stimulus in stimuli}
    for (session_name, stimulus), prediction in sorted(predictions.items()):
        test = sessions[session_name].tests[stimulus]
        skip = test.responses.shape[1] - prediction.shape[0]
        target = np.asarray(test.responses[:, skip:], dtype=np.float64)
        trials = None
        if test.trials is not None and test.trials.shape[0] >= 2:
            trials = np.asarray(test.trials[:, :, skip:], dtype=np.float64)
        scores = metrics.neuron_scores(prediction.T, target, trials)
        if truth is not None and stimulus == truth.test_stimulus:
            rates = true_rates(truth, session_name, sessions[session_name], stimulus)[:, skip:]
            scores["ceiling_correlation"] = metrics.correlation(rates, target)
            scores["truth_correlation"] = metrics.correlation(prediction.T, rates)
        results[stimulus].sessions[session_name] = SessionResult(scores, prediction.T, target, trials)
    return [results[stimulus] for stimulus in stimuli if results[stimulus].sessions]


class _SessionView:
    """A session seen with only some of its test stimuli (what `predict_tests` iterates)."""

    def __init__(self, session: Any, stimuli: list[str]) -> None:
        self.tests = {name: test for name, test in session.tests.items() if name in stimuli}


def _with_tests(session: Any, stimuli: list[str]) -> Any:
    return session if set(session.tests) <= set(stimuli) else _SessionView(session, stimuli)


def run_scores(evaluation: Evaluation) -> dict[str, float]:
    """The scores a run reports (``results.json``): means over neurons, per split and session.

    ``val/correlation``, ``val/<session>/correlation``; per test stimulus
    ``test/<stimulus>/<kind>`` and ``test/<stimulus>/<session>/<kind>`` for the kinds in
    `RUN_SCORE_KINDS`; ``test/correlation`` over every (neuron, test stimulus) pair;
    ``test/fraction_oracle`` (mean over stimuli) and ``test/<stimulus>/fraction_ceiling``.
    """
    scores: dict[str, float] = {}
    validation = evaluation.split(VALIDATION)
    if validation is not None and validation.sessions:
        pooled = np.concatenate([r.scores["correlation"] for r in validation.sessions.values()])
        scores["val/correlation"] = nanmean(pooled)
        for session, result in validation.sessions.items():
            scores[f"val/{session}/correlation"] = nanmean(result.scores["correlation"])
        baseline = [
            r.scores["baseline_correlation"]
            for r in validation.sessions.values()
            if "baseline_correlation" in r.scores
        ]
        if baseline:
            scores["val/baseline_correlation"] = nanmean(np.concatenate(baseline))
    all_correlations: list[np.ndarray] = []
    all_baseline: list[np.ndarray] = []
    for split in evaluation.test_splits:
        kinds = [k for k in RUN_SCORE_KINDS if any(k in r.scores for r in split.sessions.values())]
        for kind in kinds:
            pooled_kind = [r.scores[kind] for r in split.sessions.values() if kind in r.scores]
            scores[f"{split.key}/{kind}"] = nanmean(np.concatenate(pooled_kind))
            for session, result in sorted(split.sessions.items()):
                if kind in result.scores:
                    scores[f"{split.key}/{session}/{kind}"] = nanmean(result.scores[kind])
        all_correlations.extend(r.scores["correlation"] for r in split.sessions.values())
        all_baseline.extend(
            r.scores[k] for r in split.sessions.values() for k in ["baseline_correlation"] if k in r.scores
        )
        ceiling = scores.get(f"{split.key}/ceiling_correlation")
        if ceiling is not None and ceiling > 0:
            scores[f"{split.key}/fraction_ceiling"] = scores[f"{split.key}/correlation"] / ceiling
    if all_correlations:
        scores["test/correlation"] = nanmean(np.concatenate(all_correlations))
        fractions = [v for k, v in scores.items() if k.count("/") == 2 and k.endswith("/fraction_oracle")]
        if fractions:
            scores["test/fraction_oracle"] = nanmean(np.asarray(fractions))
    if all_baseline:
        scores["test/baseline_correlation"] = nanmean(np.concatenate(all_baseline))
    return scores
