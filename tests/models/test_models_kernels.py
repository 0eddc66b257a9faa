"""Triton readout kernel vs the PyTorch reference, forward and backward; backend dispatch."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from openretina_models import kernels
from openretina_models.kernels import readout_contraction_reference

SHAPES = [  # (B, C, T, H, W, N): odd sizes exercise every block mask
    (2, 3, 5, 4, 3, 7),
    (1, 4, 70, 6, 5, 20),
    (3, 2, 9, 9, 8, 33),
    (2, 5, 4, 1, 17, 3),
]


def _interpreter_unavailable_in_process() -> bool:
    """True when triton was imported (e.g. by lightning) before TRITON_INTERPRET could be set."""
    if torch.cuda.is_available() or "triton" not in sys.modules:
        return False
    import triton

    return not triton.knobs.runtime.interpret


@pytest.fixture(scope="module")
def triton_impl():
    """The Triton module: compiled on a GPU, else under the interpreter (set before triton imports)."""
    if _interpreter_unavailable_in_process():
        pytest.skip(
            "triton was imported without TRITON_INTERPRET; test_kernels_in_a_fresh_process runs these"
        )
    previous = os.environ.get("TRITON_INTERPRET")
    interpret = not torch.cuda.is_available()
    if interpret:
        os.environ["TRITON_INTERPRET"] = "1"
    try:
        pytest.importorskip("triton")
        yield importlib.import_module("openretina_models.kernels.triton_readout")
    finally:
        if interpret:
            if previous is None:
                os.environ.pop("TRITON_INTERPRET", None)
            else:
                os.environ["TRITON_INTERPRET"] = previous


@pytest.mark.slow
@pytest.mark.triton
@pytest.mark.skipif(not _interpreter_unavailable_in_process(), reason="the kernel tests run in this process")
def test_kernels_in_a_fresh_process() -> None:
    """Run this file's Triton tests where the interpreter can still be switched on."""
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    command = [sys.executable, "-m", "pytest", __file__, "-m", "triton", "-q", "-p", "no:randomly"]
    command += ["-p", "no:xdist"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def inputs(shape: tuple[int, ...], device: torch.device, dtype: torch.dtype = torch.float32, seed: int = 0):
    b, c, t, h, w, n = shape
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(b, c, t, h, w, generator=g).to(device, dtype)
    mask = torch.softmax(torch.randn(n, h * w, generator=g), dim=1).view(n, h, w).to(device, dtype)
    weights = torch.randn(n, c, generator=g).to(device, dtype)
    return [x.requires_grad_(True) for x in (features, mask, weights)]


def compare(fn, shape: tuple[int, ...], device: torch.device, dtype: torch.dtype, tol: float) -> None:
    """Kernel in `dtype` vs the reference in float32 on the same (rounded) inputs, values and gradients."""
    ours = inputs(shape, device, dtype)
    ref = [x.detach().float().requires_grad_(True) for x in ours]
    out, expected = fn(*ours), readout_contraction_reference(*ref)
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), expected, rtol=tol, atol=tol)
    grad = torch.randn_like(out)
    out.backward(grad)
    expected.backward(grad.float())
    for name, a, b in zip(("features", "mask", "weights"), ours, ref, strict=True):
        assert a.grad.dtype == dtype, name
        message = lambda m, name=name: f"{name}: {m}"  # noqa: E731
        torch.testing.assert_close(a.grad.float(), b.grad, rtol=tol, atol=tol, msg=message)


@pytest.mark.triton
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_triton_matches_reference_on_cpu_interpreter(triton_impl, shape: tuple[int, ...]) -> None:
    if torch.cuda.is_available():
        pytest.skip("the CUDA test covers this on a GPU machine")
    compare(triton_impl.readout_contraction_triton, shape, torch.device("cpu"), torch.float32, 1e-4)


