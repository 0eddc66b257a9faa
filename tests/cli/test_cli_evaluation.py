"""Test-set prediction after training: sessions that saw the same movie share one pass of the core."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import openretina_models as om
import torch
from openretina_cli.evaluation.predict import predict_tests
from openretina_data import Movie

IN_SHAPE = (2, 6, 5)
NEURONS = {"s1": 3, "s2": 4, "s3": 2}


def _session(movie: Movie) -> SimpleNamespace:
    return SimpleNamespace(tests={"noise": SimpleNamespace(movie=movie)})


def test_sessions_shown_the_same_movie_share_the_core_and_keep_their_readouts() -> None:
    torch.manual_seed(0)
    model = om.create_model(
        "core_readout", in_shape=IN_SHAPE, n_neurons=NEURONS, hidden_channels=[4], temporal_kernel_sizes=[3]
    )
    rng = np.random.default_rng(0)
    shared = rng.normal(size=(2, 30, 6, 5)).astype(np.float32)
    sessions = {
        "s1": _session(Movie(shared)),
        "s2": _session(Movie(shared)),  # the same frames: one pass of the core for s1 and s2
        "s3": _session(Movie(shared, mirror=True)),  # another view of them: a pass of its own
    }
    core_calls: list[int] = []
    model.core.register_forward_hook(lambda *_: core_calls.append(1))

    predictions = predict_tests(model, sessions)

    assert len(core_calls) == 2  # each movie fits in one chunk
    model.eval()
    with torch.no_grad():
        for name, session in sessions.items():
            movie = torch.from_numpy(session.tests["noise"].movie.read_all())[None]
            expected = model(movie, name)[0].numpy()
            np.testing.assert_allclose(predictions[(name, "noise")], expected, rtol=1e-5, atol=1e-6)
            assert predictions[(name, "noise")].shape == (30 - model.warmup_frames, NEURONS[name])
