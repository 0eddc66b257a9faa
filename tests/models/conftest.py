"""Fixtures for the openretina_models tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def device(device: str) -> torch.device:
    """The root `device` fixture (`OPENRETINA_TEST_DEVICE`, default cpu) as a `torch.device`."""
    return torch.device(device)
