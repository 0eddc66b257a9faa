"""Data-dependent model defaults: `model.stride: auto` by frame size."""

from __future__ import annotations

import pytest
from openretina_cli.config.model import resolve_auto_stride


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
