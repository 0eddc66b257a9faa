"""A trained model's responses to every test movie, and a simulated retina's true rates.

Test movies are run through the model in time chunks that overlap by the model's warm-up, so the
result equals one pass over the whole movie without holding its activations at once; sessions
that saw the same movie share one pass of the core.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from openretina_models import predict_sessions
from torch import nn

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
