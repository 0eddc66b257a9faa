"""One z-scoring of the stimulus for all sessions of a published dataset, applied per batch.

Frames keep their stored dtype; the mean and std go into ``Movie.offset``/``Movie.scale`` and
``DataInfo.stimulus_normalisation``. As in openretina 1.x, sessions whose own statistics differ by
more than ``MAX_STATS_DISAGREEMENT`` (raw units) cannot share one normalisation.
"""

from __future__ import annotations

import os

import numpy as np

from openretina_data.errors import DataError
from openretina_data.records import Movie, SessionData, TestSet

MAX_STATS_DISAGREEMENT = 1.0


def frame_moments(frames: np.ndarray, block: int = 256) -> tuple[float, float]:
    """Mean and std of all pixels, in float64 over blocks of frames (no float64 copy of them all)."""
    total = square = 0.0
    for start in range(0, len(frames), block):
        part = frames[start : start + block].astype(np.float64)
        total += float(part.sum())
        square += float(np.square(part, out=part).sum())
    mean = total / frames.size
    return mean, max(square / frames.size - mean * mean, 0.0) ** 0.5


def pooled_moments(
    moments: dict[str, tuple[float, float]], where: str | os.PathLike[str], key: str
) -> tuple[float, float]:
    """One mean/std for all sessions (the mean of theirs), which must agree (see module docstring)."""
    means = [m for m, _ in moments.values()]
    stds = [s for _, s in moments.values()]
    if max(means) - min(means) > MAX_STATS_DISAGREEMENT or max(stds) - min(stds) > MAX_STATS_DISAGREEMENT:
        detail = ", ".join(f"{name}: mean {m:.2f}, std {s:.2f}" for name, (m, s) in moments.items())
        raise DataError(
            where,
            key,
            f"the sessions' training stimuli differ too much to share one normalisation ({detail})",
            "load the sessions separately (data_io.sessions), or set data_io.normalize_stimuli=false",
        )
    std = float(np.mean(stds))
    if std == 0.0:
        raise DataError(where, key, "every training frame is one constant value", "use the published files")
    return float(np.mean(means)), std


def normalised(session: SessionData, mean: float, std: float) -> SessionData:
    """The session with every movie z-scored by ``mean``/``std`` (applied per batch)."""

    def movie(m: Movie) -> Movie:
        return Movie(frames=m.frames, index=m.index, mirror=m.mirror, offset=mean, scale=std)

    tests = {key: TestSet(movie(t.movie), t.responses, t.trials) for key, t in session.tests.items()}
    return SessionData(
        session.name,
        movie(session.train_movie),
        session.train_responses,
        tests,
        session.neuron_metadata,
        session.val_clip_indices,
    )
