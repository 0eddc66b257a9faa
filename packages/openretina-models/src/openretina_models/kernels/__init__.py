"""Optional accelerated kernels, each with a pure-PyTorch reference that always works.

Backend choice, per call, from the environment variable `OPENRETINA_KERNELS`:

- `auto` (default): the Triton kernel for CUDA tensors when `triton` imports, else the reference;
- `torch`: always the reference;
- `triton`: always the Triton kernel; fails loudly if Triton is missing or the tensors are not on a
  device it can run on (CPU tensors run only under `TRITON_INTERPRET=1`, which is for tests).

Triton is imported lazily on first use, so `import openretina_models` stays cheap.
"""

from __future__ import annotations

import functools
import os

import torch

from openretina_models.kernels.reference import readout_contraction_reference

__all__ = ["kernel_backend", "readout_contraction", "readout_contraction_reference", "triton_available"]

_ENV = "OPENRETINA_KERNELS"
_CHOICES = ("auto", "torch", "triton")


class KernelUnavailableError(RuntimeError):
    """An explicitly requested kernel backend cannot run here."""


@functools.cache
def triton_available() -> bool:
    """Whether `triton` imports (checked once)."""
    try:
        import triton  # noqa: F401
    except Exception:
        return False
    return True


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def kernel_backend(tensor: torch.Tensor) -> str:
    """`"triton"` or `"torch"`: the backend a kernel call on `tensor` will use."""
    choice = os.environ.get(_ENV, "auto").strip().lower() or "auto"
    if choice not in _CHOICES:
        raise ValueError(f"{_ENV}={choice!r} is not valid; use one of {', '.join(_CHOICES)}.")
    if choice == "torch":
        return "torch"
    runnable_device = tensor.is_cuda or (tensor.device.type == "cpu" and _interpreting())
    if choice == "auto":
        return "triton" if tensor.is_cuda and triton_available() else "torch"
    if not triton_available():
        raise KernelUnavailableError(
            f"{_ENV}=triton but triton cannot be imported; "
            "install it (pip install 'openretina-models[triton]') "
            f"or set {_ENV}=auto."
        )
    if not runnable_device:
        raise KernelUnavailableError(
            f"{_ENV}=triton but the tensor is on {tensor.device}; Triton kernels need a CUDA device "
            f"(or TRITON_INTERPRET=1 for CPU tests). Set {_ENV}=auto to fall back to PyTorch."
        )
    return "triton"


def readout_contraction(features: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """`(B, C, T, H, W) x (N, H, W) x (N, C) -> (B, T, N)`: the spatial readouts' hot path."""
    if kernel_backend(features) == "triton":
        from openretina_models.kernels.triton_readout import readout_contraction_triton

        return readout_contraction_triton(features, mask, weights)
    return readout_contraction_reference(features, mask, weights)
