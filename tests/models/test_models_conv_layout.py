"""The separable layer computes its definition, whatever the memory layout it runs in on CPU.

Issue 24 computes the spatial pass on CPU channels-last (faster in oneDNN) or, on small frames, as
one matrix product; these tests pin that the numbers, their gradients and the parameters a
checkpoint stores did not change.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from openretina_models.layers import SpaceTimeSeparableConv3d
from openretina_models.layers.conv import padding_pair
from openretina_models.layers.small_frames import matrix_pays_off

# (in, out, temporal kernel, spatial kernel, spatial padding, temporal padding, stride)
LAYERS = [
    (3, 4, 5, 5, "same", 0, 1),
    (3, 4, 4, 4, "same", 0, 1),  # even kernel: one pixel more after than before
    (2, 3, 3, 4, 2, 0, 1),  # 1.x's tutorial: an int padding
    (2, 3, 5, 3, "valid", 1, 1),  # 1.x's temporal padding
    (1, 4, 3, 5, "same", 0, 2),  # strided first layer
]


def definition(layer: SpaceTimeSeparableConv3d, x: torch.Tensor, spatial_padding: int | str) -> torch.Tensor:
    """One full 3-D convolution with the kernel `spatial[o, i, h, w] * temporal[o, t]`."""
    kernel = layer.spatial.weight * layer.temporal.weight  # (out, in, kt, kh, kw) by broadcasting
    before, after = padding_pair(spatial_padding, layer.spatial.kernel_size[-1], "spatial_padding")
    padded = F.pad(x, (before, after, before, after, *layer.time_pads))
    return F.conv3d(padded, kernel, layer.temporal.bias, stride=layer.spatial.stride)


@pytest.mark.parametrize("frame", [(10, 7), (4, 3)])  # a convolution; one matrix product (small)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
@pytest.mark.parametrize(("c_in", "c_out", "kt", "ks", "pad", "tpad", "stride"), LAYERS)
def test_separable_layer_matches_its_definition_forward_and_backward(
    frame: tuple[int, int],
    layout: str,
    c_in: int,
    c_out: int,
    kt: int,
    ks: int,
    pad: int | str,
    tpad: int,
    stride: int,
) -> None:
    torch.manual_seed(0)
    layer = SpaceTimeSeparableConv3d(c_in, c_out, kt, ks, pad, temporal_padding=tpad, stride=stride)
    h, w = frame
    before, after = padding_pair(pad, ks, "spatial_padding")
    small = matrix_pays_off(h, w, ks, (before, after, before, after), stride, c_in, c_out)
    assert small == (frame == (4, 3))  # both ways are tested
    base = torch.randn(2, c_in, 9, h, w)
    if layout == "channels_last":
        base = base.contiguous(memory_format=torch.channels_last_3d)
    elif layout == "strided":
        base = torch.randn(2, c_in, 9, w, h).transpose(-1, -2)  # a non-contiguous view
    x = base.clone().requires_grad_(True)
    x_ref = base.clone().requires_grad_(True)

    out = layer(x)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    out.backward(grad)
    got = [out.detach(), x.grad, *(p.grad.clone() for p in layer.parameters())]
    layer.zero_grad()
    expected_out = definition(layer, x_ref, pad)
    expected_out.backward(grad)
    expected = [expected_out.detach(), x_ref.grad, *(p.grad for p in layer.parameters())]

    assert out.shape == expected_out.shape
    for name, a, b in zip(
        ["output", "input grad", "spatial", "temporal", "bias"], got, expected, strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}")


def test_separable_layer_keeps_its_parameters_and_checkpoint_keys() -> None:
    layer = SpaceTimeSeparableConv3d(3, 4, 5, 5, "same")
    assert set(layer.state_dict()) == {"spatial.weight", "temporal.weight", "temporal.bias"}
    assert layer.spatial.weight.shape == (4, 3, 1, 5, 5)
    assert layer.temporal.weight.shape == (4, 1, 5, 1, 1)
    layer(torch.randn(1, 3, 6, 8, 8)).sum().backward()
    assert layer.spatial.weight.is_contiguous()
    assert layer.spatial.weight.grad is not None
    assert layer.spatial.weight.grad.is_contiguous()


def _with_saved_tensors(compute: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """`compute()` and the tensors autograd keeps for its backward pass."""
    kept: list[torch.Tensor] = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        kept.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        result = compute()
    return result, kept


def test_small_frame_product_keeps_its_input_not_a_frame_major_copy() -> None:
    """Training keeps one copy of a small-frame layer's input (the one that exists anyway), and the
    gradients are those of the plain product (issue 24's peak memory)."""
    from openretina_models.layers.small_frames import spatial_conv_as_matrix

    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 4, 3, requires_grad=True)
    weight = torch.randn(4, 3, 1, 3, 3, requires_grad=True)
    y, kept = _with_saved_tensors(lambda: spatial_conv_as_matrix(x, weight, (1, 1, 1, 1), 1))
    assert any(t.untyped_storage().data_ptr() == x.untyped_storage().data_ptr() for t in kept)
    assert not [t for t in kept if tuple(t.shape) == (2 * 5, 3 * 4 * 3)]  # no (batch * time, c * h * w) copy

    y.square().sum().backward()
    expected = F.conv3d(x.detach().requires_grad_(), weight.detach().requires_grad_(), padding=(0, 1, 1))
    x2, w2 = x.detach().clone().requires_grad_(), weight.detach().clone().requires_grad_()
    F.conv3d(x2, w2, padding=(0, 1, 1)).square().sum().backward()
    close = {"rtol": 1e-4, "atol": 1e-4}  # a convolution sums in another order
    torch.testing.assert_close(y, expected, **close)
    torch.testing.assert_close(x.grad, x2.grad, **close)
    torch.testing.assert_close(weight.grad, w2.grad, **close)


