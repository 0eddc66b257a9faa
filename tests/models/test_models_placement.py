"""Readout positions placed at receptive-field centres given in stimulus pixels."""

from __future__ import annotations

import numpy as np
import openretina_models as om
import pytest
import torch

GEOMETRIES = {
    "same": {},
    "stride_2": {"stride": [2, 1]},
    "valid": {"spatial_padding": "valid"},
    "pooled": {"pooling": [2, 1]},
}


def _model(**options: object) -> om.CoreReadout:
    torch.manual_seed(0)
    kwargs = {"hidden_channels": [2, 2], "temporal_kernel_sizes": [2, 2], "spatial_kernel_sizes": [5, 3]}
    return om.create_model(
        "core_readout", in_shape=(1, 24, 20), n_neurons={"s": 3}, **{**kwargs, **options}
    ).eval()


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_feature_pixels_maps_feature_centres_to_stimulus_pixels(geometry: str) -> None:
    """A symmetric blob in the stimulus gives symmetric features whose centre maps back onto it."""
    model = _model(**GEOMETRIES[geometry])
    with torch.no_grad():
        for conv in model.core.convs:
            conv.spatial.weight.fill_(1.0)
            conv.temporal.weight.fill_(1.0)
    scale, offset = model.core.feature_pixels()
    row, col = scale * 5 + offset, scale * 4 + offset  # a feature pixel's centre
    stimulus = torch.zeros(1, 1, model.warmup_frames + 1, 24, 20)
    rows = [int(np.floor(row)), int(np.ceil(row))]
    cols = [int(np.floor(col)), int(np.ceil(col))]
    stimulus[..., rows[0] : rows[1] + 1, cols[0] : cols[1] + 1] = 1.0
    with torch.no_grad():
        features = model.core(stimulus).sum(dim=(0, 1, 2)).double()  # (H', W')
    features = features - features.min()
    ys, xs = np.mgrid[0 : features.shape[0], 0 : features.shape[1]]
    mass = features.numpy()
    centre = ((mass * ys).sum() / mass.sum(), (mass * xs).sum() / mass.sum())
    np.testing.assert_allclose(
        [scale * centre[0] + offset, scale * centre[1] + offset], [row, col], atol=1e-6
    )


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
@pytest.mark.parametrize("readout", ["gaussian_mask", "point_gaussian"])
def test_placed_neurons_read_the_feature_pixel_of_their_centre(geometry: str, readout: str) -> None:
    model = _model(readout=readout, **GEOMETRIES[geometry])
    before = model.readout["s"].position.detach().clone()
    scale, offset = model.core.feature_pixels()
    target = np.array(
        [[scale * 3 + offset, scale * 5 + offset], [scale * 1 + offset, 0.0 + offset], [np.nan] * 2]
    )
    placed = model.place_readout("s", target)
    assert placed.tolist() == [True, True, False]
    _, height, width = model.readout["s"].in_shape
    position = model.readout["s"].position.detach()
    # neuron 0 sits on feature pixel (row 3, col 5); neuron 1 on row 1, col 0; neuron 2 did not move
    expected = torch.tensor(
        [[2 * 5 / (width - 1) - 1, 2 * 3 / (height - 1) - 1], [-1.0, 2 * 1 / (height - 1) - 1]]
    )
    torch.testing.assert_close(position[:2], expected.to(position.dtype))
    torch.testing.assert_close(position[2], before[2])
    if readout == "gaussian_mask":
        mask = model.readout["s"].masks()[0]
        assert divmod(int(mask.argmax()), width) == (3, 5)


def test_positions_outside_the_image_are_clipped_and_shapes_checked() -> None:
    model = _model()
    model.place_readout("s", np.array([[-50.0, 500.0], [0.0, 0.0], [23.0, 19.0]]))
    position = model.readout["s"].position.detach()
    assert position.abs().max() <= 1.0
    torch.testing.assert_close(position[0], torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match=r"centres must be \(3, 2\)"):
        model.place_readout("s", np.zeros((2, 2)))


def test_a_readout_without_positions_says_so() -> None:
    model = _model(readout="factorised")
    with pytest.raises(TypeError, match="no positions"):
        model.place_readout("s", np.zeros((3, 2)))
