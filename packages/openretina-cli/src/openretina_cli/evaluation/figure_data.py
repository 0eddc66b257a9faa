"""What the report's figures show, taken from the evaluation, the data and the model as plain
arrays, without matplotlib or torch.

A training run hands its figures to a process that has matplotlib loaded already
(`figure_zygote`), so the run itself never imports it (issue 24: its import costs time after
training and memory at the run's peak). The figures travel as these small, picklable pieces: the
scores without the traces, and only the traces a figure shows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from openretina_cli.evaluation.results import Evaluation, SessionResult, SplitResult

TRACE_FRAMES = 600  # predicted frames shown by the example traces


def channel_names(n: int, data_info: dict[str, Any] | None) -> list[str]:
    """The data's names of the `n` input channels (e.g. green, UV); "channel i" only when the data
    do not name them."""
    names = (data_info or {}).get("channel_names")
    if isinstance(names, list | tuple) and len(names) == n:
        return [str(name) for name in names]
    return [f"channel {i}" for i in range(n)]


def response_unit(data_info: dict[str, Any] | None, simulated: bool) -> str:
    """The y label of response traces: spike counts for the simulated retina, else the data's units."""
    if simulated:
        return "spikes per frame"
    if (data_info or {}).get("response_normalisation"):
        return "response (normalised)"
    return "response (data units)"


def labels_by_session(dataset: Any, key: str | None, sessions: Sequence[str]) -> dict[str, np.ndarray] | None:
    if key is None:
        return None
    return {name: np.asarray(dataset.sessions[name].neuron_metadata[key]) for name in sessions}


def splits_with_trials(evaluation: Evaluation) -> list[SplitResult]:
    """The test splits with repeated trials: those `figures.correlation_vs_max` draws."""
    return [
        s for s in evaluation.test_splits if any("max_correlation" in r.scores for r in s.sessions.values())
    ]


def scores_only(evaluation: Evaluation) -> Evaluation:
    """`evaluation` without its traces (kept: every score, the splits' and sessions' names, the
    number of trials, which the score figures label their axes with), a small fraction of its size."""
    splits = []
    for split in evaluation.splits:
        slim = SplitResult(split.name)
        for name, result in split.sessions.items():
            neurons = result.prediction.shape[0]
            trials = None if result.trials is None else np.empty((result.trials.shape[0], neurons, 0))
            slim.sessions[name] = SessionResult(
                dict(result.scores), np.empty((neurons, 0)), np.empty((neurons, 0)), trials
            )
        splits.append(slim)
    return Evaluation(splits, evaluation.warmup_frames)


@dataclass
class TracePick:
    """One neuron the example traces show: its first `TRACE_FRAMES` predicted frames."""

    which: str  # best, median, worst
    correlation: float  # over the whole stimulus
    session: str
    index: int  # the neuron's row in its session
    target: np.ndarray  # (frames,)
    prediction: np.ndarray  # (frames,)
    trials: np.ndarray | None  # (R, frames)


@dataclass
class TraceData:
    stimulus: str
    picks: list[TracePick]
    total_frames: int  # predicted frames of the whole stimulus


def trace_data(split: SplitResult) -> TraceData:
    """The best, median and worst neuron of a test stimulus by correlation, with the frames shown."""
    entries = [
        (float(value), name, index)
        for name, result in split.sessions.items()
        for index, value in enumerate(result.scores["correlation"])
        if not math.isnan(value)
    ]
    entries.sort(reverse=True)
    chosen = (
        [("best", entries[0]), ("median", entries[len(entries) // 2]), ("worst", entries[-1])]
        if entries
        else []
    )
    picks = []
    for which, (value, name, index) in chosen:
        result = split.sessions[name]
        shown = min(result.target.shape[1], TRACE_FRAMES)
        trials = None if result.trials is None else result.trials[:, index, :shown].copy()
        picks.append(
            TracePick(
                which,
                value,
                name,
                index,
                result.target[index, :shown].copy(),
                result.prediction[index, :shown].copy(),
                trials,
            )
        )
    total = next(iter(split.sessions.values())).target.shape[1]
    return TraceData(split.name, picks, total)


@dataclass
class ReadoutView:
    """What the readout figure needs of a model: its sessions with learned positions and the
    stimulus grid."""

    sessions: list[str]
    in_shape: tuple[int, int, int]  # channels, height, width


def readout_view(model: Any, labels: Mapping[str, np.ndarray] | None) -> ReadoutView:
    sessions = [
        name
        for name in model.n_neurons
        if hasattr(model.readout[name], "position") and (labels is None or name in labels)
    ]
    channels, height, width = (int(s) for s in model.in_shape)
    return ReadoutView(sessions, (channels, height, width))
