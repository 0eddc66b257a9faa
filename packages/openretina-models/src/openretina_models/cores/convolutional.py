"""A stack of causal spatio-temporal convolution layers, shared by all sessions."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from openretina_models.layers import (
    FullConv3d,
    SpaceTimeSeparableConv3d,
    group_sparsity,
    laplace_smoothness,
    make_activation,
    recomputed_in_backward,
    saved_tensor_hooks_active,
    temporal_smoothness,
)

CONV_TYPES = ("separable", "full")


def per_layer(value: int | str | Sequence, n_layers: int, name: str) -> list:
    """Broadcast a scalar to every layer, or check a per-layer list has one entry per layer."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        return [value] * n_layers
    values = list(value)
    if len(values) != n_layers:
        raise ValueError(
            f"{name} has {len(values)} entries but there are {n_layers} layers (len(hidden_channels)); "
            "give one value per layer or a single value for all."
        )
    return values


class SpatioTemporalCore(nn.Module):
    """Convolution → batch norm → nonlinearity (→ dropout → spatial max-pool) per layer, causal in time.

    `stride` (per layer) makes a layer's convolution spatially strided: on large frames a first
    layer with stride 2 runs its temporal kernels on a quarter of the pixels (cheaper than `pooling`,
    which pools after a full-resolution layer).

    `temporal_padding` (default 0, i.e. causal) and `cut_first_n_frames` (frames dropped from the
    output start) exist to express models trained with openretina 1.x exactly.

    Regularisers (1.x names; every one is a mean, so it does not grow with layer or kernel sizes):
    `gamma_input` Laplacian smoothness of the first layer's spatial kernels, `gamma_in_sparse` group
    sparsity of the first layer, `gamma_hidden` group sparsity of the later layers, `gamma_temporal`
    smoothness (squared second difference) of all temporal kernels.

    In training mode, batch norm's input (a separable layer's output) is not kept for the backward
    pass but recomputed from the temporal pass's input (`layers.conv.recomputed_in_backward`): the same
    numbers with one activation-sized tensor fewer per layer. `recompute_norm_inputs = False` keeps
    it instead; so does any saved-tensor hook of the caller's (e.g. offloading to CPU memory).
    """

    recompute_norm_inputs: bool = True

    def __init__(
        self,
        in_channels: int,
        hidden_channels: Sequence[int] = (16,),
        temporal_kernel_sizes: int | Sequence[int] = 15,
        spatial_kernel_sizes: int | Sequence[int] = 9,
        conv_type: str | Sequence[str] = "separable",
        spatial_padding: int | str | Sequence[int | str] = "same",
        nonlinearity: str = "elu",
        batch_norm: bool = True,
        batch_norm_momentum: float = 0.1,
        dropout: float = 0.0,
        pooling: int | Sequence[int] = 1,
        stride: int | Sequence[int] = 1,
        gamma_input: float = 0.0,
        gamma_hidden: float = 0.0,
        gamma_in_sparse: float = 0.0,
        gamma_temporal: float = 0.0,
        temporal_padding: int | str | Sequence[int | str] = 0,
        cut_first_n_frames: int = 0,
    ) -> None:
        super().__init__()
        hidden = [int(c) for c in hidden_channels]
        if not hidden or min(hidden) < 1:
            raise ValueError(
                f"hidden_channels must list at least one positive channel count, got {hidden_channels!r}."
            )
        n = len(hidden)
        temporal = [int(k) for k in per_layer(temporal_kernel_sizes, n, "temporal_kernel_sizes")]
        spatial = [int(k) for k in per_layer(spatial_kernel_sizes, n, "spatial_kernel_sizes")]
        kinds = per_layer(conv_type, n, "conv_type")
        paddings = per_layer(spatial_padding, n, "spatial_padding")
        time_paddings = per_layer(temporal_padding, n, "temporal_padding")
        if int(cut_first_n_frames) < 0:
            raise ValueError(f"cut_first_n_frames must be >= 0, got {cut_first_n_frames}.")
        self.cut_first_n_frames = int(cut_first_n_frames)
        pools = [int(p) for p in per_layer(pooling, n, "pooling")]
        strides = [int(s) for s in per_layer(stride, n, "stride")]
        for kind in kinds:
            if kind not in CONV_TYPES:
                raise ValueError(f"conv_type must be one of {CONV_TYPES}, got {kind!r}.")
        if min(temporal) < 1 or min(spatial) < 1 or min(pools) < 1 or min(strides) < 1:
            raise ValueError("Kernel sizes, pooling sizes and strides must be positive integers.")
        if not 0.0 < batch_norm_momentum <= 1.0:
            raise ValueError(f"batch_norm_momentum must be in (0, 1], got {batch_norm_momentum}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
        self.gamma_input = float(gamma_input)
        self.gamma_hidden = float(gamma_hidden)
        self.gamma_in_sparse = float(gamma_in_sparse)
        self.gamma_temporal = float(gamma_temporal)
        self.out_channels = hidden[-1]

        self.convs = nn.ModuleList()
        self.blocks = nn.ModuleList()
        channels = in_channels
        for i in range(n):
            conv_cls = SpaceTimeSeparableConv3d if kinds[i] == "separable" else FullConv3d
            conv = conv_cls(
                channels,
                hidden[i],
                temporal[i],
                spatial[i],
                paddings[i],
                bias=not batch_norm,
                temporal_padding=time_paddings[i],
                stride=strides[i],
            )
            post: list[nn.Module] = []
            if batch_norm:
                post.append(nn.BatchNorm3d(hidden[i], momentum=batch_norm_momentum))
            post.append(make_activation(nonlinearity, in_place=True))  # on a fresh conv/BN output
            if dropout > 0:
                post.append(nn.Dropout(dropout))
            if pools[i] > 1:
                post.append(nn.MaxPool3d((1, pools[i], pools[i])))
            self.convs.append(conv)
            self.blocks.append(nn.Sequential(*post))
            channels = hidden[i]

    @property
    def warmup_frames(self) -> int:
        """Frames consumed at the start of a clip by the valid temporal convolutions (and the cut)."""
        return sum(conv.warmup_frames for conv in self.convs) + self.cut_first_n_frames

    def output_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """`(channels, height, width)` of the feature maps for a `height x width` stimulus."""
        was_training = self.training
        self.eval()  # a probe in training mode would update batch-norm running statistics
        try:
            with torch.no_grad():
                probe = torch.zeros(1, self._in_channels(), self.warmup_frames + 1, height, width)
                out = self(probe)
        finally:
            self.train(was_training)
        if out.shape[-1] < 1 or out.shape[-2] < 1:
            raise ValueError(
                f"The core shrinks a {height}x{width} stimulus to nothing; use smaller kernels or padding."
            )
        return int(out.shape[1]), int(out.shape[3]), int(out.shape[4])

    def feature_pixels(self) -> tuple[float, float]:
        """`(scale, offset)`: feature-map pixel `j` is centred on stimulus pixel `scale * j + offset`
        (the same along rows and columns), through every layer's padding, stride and pooling."""
        scale, offset = 1.0, 0.0
        for conv, block in zip(self.convs, self.blocks, strict=True):
            spatial = conv.spatial if isinstance(conv, SpaceTimeSeparableConv3d) else conv.conv
            kernel, stride = int(spatial.kernel_size[-1]), int(spatial.stride[-1])
            before = conv.extra_pads[0] if any(conv.extra_pads) else int(spatial.padding[-1])
            offset += scale * ((kernel - 1) / 2 - before)
            scale *= stride
            for layer in block:
                if isinstance(layer, nn.MaxPool3d):
                    size = int(layer.kernel_size[-1])  # type: ignore[index]  # built as (1, q, q)
                    offset += scale * (size - 1) / 2
                    scale *= size
        return scale, offset

    def _in_channels(self) -> int:
        first = self.convs[0]
        return (
            first.spatial.in_channels
            if isinstance(first, SpaceTimeSeparableConv3d)
            else first.conv.in_channels
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        recompute = (
            self.training
            and self.recompute_norm_inputs
            and torch.is_grad_enabled()
            and not saved_tensor_hooks_active()
        )
        for conv, block in zip(self.convs, self.blocks, strict=True):
            if recompute and isinstance(conv, SpaceTimeSeparableConv3d) and _starts_with_norm(block):
                z, again = conv.forward_with_recipe(x)
                with recomputed_in_backward(z, again):
                    x = block(z)
                del z, again
            else:
                x = block(conv(x))
        return x[:, :, self.cut_first_n_frames :] if self.cut_first_n_frames else x

    def regularisation(self) -> torch.Tensor:
        """Weighted sum of the core's penalties (a scalar; zero when every gamma is zero)."""
        first_spatial = self.convs[0].spatial_weight()
        total = first_spatial.new_zeros(())
        if self.gamma_input:
            total = total + self.gamma_input * laplace_smoothness(first_spatial)
        if self.gamma_in_sparse:
            total = total + self.gamma_in_sparse * group_sparsity(first_spatial)
        if self.gamma_hidden and len(self.convs) > 1:
            hidden = torch.stack([group_sparsity(conv.spatial_weight()) for conv in self.convs[1:]])
            total = total + self.gamma_hidden * hidden.mean()
        if self.gamma_temporal:
            smooth = torch.stack([temporal_smoothness(conv.temporal_weight()) for conv in self.convs])
            total = total + self.gamma_temporal * smooth.mean()
        return total


def _starts_with_norm(block: nn.Sequential) -> bool:
    """Batch norm first: it keeps its input (the convolution's output) and does not change it."""
    return len(block) > 0 and isinstance(block[0], nn.BatchNorm3d)
