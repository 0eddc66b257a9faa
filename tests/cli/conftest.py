"""Shared fixtures for the cli tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tutorial_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tutorial dataset, small: 3 colours, 8x6 pixels, 2 sessions, stimuli of 700-720 frames."""
    from openretina_data import write_tutorial_dataset

    directory = tmp_path_factory.mktemp("tutorial") / "data"
    write_tutorial_dataset(directory, num_stimuli=3, clip_length=10, height=8, width=6, seed=1)
    return directory
