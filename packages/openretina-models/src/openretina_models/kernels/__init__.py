"""Optional accelerated kernels, each with a pure-PyTorch reference that always works.

Backend choice, per call, from the environment variable `OPENRETINA_KERNELS`:

- `auto` (default): the Triton kernel for CUDA tensors when `triton` imports and the kernel passes a
  one-time self-check on that device (forward and backward against the reference), else the
  reference (with one warning if the self-check failed);
- `torch`: always the reference;
- `triton`: always the Triton kernel; fails loudly if Triton is missing or the tensors are not on a
  device it can run on (CPU tensors run only under `TRITON_INTERPRET=1`, which is for tests).

Triton is imported lazily on first use, so `import openretina_models` stays cheap.
"""

from __future__ import annotations

import functools
import os
import warnings

import torch

from openretina_models.errors import KernelUnavailableError
from openretina_models.kernels.reference import readout_contraction_reference

__all__ = [
    "KernelUnavailableError",
    "kernel_backend",
    "readout_contraction",
    "readout_contraction_reference",
    "self_check",
    "triton_available",
]

_ENV = "OPENRETINA_KERNELS"
_CHOICES = ("auto", "torch", "triton")


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
    if choice == "auto":
        if not (tensor.is_cuda and triton_available()):
            return "torch"
        problem = self_check(tensor.device)
        if problem is not None:
            _warn_once(
                f"The Triton readout kernel failed its self-check on {tensor.device} ({problem}); "
                f"using the PyTorch reference. Set {_ENV}=torch to silence this, or {_ENV}=triton to fail."
            )
            return "torch"
        return "triton"
    if not triton_available():
        raise KernelUnavailableError(
            f"{_ENV}=triton but triton cannot be imported; "
            "install it (pip install 'openretina-models[triton]') "
            f"or set {_ENV}=auto."
        )
    if not (tensor.is_cuda or (tensor.device.type == "cpu" and _interpreting())):
        raise KernelUnavailableError(
            f"{_ENV}=triton but the tensor is on {tensor.device}; Triton kernels need a CUDA device "
            f"(or TRITON_INTERPRET=1 for CPU tests). Set {_ENV}=auto to fall back to PyTorch."
        )
    if tensor.is_cuda:
        problem = self_check(tensor.device)
        if problem is not None:
            raise KernelUnavailableError(
                f"{_ENV}=triton but the Triton readout kernel failed its self-check on {tensor.device}: "
                f"{problem}. Set {_ENV}=auto or torch to use the PyTorch reference."
            )
    return "triton"


@functools.cache
def self_check(device: torch.device) -> str | None:
    """Run the Triton kernel once on `device` against the reference, forward and backward.

    Returns None if it compiles and agrees, else what went wrong. Done once per device, so a
    kernel that cannot compile or disagrees on an untested GPU never silently trains a model.
    """
    try:
        # Whatever context the first call comes from (no_grad, inference_mode, autocast), check in
        # plain float32 with gradients.
        with (
            torch.inference_mode(False),
            torch.enable_grad(),
            torch.autocast(device_type=device.type, enabled=False),
        ):
            return _compare_with_reference(device)
    except Exception as error:  # a compile or launch failure: report it, never crash training
        return f"{type(error).__name__}: {error}"


def _compare_with_reference(device: torch.device) -> str | None:
    from openretina_models.kernels.triton_readout import readout_contraction_triton

    g = torch.Generator(device="cpu").manual_seed(0)
    shapes = ((3, 4, 5, 6, 7), (9, 6, 7), (9, 4))  # features, mask, weights: odd sizes on purpose
    ours = [torch.randn(s, generator=g).to(device).requires_grad_(True) for s in shapes]
    theirs = [x.detach().clone().requires_grad_(True) for x in ours]
    out, expected = readout_contraction_triton(*ours), readout_contraction_reference(*theirs)
    grad = torch.randn(expected.shape, generator=g).to(device)
    out.backward(grad)
    expected.backward(grad)
    pairs = [("output", out, expected)] + [
        (f"{name} gradient", a.grad, b.grad)
        for name, a, b in zip(("features", "mask", "weights"), ours, theirs, strict=True)
    ]
    for name, a, b in pairs:
        # Loose enough for TF32 matmuls in either implementation, tight enough to catch bugs.
        if a is None or not torch.allclose(a, b, rtol=2e-2, atol=2e-2):
            return f"its {name} differs from the reference"
    return None


@functools.cache
def _warn_once(message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def readout_contraction(features: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """`(B, C, T, H, W) x (N, H, W) x (N, C) -> (B, T, N)`: the spatial readouts' hot path."""
    if kernel_backend(features) == "triton":
        from openretina_models.kernels.triton_readout import readout_contraction_triton

        return readout_contraction_triton(features, mask, weights)
    return readout_contraction_reference(features, mask, weights)
