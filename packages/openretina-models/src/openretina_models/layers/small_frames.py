"""A spatial convolution on small frames as one matrix product (CPU).

When a frame is hardly larger than the kernel (1.x's tutorial: 8x8 kernels on 16x8, 9x1 and 10x2
pixel frames), most of a convolution's taps fall on padding and oneDNN spends its time on
bookkeeping. The same linear map written as one `(in channels x pixels) x (out channels x pixels)`
matrix, built from the kernel, is a single dense matrix product: 0.1-0.3x the time of the
convolution, forward and backward, at those sizes (issue 24, docs/benchmarks.md). Gradients flow to
the kernel through the gather that builds the matrix, so the parameters stay the convolution's.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

# Largest matrix built (entries; 512 KiB of float32). 1.x's tutorial layers need 12k-42k and were
# 3-9x faster as a matrix; the default config's first layer on 16x8 frames (786k) was slower.
MAX_MATRIX_ENTRIES = 1 << 17


def output_size(size: int, kernel: int, before: int, after: int, stride: int) -> int:
    return (size + before + after - kernel) // stride + 1


def matrix_pays_off(
    height: int, width: int, kernel: int, pads: tuple[int, int, int, int], stride: int, c_in: int, c_out: int
) -> bool:
    """Whether a frame is small enough for the matrix: at most twice the convolution's products
    (frame pixels <= 2 x kernel taps) and a matrix of at most `MAX_MATRIX_ENTRIES`."""
    top, bottom, left, right = pads
    out_h = output_size(height, kernel, top, bottom, stride)
    out_w = output_size(width, kernel, left, right, stride)
    if out_h < 1 or out_w < 1:
        return False  # the convolution itself reports the misfit
    entries = c_in * height * width * c_out * out_h * out_w
    return height * width <= 2 * kernel * kernel and entries <= MAX_MATRIX_ENTRIES


@functools.lru_cache(maxsize=64)
def _taps(
    height: int, width: int, kernel: int, pads: tuple[int, int, int, int], stride: int
) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """For every (input pixel, output pixel) pair: the kernel tap joining them and whether one does."""
    top, bottom, left, right = pads
    out_h = output_size(height, kernel, top, bottom, stride)
    out_w = output_size(width, kernel, left, right, stride)
    rows = torch.arange(height)[:, None] - torch.arange(out_h)[None, :] * stride + top  # (h, oh)
    cols = torch.arange(width)[:, None] - torch.arange(out_w)[None, :] * stride + left  # (w, ow)
    inside = ((rows >= 0) & (rows < kernel))[:, None, :, None] & ((cols >= 0) & (cols < kernel))[
        None, :, None, :
    ]
    tap = rows.clamp(0, kernel - 1)[:, None, :, None] * kernel + cols.clamp(0, kernel - 1)[None, :, None, :]
    return tap.reshape(-1), inside, out_h, out_w


def spatial_conv_as_matrix(
    x: torch.Tensor, weight: torch.Tensor, pads: tuple[int, int, int, int], stride: int
) -> torch.Tensor:
    """`conv3d(pad(x, pads), weight, stride=(1, stride, stride))` for a `(out, in, 1, k, k)` weight.

    `pads` is `(top, bottom, left, right)`; the result is `(batch, out, time, out_h, out_w)`.
    """
    b, c, t, h, w = x.shape
    o, k = weight.shape[0], weight.shape[-1]
    tap, inside, out_h, out_w = _taps(h, w, k, pads, stride)
    taps = weight.reshape(o, c, k * k)[:, :, tap].view(o, c, h, w, out_h, out_w) * inside.to(weight.dtype)
    matrix = taps.permute(1, 2, 3, 0, 4, 5).reshape(c * h * w, o * out_h * out_w)
    return _FramesTimesMatrix.apply(x, matrix).view(b, t, o, out_h, out_w).transpose(1, 2)


def _as_frames(x: torch.Tensor) -> torch.Tensor:
    """`(batch, channels, time, h, w)` as one row per frame: `(batch * time, channels * h * w)` (a copy)."""
    b, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(b * t, c * h * w)


class _FramesTimesMatrix(torch.autograd.Function):
    """`_as_frames(x) @ matrix`, keeping `x` for the backward pass instead of its frame-major copy.

    `x` is kept anyway (it is the batch, or the previous layer's output, which its nonlinearity
    keeps), so training holds one copy of each layer input less (issue 24: 11 MiB at the peak of
    1.x's tutorial architecture); the copy is made again in the backward pass, where it lives only
    for one product. The products are autograd's own for `mm`, so gradients are the same numbers.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, matrix)
        return _as_frames(x) @ matrix

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        x, matrix = ctx.saved_tensors
        grad_x = grad_matrix = None
        if ctx.needs_input_grad[1]:
            grad_matrix = _as_frames(x).t() @ grad
        if ctx.needs_input_grad[0]:
            b, c, t, h, w = x.shape
            grad_x = (grad @ matrix.t()).view(b, t, c, h, w).transpose(1, 2)
        return grad_x, grad_matrix
