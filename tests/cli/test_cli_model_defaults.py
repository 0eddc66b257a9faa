"""Data-dependent model defaults: `model.stride: auto` and spatial kernel sizes by frame size."""

from __future__ import annotations

import pytest
from openretina_cli.config.model import fit_spatial_kernels, resolve_auto_stride


@pytest.mark.parametrize(
    ("shape", "layers", "expected"),
    [
        ((1, 50, 50), 2, [2, 1]),
        ((2, 64, 64), 3, [2, 1, 1]),
        ((1, 40, 80), 1, [2]),
        ((2, 18, 16), 2, [1, 1]),
        ((1, 39, 200), 2, [1, 1]),  # the shorter side decides
    ],
)
def test_auto_stride_follows_the_frame_size(
    shape: tuple[int, int, int], layers: int, expected: list[int]
) -> None:
    hyper = {"stride": "auto", "hidden_channels": [4] * layers}
    note = resolve_auto_stride(hyper, shape)
    assert hyper["stride"] == expected
    assert note == f"model.stride=auto: {expected} for {shape[1]}x{shape[2]} frames"


def test_explicit_strides_are_left_alone() -> None:
    hyper = {"stride": [1, 1], "hidden_channels": [4, 4]}
    assert resolve_auto_stride(hyper, (1, 64, 64)) is None
    assert hyper["stride"] == [1, 1]


def test_a_misspelt_auto_is_a_config_error() -> None:
    from openretina_cli.errors import ConfigError

    with pytest.raises(ConfigError, match=r"model.stride must be auto.*got 'atuo'"):
        resolve_auto_stride({"stride": "atuo", "hidden_channels": [4]}, (1, 64, 64))


@pytest.mark.parametrize(
    ("shape", "hyper", "expected"),
    [
        ((1, 1, 1), {"spatial_kernel_sizes": [11, 5]}, [1, 1]),  # full-field: only the centre sees data
        ((2, 4, 4), {"spatial_kernel_sizes": [11, 5]}, [7, 5]),
        ((1, 3, 2), {"spatial_kernel_sizes": 9}, [5, 5]),  # the longer side decides
        ((1, 8, 8), {"spatial_kernel_sizes": [11, 11], "stride": [2, 1]}, [11, 7]),  # 4 px after the stride
        ((1, 9, 9), {"spatial_kernel_sizes": [11, 11], "pooling": [3, 1]}, [11, 5]),  # 3 px after pooling
    ],
)
def test_spatial_kernels_follow_the_frame_size(
    shape: tuple[int, int, int], hyper: dict, expected: list[int]
) -> None:
    hyper = {"hidden_channels": [4, 4], **hyper}
    before = hyper["spatial_kernel_sizes"]
    note = fit_spatial_kernels(hyper, shape)
    assert hyper["spatial_kernel_sizes"] == expected
    assert note is not None
    given = before if isinstance(before, list) else [before, before]
    assert note.startswith(
        f"model.spatial_kernel_sizes: {expected} (from {given}) for {shape[1]}x{shape[2]} frames"
    )


def test_kernels_that_fit_the_frame_are_left_alone() -> None:
    hyper = {"hidden_channels": [4, 4], "spatial_kernel_sizes": [11, 5]}
    assert fit_spatial_kernels(hyper, (1, 16, 8)) is None
    assert hyper["spatial_kernel_sizes"] == [11, 5]
    valid = {"hidden_channels": [4], "spatial_kernel_sizes": [5], "spatial_padding": "valid"}
    assert fit_spatial_kernels(valid, (1, 1, 1)) is None  # not "same": the model reports it
    assert fit_spatial_kernels({"hidden_channels": [4]}, (1, 1, 1)) is None  # no spatial kernels


def test_a_shrunk_kernel_computes_the_same_function() -> None:
    """The dropped weights only ever see the zero padding: cutting them changes no output."""
    import torch
    from openretina_models.cores.convolutional import SpatioTemporalCore as Core

    torch.manual_seed(0)
    wide = Core(1, hidden_channels=[3], temporal_kernel_sizes=[2], spatial_kernel_sizes=[11])
    hyper = {"hidden_channels": [3], "spatial_kernel_sizes": [11]}
    fit_spatial_kernels(hyper, (1, 2, 2))
    narrow = Core(
        1, hidden_channels=[3], temporal_kernel_sizes=[2], spatial_kernel_sizes=hyper["spatial_kernel_sizes"]
    )
    assert hyper["spatial_kernel_sizes"] == [3]
    narrow.load_state_dict(
        {
            k: v[..., 4:7, 4:7] if v.dim() == 5 and v.shape[-1] == 11 else v
            for k, v in wide.state_dict().items()
        }
    )
    stimulus = torch.randn(2, 1, 4, 2, 2)
    wide.eval(), narrow.eval()
    assert torch.allclose(wide(stimulus), narrow(stimulus), atol=1e-6)
