"""Where each model neuron looks: the linear receptive field around a grey screen, and the readout
figure's correction for a core that learned to shift its features."""

from __future__ import annotations

import numpy as np
import openretina_models as om
import pytest
import torch
from openretina_models.insilico import grey_receptive_fields


def _model(kernel_shift: int) -> om.CoreReadout:
    """One-layer core whose spatial kernel is a delta `kernel_shift` rows below its centre, so
    feature pixel (r, c) sees stimulus pixel (r + kernel_shift, c)."""
    torch.manual_seed(0)
    model = om.create_model(
        "core_readout",
        in_shape=(1, 15, 13),
        n_neurons={"s": 4},
        hidden_channels=[1],
        temporal_kernel_sizes=[3],
        spatial_kernel_sizes=[7],
        batch_norm=False,
        nonlinearity="elu",
    ).eval()
    with torch.no_grad():
        spatial = model.core.convs[0].spatial.weight
        spatial.zero_()
        spatial[..., 3 + kernel_shift, 3] = 1.0
        model.core.convs[0].temporal.weight.fill_(1.0)
        model.readout["s"].weights.fill_(1.0)
    centres = np.array([[4.0, 3.0], [7.0, 6.0], [9.0, 9.0], [5.0, 8.0]])  # (row, col)
    model.place_readout("s", centres)
    return model


def test_grey_fields_match_one_gradient_per_neuron() -> None:
    model = _model(0)
    fields = grey_receptive_fields(model, "s", chunk=3)  # two chunks
    assert fields.shape == (4, 1, model.warmup_frames + 1, 15, 13)
    clip = torch.zeros(1, 1, model.warmup_frames + 1, 15, 13, requires_grad=True)
    model(clip, "s")[0, -1, 2].backward()
    torch.testing.assert_close(fields[2], clip.grad[0])
    assert all(p.requires_grad for p in model.parameters())  # left as found


def test_unknown_session_is_named() -> None:
    with pytest.raises(ValueError, match="Unknown session 'x'"):
        grey_receptive_fields(_model(0), "x")


@pytest.mark.parametrize("kernel_shift", [0, 2, -1])
def test_readout_figure_undoes_the_core_shift(kernel_shift: int) -> None:
    """Readouts drawn where the neurons' fields peak: the core's learned offset is measured and
    added, whatever it is."""
    pytest.importorskip("matplotlib")
    from openretina_cli.evaluation.figures import readout_geometry

    geometry = readout_geometry(_model(kernel_shift), "s")
    assert geometry is not None
    assert geometry.shift[1] == pytest.approx(kernel_shift, abs=0.3)
    assert geometry.shift[0] == pytest.approx(0.0, abs=0.3)
    np.testing.assert_allclose(geometry.y, np.array([4.0, 7.0, 9.0, 5.0]) + kernel_shift, atol=0.3)
