"""Causal spatio-temporal convolutions on `(batch, channels, time, height, width)`.

By default time is never padded: a temporal kernel of length `kt` turns `T` frames into `T - kt + 1`,
and output frame `t` sees input frames `t .. t + kt - 1`, i.e. only the present and the past of the
last frame. So every layer is causal and `warmup_frames = kt - 1`. A spatial `stride` (default 1)
keeps every `stride`-th output pixel, which makes a first layer on large frames cheap.
`temporal_padding` exists only to express models trained with openretina 1.x, some of whose
configs pad time; such layers see `padding` frames into the future and consume fewer warm-up frames.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from openretina_models.layers.small_frames import matrix_pays_off, spatial_conv_as_matrix


def padding_pair(padding: int | str, kernel_size: int, name: str) -> tuple[int, int]:
    """Zero frames/pixels `(before, after)` on one axis: `"same"` keeps the size (an even kernel pads one
    more after, as PyTorch does), `"valid"` pads none, an int pads that much on both sides."""
    if padding == "same":
        total = kernel_size - 1
        return total // 2, total - total // 2
    if padding == "valid":
        return 0, 0
    if isinstance(padding, int) and not isinstance(padding, bool) and padding >= 0:
        return padding, padding
    raise ValueError(f"{name} must be 'same', 'valid' or a non-negative int, got {padding!r}.")


def spatial_padding_amount(padding: int | str, kernel_size: int) -> int:
    """Pixels of zero padding on each side: `"same"` keeps the size (odd kernels), `"valid"` pads none."""
    if padding == "same":
        if kernel_size % 2 == 0:
            raise ValueError(f"spatial_padding='same' needs odd spatial kernel sizes, got {kernel_size}.")
        return kernel_size // 2
    if padding == "valid":
        return 0
    if isinstance(padding, int) and not isinstance(padding, bool) and padding >= 0:
        return padding
    raise ValueError(f"spatial_padding must be 'same', 'valid' or a non-negative int, got {padding!r}.")


class _CausalConv(nn.Module):
    """What both convolutions share: valid in time (so `kt - 1` warm-up frames), padded in space.

    `temporal_padding` (1.x compatibility, default 0) pads time as well; `"same"` spatial padding
    with an even kernel pads one pixel more after than before.
    """

    def __init__(
        self,
        temporal_kernel_size: int,
        spatial_kernel_size: int,
        spatial_padding: int | str,
        temporal_padding: int | str = 0,
    ) -> None:
        super().__init__()
        self.temporal_kernel_size = temporal_kernel_size
        self.time_pads = padding_pair(temporal_padding, temporal_kernel_size, "temporal_padding")
        if sum(self.time_pads) > temporal_kernel_size - 1:
            raise ValueError(
                f"temporal_padding={temporal_padding!r} pads more than a kernel of "
                f"{temporal_kernel_size} frames consumes; it would add frames."
            )
        before, after = padding_pair(spatial_padding, spatial_kernel_size, "spatial_padding")
        self.spatial_pad = before if before == after else 0  # symmetric: done by the convolution itself
        self.extra_pads = (0, 0, 0, 0) if before == after else (before, after, before, after)

    @property
    def warmup_frames(self) -> int:
        return self.temporal_kernel_size - 1 - sum(self.time_pads)

    def _pad_space(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.extra_pads) if any(self.extra_pads) else x


class SpaceTimeSeparableConv3d(_CausalConv):
    """A spatial convolution followed by a per-channel temporal convolution.

    The kernel is `spatial[o, i, h, w] * temporal[o, t]`, computed in two cheap passes instead of one
    full 3-D convolution: `in * out * kh * kw + out * kt` multiplies per output pixel rather than
    `in * out * kt * kh * kw`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        temporal_kernel_size: int,
        spatial_kernel_size: int,
        spatial_padding: int | str = "same",
        bias: bool = True,
        temporal_padding: int | str = 0,
        stride: int = 1,
    ) -> None:
        super().__init__(temporal_kernel_size, spatial_kernel_size, spatial_padding, temporal_padding)
        self.spatial = nn.Conv3d(
            in_channels,
            out_channels,
            (1, spatial_kernel_size, spatial_kernel_size),
            stride=(1, stride, stride),
            padding=(0, self.spatial_pad, self.spatial_pad),
            bias=False,
        )
        self.temporal = nn.Conv3d(
            out_channels, out_channels, (temporal_kernel_size, 1, 1), groups=out_channels, bias=bias
        )

    def spatial_weight(self) -> torch.Tensor:
        """`(out, in, kh, kw)` spatial kernels."""
        return self.spatial.weight[:, :, 0]

    def temporal_weight(self) -> torch.Tensor:
        """`(out, kt)` temporal kernels."""
        return self.temporal.weight[:, 0, :, 0, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_recipe(x)[0]

    def forward_with_recipe(self, x: torch.Tensor) -> tuple[torch.Tensor, Callable[[], torch.Tensor]]:
        """The output, and a function that computes it again, bit for bit, from what the temporal
        pass keeps for its own backward pass anyway (its input and weights): a caller can let the
        output go and recompute it when backward needs it (`recomputed_in_backward`)."""
        y = self._spatial_cpu(x) if x.device.type == "cpu" else self.spatial(self._pad_space(x))
        if any(self.time_pads):
            y = F.pad(y, (0, 0, 0, 0, *self.time_pads))
        # The depthwise temporal pass as a 2-D convolution over (time, pixels): the same numbers as
        # `self.temporal(y)`, but ~1.5-2x faster than PyTorch's depthwise Conv3d on CPU (measured).
        b, c, t, h, w = y.shape
        frames = y.reshape(b, c, t, h * w)
        weight, bias = self.temporal.weight[..., 0], self.temporal.bias  # (C, 1, kt, 1)

        def temporal_pass() -> torch.Tensor:
            z = F.conv2d(frames, weight, bias, groups=c)
            return z.reshape(b, c, z.shape[2], h, w)

        return temporal_pass(), temporal_pass

    def _spatial_cpu(self, x: torch.Tensor) -> torch.Tensor:
        """The spatial pass on CPU, the faster of two ways of computing the same numbers (issue 24,
        docs/benchmarks.md): on small frames one matrix product (small_frames.py); otherwise
        oneDNN's convolution on channels-last tensors (0.4-0.7x the time per training step of 1.x's
        tutorial architecture, 0.6-0.9x of the default config, the same on 50x50 frames). The
        layout then carries through the temporal pass, batch norm and the next layer."""
        height, width = int(x.shape[-2]), int(x.shape[-1])
        kernel, stride = int(self.spatial.kernel_size[-1]), int(self.spatial.stride[-1])
        left, right, top, bottom = self.extra_pads if any(self.extra_pads) else (self.spatial_pad,) * 4
        pads = (top, bottom, left, right)
        c_in, c_out = self.spatial.in_channels, self.spatial.out_channels
        if matrix_pays_off(height, width, kernel, pads, stride, c_in, c_out):
            # Channel-major now, once: the temporal convolution would copy its frame-major input
            # itself, keep that input for the backward pass and copy it again there (issue 24: one
            # copy of every layer's spatial output fewer per step; the same numbers).
            return spatial_conv_as_matrix(x, self.spatial.weight, pads, stride).contiguous()
        return self.spatial(self._pad_space(x).contiguous(memory_format=torch.channels_last_3d))


class FullConv3d(_CausalConv):
    """An unconstrained 3-D convolution, valid (causal) in time and padded in space."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        temporal_kernel_size: int,
        spatial_kernel_size: int,
        spatial_padding: int | str = "same",
        bias: bool = True,
        temporal_padding: int | str = 0,
        stride: int = 1,
    ) -> None:
        super().__init__(temporal_kernel_size, spatial_kernel_size, spatial_padding, temporal_padding)
        padding = (0, self.spatial_pad, self.spatial_pad)
        if any(self.time_pads):
            if self.time_pads[0] == self.time_pads[1] and not any(self.extra_pads):
                padding = (self.time_pads[0], self.spatial_pad, self.spatial_pad)
            else:  # uneven somewhere: pad every axis explicitly before the convolution
                space = self.extra_pads if any(self.extra_pads) else (self.spatial_pad,) * 4
                self.extra_pads = (*space, *self.time_pads)
                self.spatial_pad, padding = 0, (0, 0, 0)
        self.conv = nn.Conv3d(
            in_channels,
            out_channels,
            (temporal_kernel_size, spatial_kernel_size, spatial_kernel_size),
            stride=(1, stride, stride),
            padding=padding,
            bias=bias,
        )

    def spatial_weight(self) -> torch.Tensor:
        """`(out, in * kt, kh, kw)`: every time slice of every kernel as a spatial kernel."""
        w = self.conv.weight
        return w.reshape(w.shape[0], w.shape[1] * w.shape[2], w.shape[3], w.shape[4])

    def temporal_weight(self) -> torch.Tensor:
        """`(out, in, kh, kw, kt)`: every pixel's temporal profile, time last."""
        return self.conv.weight.permute(0, 1, 3, 4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self._pad_space(x))


@contextlib.contextmanager
def recomputed_in_backward(output: torch.Tensor, again: Callable[[], torch.Tensor]) -> Iterator[None]:
    """Inside: where autograd would keep ``output`` for a backward pass, it keeps ``again`` instead
    and calls it when that backward pass runs.

    For batch norm after a separable convolution (issue 24): batch norm keeps its input, the
    temporal pass's output, one activation-sized tensor per layer; the temporal pass keeps its own
    input, from which that output is recomputed by one cheap depthwise convolution. The same
    numbers (`tests/models/test_models_core_recompute.py`), one such tensor fewer alive per layer.
    Only ``output`` itself is swapped: nothing inside may change it in place.
    """
    key = (output.data_ptr(), output.shape, output.stride(), output.dtype)

    def pack(saved: torch.Tensor) -> Any:
        if (saved.data_ptr(), saved.shape, saved.stride(), saved.dtype) == key:
            return _Again(again)
        return saved

    def unpack(packed: Any) -> torch.Tensor:
        return packed.again() if isinstance(packed, _Again) else packed

    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        yield


def saved_tensor_hooks_active() -> bool:
    """Whether a caller's saved-tensor hooks are in force (also when torch cannot say): then nothing
    is swapped, so that those hooks (e.g. `torch.autograd.graph.save_on_cpu`) see every tensor."""
    top = getattr(torch._C._autograd, "_top_saved_tensors_default_hooks", None)
    return top is None or top(False) is not None


class _Again:
    """A saved tensor replaced by the function that recomputes it."""

    __slots__ = ("again",)

    def __init__(self, again: Callable[[], torch.Tensor]) -> None:
        self.again = again
