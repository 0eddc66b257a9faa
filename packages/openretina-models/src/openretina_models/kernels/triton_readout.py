"""Triton kernels for the spatial readout contraction, forward and backward.

`out[b, t, n] = sum_{c, h, w} features[b, c, t, h, w] * mask[n, h, w] * weights[n, c]`

The reference contracts space with one matmul and then channels, materialising a `(B, C, T, N)`
intermediate. The fused kernels build the rank-one per-neuron weight `mask[n] x weights[n]` on the
fly, read the features once per neuron block straight from their `(B, C, T, H, W)` strides (no
permuted copy), and write only `(B, T, N)`. The weight gradients are written as per-block partial
sums and reduced in PyTorch, so results are deterministic (no atomics).

Importing this module imports triton; `openretina_models.kernels` does so only on first use.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["readout_contraction_triton"]


@triton.jit
def _forward_kernel(
    f_ptr, m_ptr, w_ptr, y_ptr,
    R, T, C, HW, N, width,
    sb, sc, st, sh, sw,
    BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    neurons = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < R
    neuron_ok = neurons < N
    row_off = (rows // T).to(tl.int64) * sb + (rows % T).to(tl.int64) * st
    acc = tl.zeros((BLOCK_R, BLOCK_N), dtype=tl.float32)
    for c in range(C):
        spatial = tl.zeros((BLOCK_R, BLOCK_N), dtype=tl.float32)
        for k0 in range(0, HW, BLOCK_K):
            pixels = k0 + tl.arange(0, BLOCK_K)
            pixel_ok = pixels < HW
            pix_off = (pixels // width).to(tl.int64) * sh + (pixels % width).to(tl.int64) * sw
            f = tl.load(
                f_ptr + row_off[:, None] + c * sc + pix_off[None, :],
                mask=row_ok[:, None] & pixel_ok[None, :],
                other=0.0,
            ).to(tl.float32)
            m = tl.load(
                m_ptr + neurons[None, :] * HW + pixels[:, None],
                mask=neuron_ok[None, :] & pixel_ok[:, None],
                other=0.0,
            ).to(tl.float32)
            spatial += tl.dot(f, m, input_precision=PRECISION)
        w = tl.load(w_ptr + neurons * C + c, mask=neuron_ok, other=0.0).to(tl.float32)
        acc += spatial * w[None, :]
    out = y_ptr + rows[:, None].to(tl.int64) * N + neurons[None, :]
    tl.store(out, acc.to(y_ptr.dtype.element_ty), mask=row_ok[:, None] & neuron_ok[None, :])


@triton.jit
def _features_grad_kernel(
    dy_ptr, m_ptr, w_ptr, df_ptr,
    R, T, C, HW, N, width,
    sb, sc, st, sh, sw,
    BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    pixels = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    c = tl.program_id(2)
    row_ok = rows < R
    pixel_ok = pixels < HW
    acc = tl.zeros((BLOCK_R, BLOCK_K), dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        neurons = n0 + tl.arange(0, BLOCK_N)
        neuron_ok = neurons < N
        dy = tl.load(
            dy_ptr + rows[:, None].to(tl.int64) * N + neurons[None, :],
            mask=row_ok[:, None] & neuron_ok[None, :],
            other=0.0,
        ).to(tl.float32)
        w = tl.load(w_ptr + neurons * C + c, mask=neuron_ok, other=0.0).to(tl.float32)
        m = tl.load(
            m_ptr + neurons[:, None] * HW + pixels[None, :],
            mask=neuron_ok[:, None] & pixel_ok[None, :],
            other=0.0,
        ).to(tl.float32)
        acc += tl.dot(dy * w[None, :], m, input_precision=PRECISION)
    row_off = (rows // T).to(tl.int64) * sb + (rows % T).to(tl.int64) * st
    pix_off = (pixels // width).to(tl.int64) * sh + (pixels % width).to(tl.int64) * sw
    out = df_ptr + row_off[:, None] + c * sc + pix_off[None, :]
    tl.store(out, acc.to(df_ptr.dtype.element_ty), mask=row_ok[:, None] & pixel_ok[None, :])


@triton.jit
def _weights_grad_kernel(
    dy_ptr, f_ptr, m_ptr, w_ptr, dm_part_ptr, dw_part_ptr,
    R, T, C, HW, N, width, rows_per_split, n_pixel_blocks,
    sb, sc, st, sh, sw,
    BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    neurons = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    pixel_block = tl.program_id(1)
    split = tl.program_id(2)
    pixels = pixel_block * BLOCK_K + tl.arange(0, BLOCK_K)
    neuron_ok = neurons < N
    pixel_ok = pixels < HW
    pix_off = (pixels // width).to(tl.int64) * sh + (pixels % width).to(tl.int64) * sw
    m = tl.load(
        m_ptr + neurons[:, None] * HW + pixels[None, :],
        mask=neuron_ok[:, None] & pixel_ok[None, :],
        other=0.0,
    ).to(tl.float32)
    dm = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
    row_start = split * rows_per_split
    row_stop = tl.minimum(row_start + rows_per_split, R)
    for c in range(C):
        a = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
        for r0 in range(row_start, row_stop, BLOCK_R):
            rows = r0 + tl.arange(0, BLOCK_R)
            row_ok = rows < row_stop
            dy_t = tl.load(
                dy_ptr + rows[None, :].to(tl.int64) * N + neurons[:, None],
                mask=neuron_ok[:, None] & row_ok[None, :],
                other=0.0,
            ).to(tl.float32)
            row_off = (rows // T).to(tl.int64) * sb + (rows % T).to(tl.int64) * st
            f = tl.load(
                f_ptr + row_off[:, None] + c * sc + pix_off[None, :],
                mask=row_ok[:, None] & pixel_ok[None, :],
                other=0.0,
            ).to(tl.float32)
            a += tl.dot(dy_t, f, input_precision=PRECISION)
        w = tl.load(w_ptr + neurons * C + c, mask=neuron_ok, other=0.0).to(tl.float32)
        dm += a * w[:, None]
        dw = tl.sum(a * m, axis=1)
        dw_out = dw_part_ptr + ((split * N + neurons) * C + c) * n_pixel_blocks + pixel_block
        tl.store(dw_out, dw, mask=neuron_ok)
    dm_out = dm_part_ptr + (split * N + neurons[:, None]).to(tl.int64) * HW + pixels[None, :]
    tl.store(dm_out, dm, mask=neuron_ok[:, None] & pixel_ok[None, :])


def _blocks(n: int, hw: int) -> tuple[int, int, int]:
    block_n = min(64, max(16, triton.next_power_of_2(n)))
    block_k = min(64, max(16, triton.next_power_of_2(hw)))
    return 64, block_n, block_k


def _precision(features: torch.Tensor) -> str:
    tf32 = features.is_cuda and features.dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32
    return "tf32" if tf32 else "ieee"


class _ReadoutContraction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = features.shape
        n = mask.shape[0]
        mask = mask.reshape(n, h * w).contiguous()
        weights = weights.contiguous()
        r = b * t
        y = torch.empty(b, t, n, device=features.device, dtype=features.dtype)
        block_r, block_n, block_k = _blocks(n, h * w)
        grid = (triton.cdiv(r, block_r), triton.cdiv(n, block_n))
        _forward_kernel[grid](
            features, mask, weights, y, r, t, c, h * w, n, w, *features.stride()[:2], *features.stride()[2:],
            BLOCK_R=block_r, BLOCK_N=block_n, BLOCK_K=block_k, PRECISION=_precision(features),
        )  # fmt: skip
        ctx.save_for_backward(features, mask, weights)
        ctx.mask_shape = (n, h, w)
        return y

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        features, mask, weights = ctx.saved_tensors
        b, c, t, h, w = features.shape
        n, hw, r = mask.shape[0], h * w, b * t
        grad_out = grad_out.contiguous()
        block_r, block_n, block_k = _blocks(n, hw)
        precision = _precision(features)
        grad_features = grad_mask = grad_weights = None
        if ctx.needs_input_grad[0]:
            grad_features = torch.empty(b, c, t, h, w, device=features.device, dtype=features.dtype)
            grid = (triton.cdiv(r, block_r), triton.cdiv(hw, block_k), c)
            _features_grad_kernel[grid](
                grad_out, mask, weights, grad_features, r, t, c, hw, n, w, *grad_features.stride(),
                BLOCK_R=block_r, BLOCK_N=block_n, BLOCK_K=block_k, PRECISION=precision,
            )  # fmt: skip
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            n_blocks, k_blocks = triton.cdiv(n, block_n), triton.cdiv(hw, block_k)
            # Split the rows so that even small readouts fill the GPU; partials are summed below.
            target = 4 * _multiprocessors(features.device)
            splits = max(1, min(triton.cdiv(r, block_r), triton.cdiv(target, n_blocks * k_blocks)))
            rows_per_split = triton.cdiv(triton.cdiv(r, splits), block_r) * block_r
            splits = triton.cdiv(r, rows_per_split)
            kwargs = {"device": features.device, "dtype": torch.float32}
            dm_part = torch.empty(splits, n, hw, **kwargs)
            dw_part = torch.empty(splits, n, c, k_blocks, **kwargs)
            _weights_grad_kernel[(n_blocks, k_blocks, splits)](
                grad_out, features, mask, weights, dm_part, dw_part,
                r, t, c, hw, n, w, rows_per_split, k_blocks, *features.stride(),
                BLOCK_R=block_r, BLOCK_N=block_n, BLOCK_K=block_k, PRECISION=precision,
            )  # fmt: skip
            grad_mask = dm_part.sum(0).view(ctx.mask_shape).to(mask.dtype)
            grad_weights = dw_part.sum(dim=(0, 3)).to(weights.dtype)
        return grad_features, grad_mask, grad_weights


def _multiprocessors(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 4


def readout_contraction_triton(
    features: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Fused `(B, C, T, H, W) x (N, H, W) x (N, C) -> (B, T, N)`, differentiable in all three inputs."""
    if features.ndim != 5 or mask.ndim != 3 or weights.ndim != 2:
        raise ValueError(
            f"Expected features (B, C, T, H, W), mask (N, H, W), weights (N, C); got "
            f"{tuple(features.shape)}, {tuple(mask.shape)}, {tuple(weights.shape)}."
        )
    if mask.shape[1:] != features.shape[3:] or weights.shape != (mask.shape[0], features.shape[1]):
        raise ValueError(
            f"Shapes do not fit: features {tuple(features.shape)}, mask {tuple(mask.shape)}, "
            f"weights {tuple(weights.shape)}."
        )
    return _ReadoutContraction.apply(features, mask, weights)