def test_small_frame_layer_hands_the_temporal_pass_a_channel_major_copy_with_the_same_numbers() -> None:
    """The spatial product's frame-major result is made channel-major once, before the temporal
    convolution, which would otherwise copy it itself in the forward and again in the backward pass
    (issue 24's peak memory): outputs and gradients are equal, bit for bit, to the convolution on
    the frame-major view, and what the backward pass keeps of the spatial output is that one copy."""
    from openretina_models.layers.small_frames import spatial_conv_as_matrix

    torch.manual_seed(0)
    layer = SpaceTimeSeparableConv3d(3, 4, temporal_kernel_size=4, spatial_kernel_size=5, spatial_padding=2)
    assert matrix_pays_off(6, 5, 5, (2, 2, 2, 2), 1, 3, 4)
    x = torch.randn(2, 3, 12, 6, 5, requires_grad=True)
    out, kept = _with_saved_tensors(lambda: layer(x))
    spatial_outputs = [t for t in kept if tuple(t.shape) == (2, 4, 12, 6 * 5)]
    assert spatial_outputs
    assert all(t.is_contiguous() for t in spatial_outputs)
    out.square().sum().backward()

    x_old = x.detach().clone().requires_grad_()
    spatial_old = layer.spatial.weight.detach().clone().requires_grad_()
    temporal_old = layer.temporal.weight.detach().clone().requires_grad_()
    assert layer.temporal.bias is not None
    bias_old = layer.temporal.bias.detach().clone().requires_grad_()
    frame_major = spatial_conv_as_matrix(x_old, spatial_old, (2, 2, 2, 2), 1)  # (b, c, t, h, w) view
    assert not frame_major.is_contiguous()
    b, c, t, h, w = frame_major.shape
    z = F.conv2d(frame_major.reshape(b, c, t, h * w), temporal_old[..., 0], bias_old, groups=c)
    out_old = z.reshape(b, c, z.shape[2], h, w)
    out_old.square().sum().backward()
    assert torch.equal(out, out_old)
    assert x.grad is not None
    assert x_old.grad is not None
    assert torch.equal(x.grad, x_old.grad)
    assert torch.equal(layer.spatial.weight.grad, spatial_old.grad)
    assert torch.equal(layer.temporal.weight.grad, temporal_old.grad)
    assert torch.equal(layer.temporal.bias.grad, bias_old.grad)
