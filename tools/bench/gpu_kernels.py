"""Benchmark the Triton readout-contraction kernel against its PyTorch reference on a GPU.

    uv run python tools/bench/gpu_kernels.py --out gpu_kernels.json [--repeats 50] [--dtype float32]

For each shape `(B, C, T, H, W, N)` (features `(B, C, T, H, W)`, `N` neurons) it times the forward
pass and forward+backward of both implementations with CUDA events (median of `--repeats` after
warm-up), reports the achieved memory bandwidth (the minimum bytes each pass must move divided by
its time), the speed-up, and the largest difference between the two outputs. Results go to stdout
and, as JSON, to `--out`. Without CUDA or Triton it prints why and exits 0 without benchmarking.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch

SHAPES = {  # name: (B, C, T, H, W, N)
    "tutorial 3x16x8": (64, 16, 50, 16, 8, 30),
    "simulated retina 18x16": (64, 16, 64, 18, 16, 40),
    "hoefling low-res": (32, 16, 150, 18, 16, 150),
    "many neurons": (32, 32, 100, 18, 16, 600),
    "high-res 72x64": (8, 16, 100, 72, 64, 100),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON results")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    args = parser.parse_args(argv)

    if not torch.cuda.is_available():
        print("gpu_kernels: no CUDA device here; nothing to benchmark.")
        return 0
    try:
        from openretina_models.kernels.reference import readout_contraction_reference
        from openretina_models.kernels.triton_readout import readout_contraction_triton
    except ImportError as error:
        print(f"gpu_kernels: the Triton kernel cannot be imported ({error}); nothing to benchmark.")
        return 0
    import triton

    dtype = getattr(torch, args.dtype)
    results = []
    for name, shape in SHAPES.items():
        row = bench_shape(
            name, shape, dtype, args.repeats, readout_contraction_triton, readout_contraction_reference
        )
        results.append(row)
        print(
            f"{name:24s} fwd {row['triton']['forward_ms']:.3f} vs {row['torch']['forward_ms']:.3f} ms "
            f"({row['speedup_forward']:.2f}x, {row['triton']['forward_GBps']:.0f} GB/s) | "
            f"fwd+bwd {row['triton']['train_ms']:.3f} vs {row['torch']['train_ms']:.3f} ms "
            f"({row['speedup_train']:.2f}x, {row['triton']['train_GBps']:.0f} GB/s) | "
            f"max diff {row['max_abs_diff']:.2e}"
        )
    report = {
        "device": torch.cuda.get_device_name(),
        "dtype": args.dtype,
        "repeats": args.repeats,
        "tf32": torch.backends.cuda.matmul.allow_tf32,
        "versions": {
            "torch": torch.__version__,
            "triton": triton.__version__,
            "python": platform.python_version(),
        },
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


def bench_shape(
    name: str, shape: tuple[int, ...], dtype: torch.dtype, repeats: int, kernel: Callable, reference: Callable
) -> dict:
    b, c, t, h, w, n = shape
    g = torch.Generator(device="cuda").manual_seed(0)
    features = torch.randn(b, c, t, h, w, device="cuda", dtype=dtype, generator=g, requires_grad=True)
    mask = torch.softmax(torch.randn(n, h * w, device="cuda", generator=g), 1).view(n, h, w).to(dtype)
    weights = torch.randn(n, c, device="cuda", generator=g).to(dtype)
    mask.requires_grad_(True)
    weights.requires_grad_(True)
    grad = torch.randn(b, t, n, device="cuda", dtype=dtype, generator=g)
    size = torch.finfo(dtype).bits // 8
    f_bytes, y_bytes, p_bytes = (
        features.numel() * size,
        grad.numel() * size,
        (mask.numel() + weights.numel()) * size,
    )
    # Minimum traffic: forward reads features and parameters, writes outputs; backward reads the
    # output gradient and the features again and writes the feature and parameter gradients.
    forward_bytes = f_bytes + p_bytes + y_bytes
    train_bytes = forward_bytes + y_bytes + 2 * f_bytes + 2 * p_bytes

    row: dict = {"name": name, "shape": {"B": b, "C": c, "T": t, "H": h, "W": w, "N": n}}
    with torch.no_grad():
        diff = (
            (kernel(features, mask, weights).float() - reference(features, mask, weights).float()).abs().max()
        )
    row["max_abs_diff"] = diff.item()
    for label, fn in (("triton", kernel), ("torch", reference)):

        def forward(fn: Callable = fn) -> None:
            with torch.no_grad():
                fn(features, mask, weights)

        def train(fn: Callable = fn) -> None:
            features.grad = mask.grad = weights.grad = None
            fn(features, mask, weights).backward(grad)

        fwd, trn = cuda_time(forward, repeats), cuda_time(train, repeats)
        row[label] = {
            "forward_ms": fwd,
            "train_ms": trn,
            "forward_GBps": forward_bytes / fwd / 1e6,
            "train_GBps": train_bytes / trn / 1e6,
        }
    row["speedup_forward"] = row["torch"]["forward_ms"] / row["triton"]["forward_ms"]
    row["speedup_train"] = row["torch"]["train_ms"] / row["triton"]["train_ms"]
    return row


def cuda_time(fn: Callable[[], None], repeats: int) -> float:
    """Median milliseconds of `fn` over `repeats` runs, timed with CUDA events after a warm-up."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


if __name__ == "__main__":
    sys.exit(main())
