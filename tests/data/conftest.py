"""Fixtures for the openretina_data tests: tiny datasets written into tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_testkit import movie, responses, write_layout
from openretina_data.synthetic import write_tutorial_dataset


@pytest.fixture
def small_layout(tmp_path: Path) -> Path:
    """Two sessions sharing two training movies and a test movie; session b has repeated trials."""
    stimuli = {"train_a": movie(60, seed=1), "train_b": movie(40, seed=2), "test": movie(30, seed=3)}
    sessions = {
        "a": {
            "responses_train_a": responses(3, 60),
            "responses_train_b": responses(3, 40, seed=2),
            "responses_test": responses(3, 30, seed=3),
            "session_info/celltypes": np.array([1, 2, 3]),
        },
        "b": {
            "responses_train_a": responses(5, 60, seed=4),
            "responses_train_b": responses(5, 40, seed=5),
            "responses_test": np.stack([responses(5, 30, seed=s) for s in range(4)]),
        },
    }
    return write_layout(tmp_path / "data", sessions, stimuli)


@pytest.fixture(scope="session")
def tutorial_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tutorial layout at 1.x shapes but with short clips (clip_length=10: 700..730 frames)."""
    return write_tutorial_dataset(tmp_path_factory.mktemp("tutorial") / "data", clip_length=10, seed=3)
