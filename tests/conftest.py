"""Test-wide settings: which device tests run on, and skipping CUDA tests where there is no GPU.

The same tests run on CPU machines and on the GPU runner; ``OPENRETINA_TEST_DEVICE=cuda`` moves
them to the GPU. torch is imported only when a test needs it, so the data package's tests also run
in an environment without torch.
"""

from __future__ import annotations

import os
import re

import pytest

DEVICE_VARIABLE = "OPENRETINA_TEST_DEVICE"
DEVICE_PATTERN = re.compile(r"cpu|cuda(:\d+)?|mps")


def requested_device() -> str:
    """The device named by ``OPENRETINA_TEST_DEVICE`` (default ``cpu``), checked for typos."""
    value = os.environ.get(DEVICE_VARIABLE, "cpu").strip() or "cpu"
    if DEVICE_PATTERN.fullmatch(value) is None:
        raise pytest.UsageError(
            f"{DEVICE_VARIABLE}={value!r} is not a device; use cpu, cuda, cuda:<index> or mps"
        )
    return value


def pytest_configure(config: pytest.Config) -> None:
    requested_device()  # a typo in the variable stops the run before any test, not in every test


@pytest.fixture(scope="session")
def device() -> str:
    """The torch device string tests should put their tensors and modules on."""
    name = requested_device()
    if name.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            pytest.fail(f"{DEVICE_VARIABLE}={name} but torch.cuda.is_available() is False on this machine")
    return name


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``cuda``-marked tests without a GPU, importing torch only if such tests were collected."""
    cuda_items = [item for item in items if item.get_closest_marker("cuda") is not None]
    if not cuda_items:
        return
    try:
        import torch
    except ImportError:
        reason = "needs a CUDA device (torch is not installed)"
    else:
        if torch.cuda.is_available():
            return
        reason = "needs a CUDA device (torch.cuda.is_available() is False)"
    skip = pytest.mark.skip(reason=reason)
    for item in cuda_items:
        item.add_marker(skip)
