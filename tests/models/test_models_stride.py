"""A spatially strided core layer: the same numbers as the unstrided layer, every `stride`-th pixel."""

from __future__ import annotations

import pytest
import torch
from openretina_models import create_model
from openretina_models.cores.convolutional import SpatioTemporalCore
from openretina_models.layers import FullConv3d, SpaceTimeSeparableConv3d


@pytest.mark.parametrize("cls", [SpaceTimeSeparableConv3d, FullConv3d])
def test_stride_keeps_every_other_pixel_of_the_same_convolution(cls: type) -> None:
    torch.manual_seed(0)
    plain = cls(2, 3, 4, 5, "same")
    strided = cls(2, 3, 4, 5, "same", stride=2)
    strided.load_state_dict(plain.state_dict())
    x = torch.randn(2, 2, 9, 11, 10)
    torch.testing.assert_close(strided(x), plain(x)[..., ::2, ::2])
    assert strided.warmup_frames == plain.warmup_frames


def test_core_readout_with_a_strided_first_layer_trains() -> None:
    torch.manual_seed(0)
    model = create_model(
        "core_readout",
        in_shape=(1, 20, 18),
        n_neurons={"a": 3},
        hidden_channels=[4, 4],
        temporal_kernel_sizes=[5, 3],
        spatial_kernel_sizes=[5, 3],
        stride=[2, 1],
    )
    assert model.core.output_shape(20, 18) == (4, 10, 9)
    out = model(torch.randn(2, 1, 12, 20, 18), "a")
    assert out.shape == (2, 12 - model.warmup_frames, 3)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_stride_must_be_positive_per_layer() -> None:
    with pytest.raises(ValueError, match="strides must be positive"):
        SpatioTemporalCore(1, hidden_channels=[2], stride=0)
    with pytest.raises(ValueError, match="stride has 3 entries"):
        SpatioTemporalCore(1, hidden_channels=[2, 2], stride=[1, 2, 1])
