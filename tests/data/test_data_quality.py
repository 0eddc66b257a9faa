"""Quality checks: each rule, each action, and a report that hides nothing."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from data_testkit import in_memory_dataset
from openretina_data import DataError, Movie, QualityConfig, TestSet, run_quality_checks


def _dataset(neurons: int = 5, trials: np.ndarray | None = None):
    data = in_memory_dataset({"a": 100, "b": 100}, neurons=neurons)
    rng = np.random.default_rng(0)
    for session in data.sessions.values():
        session.train_responses[:] = rng.poisson(3.0, session.train_responses.shape)
        session.neuron_metadata["celltypes"] = np.arange(neurons) + 10
        test_trials = rng.poisson(3.0, (4, neurons, 30)).astype(np.float32) if trials is None else trials
        session.tests["t"] = TestSet(
            Movie(np.zeros((1, 30, 1, 1), np.float32)), test_trials.mean(0), test_trials
        )
    return data


def test_clean_data_passes_unchanged() -> None:
    data = _dataset()
    cleaned, report = run_quality_checks(data, QualityConfig())
    assert cleaned is data
    assert all(row.dropped == 0 for row in report.rows)
    assert {row.check for row in report.rows} >= {"non_finite", "constant", "length_mismatch"}


def test_nan_neuron_is_dropped_everywhere() -> None:
    data = _dataset()
    data.sessions["a"].train_responses[2, 7] = np.nan
    cleaned, report = run_quality_checks(data, QualityConfig())
    a = cleaned.sessions["a"]
    assert a.n_neurons == 4
    assert a.neuron_metadata["neuron_ids"].tolist() == [0, 1, 3, 4]
    assert a.neuron_metadata["celltypes"].tolist() == [10, 11, 13, 14]
    assert a.tests["t"].responses.shape == (4, 30)
    assert a.tests["t"].trials.shape == (4, 4, 30)
    assert cleaned.data_info.sessions["a"]["n_neurons"] == 4
    assert cleaned.sessions["b"].n_neurons == 5
    assert report.dropped_neurons == {"a": [2]}
    assert any("1 of 5 neurons dropped" in note for note in cleaned.notes)
    assert data.sessions["a"].n_neurons == 5  # the input is left alone


def test_nan_in_test_trials_counts_too() -> None:
    data = _dataset()
    data.sessions["b"].tests["t"].trials[1, 4, 3] = np.inf
    _, report = run_quality_checks(data)
    assert report.dropped_neurons == {"b": [4]}


def test_constant_and_silent_neurons() -> None:
    data = _dataset()
    data.sessions["a"].train_responses[0] = 0.0
    data.sessions["a"].train_responses[1] = 4.0
    _, report = run_quality_checks(data, QualityConfig())
    assert report.dropped_neurons == {"a": [0, 1]}


def test_minimum_mean_rate() -> None:
    data = _dataset()
    data.sessions["b"].train_responses[3] *= 0.01
    _, report = run_quality_checks(data, QualityConfig(min_mean_rate=0.5))
    assert report.dropped_neurons == {"b": [3]}
    row = next(r for r in report.rows if r.check == "min_mean_rate" and r.session == "b")
    assert row.dropped == 1
    assert "mean rate < 0.5" in row.reason


def test_reliability_across_trials() -> None:
    rng = np.random.default_rng(1)
    signal = rng.poisson(5.0, (1, 5, 30)).astype(np.float32) * 3
    trials = signal + rng.normal(0, 0.5, (6, 5, 30)).astype(np.float32)
    trials[:, 2] = rng.poisson(3.0, (6, 30))  # neuron 2 answers differently every trial
    data = _dataset(trials=trials)
    _, report = run_quality_checks(data, QualityConfig(min_reliability=0.5))
    assert report.dropped_neurons == {"a": [2], "b": [2]}


def test_reliability_without_trials_is_reported_as_not_done() -> None:
    data = in_memory_dataset({"a": 100}, neurons=2)
    data.sessions["a"].train_responses[:] = np.random.default_rng(0).poisson(3.0, (2, 100))
    _, report = run_quality_checks(data, QualityConfig(min_reliability=0.5))
    row = next(r for r in report.rows if r.check == "reliability")
    assert row.checked == 0
    assert row.reason == "no repeated test trials"


def test_length_mismatch_fails_or_drops_the_session() -> None:
    data = _dataset()
    data.sessions["a"].train_responses = data.sessions["a"].train_responses[:, :90]
    with pytest.raises(DataError, match="length_mismatch"):
        run_quality_checks(data)
    cleaned, report = run_quality_checks(data, QualityConfig(length_mismatch_action="drop_session"))
    assert list(cleaned.sessions) == ["b"]
    assert report.dropped_sessions == ["a"]
    assert list(cleaned.data_info.sessions) == ["b"]


def test_fail_and_drop_session_actions() -> None:
    data = _dataset()
    data.sessions["a"].train_responses[1, 0] = np.nan
    with pytest.raises(DataError, match=r"non_finite: 1 of 5 neurons fail"):
        run_quality_checks(data, QualityConfig(non_finite_action="fail"))
    cleaned, report = run_quality_checks(data, {"non_finite_action": "drop_session"})
    assert list(cleaned.sessions) == ["b"]
    assert report.dropped_sessions == ["a"]
    assert any("session a: dropped" in note for note in cleaned.notes)


def test_too_few_neurons_left_drops_the_session_and_nothing_left_fails() -> None:
    data = _dataset(neurons=2)
    data.sessions["a"].train_responses[0] = 0
    cleaned, _report = run_quality_checks(data, QualityConfig(min_neurons=2))
    assert list(cleaned.sessions) == ["b"]
    data.sessions["b"].train_responses[0] = 0
    with pytest.raises(DataError, match="dropped every session"):
        run_quality_checks(data, QualityConfig(min_neurons=2))


def test_config_validation() -> None:
    with pytest.raises(DataError, match="use one of"):
        QualityConfig(constant_action="ignore")
    with pytest.raises(DataError, match="unknown keys"):
        QualityConfig.from_dict({"min_rate": 1})
    with pytest.raises(DataError, match="whole session"):
        QualityConfig(length_mismatch_action="drop_neuron")
    assert QualityConfig.from_dict({"_target_": "x", "min_neurons": 3}).min_neurons == 3


def test_report_renders_as_dict_markdown_and_text() -> None:
    data = _dataset()
    data.sessions["a"].train_responses[2, 0] = np.nan
    _, report = run_quality_checks(data, QualityConfig(min_mean_rate=0.1))
    as_dict = json.loads(json.dumps(report.to_dict()))
    assert as_dict["rows"][0].keys() >= {"session", "check", "checked", "dropped", "reason"}
    markdown = report.to_markdown()
    assert markdown.startswith("| session | check | checked | dropped |")
    assert "| a | non_finite | 5 | 1 | drop_neuron | NaN or Inf in responses |" in markdown
    text = str(report)
    assert "non_finite" in text
    assert "NaN or Inf" in text


def test_disabled_checks_do_nothing() -> None:
    data = _dataset()
    data.sessions["a"].train_responses[2, 0] = np.nan
    cleaned, report = run_quality_checks(data, QualityConfig(enabled=False))
    assert cleaned is data
    assert report.rows == []


def test_dropped_neurons_leave_per_neuron_normalisation_in_step() -> None:
    data = _dataset(neurons=3)
    data.data_info = replace(
        data.data_info, response_normalisation={"a": {"mean": [1.0, 2.0, 3.0], "std": [0.5]}}
    )
    data.sessions["a"].train_responses[1, 0] = np.nan
    cleaned, _ = run_quality_checks(data)
    assert cleaned.data_info.response_normalisation == {"a": {"mean": [1.0, 3.0], "std": [0.5]}}