@pytest.mark.triton
def test_triton_reads_non_contiguous_features(triton_impl) -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    base = torch.randn(2, 6, 3, 5, 4, device=device)[:, ::2]  # strided channel axis
    mask = torch.rand(4, 5, 4, device=device)
    weights = torch.randn(4, 3, device=device)
    torch.testing.assert_close(
        triton_impl.readout_contraction_triton(base, mask, weights),
        readout_contraction_reference(base, mask, weights),
        rtol=1e-4,
        atol=1e-4,
    )


@pytest.mark.cuda
@pytest.mark.triton
@pytest.mark.parametrize("shape", [*SHAPES, (64, 16, 50, 18, 16, 40)], ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_triton_matches_reference_on_cuda(triton_impl, shape: tuple[int, ...], dtype: torch.dtype) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    torch.backends.cuda.matmul.allow_tf32 = False
    tol = 1e-4 if dtype == torch.float32 else 2e-2
    compare(triton_impl.readout_contraction_triton, shape, torch.device("cuda"), dtype, tol)


def test_auto_uses_reference_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENRETINA_KERNELS", "auto")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert kernels.kernel_backend(torch.zeros(1)) == "torch"


def test_explicit_triton_fails_loudly_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENRETINA_KERNELS", "triton")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(kernels.KernelUnavailableError, match="OPENRETINA_KERNELS=auto"):
        kernels.readout_contraction(*inputs(SHAPES[0], torch.device("cpu")))


def test_explicit_triton_without_triton_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENRETINA_KERNELS", "triton")
    monkeypatch.setattr(kernels, "triton_available", lambda: False)
    with pytest.raises(kernels.KernelUnavailableError, match=r"openretina-models\[triton\]"):
        kernels.kernel_backend(torch.zeros(1))


def test_torch_backend_and_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENRETINA_KERNELS", "torch")
    assert kernels.kernel_backend(torch.zeros(1)) == "torch"
    monkeypatch.setenv("OPENRETINA_KERNELS", "cuda")
    with pytest.raises(ValueError, match="auto, torch, triton"):
        kernels.kernel_backend(torch.zeros(1))


@pytest.mark.triton
def test_explicit_triton_dispatches_to_the_kernel(triton_impl, monkeypatch: pytest.MonkeyPatch) -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("OPENRETINA_KERNELS", "triton")
    calls = []
    original = triton_impl.readout_contraction_triton
    monkeypatch.setattr(triton_impl, "readout_contraction_triton", lambda *a: calls.append(1) or original(*a))
    features, mask, weights = inputs(SHAPES[0], device)
    out = kernels.readout_contraction(features, mask, weights)
    assert calls == [1]
    expected = readout_contraction_reference(features, mask, weights)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.triton
def test_self_check_passes_where_the_kernel_runs(triton_impl) -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kernels.self_check.cache_clear()
    with torch.no_grad():  # the first call may come from evaluation code
        assert kernels.self_check(device) is None


def fake_cuda_tensor() -> SimpleNamespace:
    return SimpleNamespace(is_cuda=True, device=torch.device("cuda:0"))


def test_auto_falls_back_with_one_warning_when_the_self_check_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENRETINA_KERNELS", "auto")
    monkeypatch.setattr(kernels, "triton_available", lambda: True)
    monkeypatch.setattr(kernels, "self_check", lambda device: "CompilationError: boom")
    kernels._warn_once.cache_clear()
    with pytest.warns(RuntimeWarning, match="boom"):
        assert kernels.kernel_backend(fake_cuda_tensor()) == "torch"
    monkeypatch.setattr(kernels, "self_check", lambda device: None)
    assert kernels.kernel_backend(fake_cuda_tensor()) == "triton"


def test_explicit_triton_fails_loudly_when_the_self_check_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENRETINA_KERNELS", "triton")
    monkeypatch.setattr(kernels, "triton_available", lambda: True)
    monkeypatch.setattr(kernels, "self_check", lambda device: "its output differs from the reference")
    with pytest.raises(kernels.KernelUnavailableError, match="differs from the reference"):
        kernels.kernel_backend(fake_cuda_tensor())
