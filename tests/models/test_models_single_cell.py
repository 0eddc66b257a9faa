"""The single-cell models: each neuron sees only its crop, the numbers match a direct computation,
and receptive-field locations are checked and survive a checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openretina_models as om
import pytest
import torch
import torch.nn.functional as F

IN_SHAPE = (1, 12, 10)
LOCATIONS = {"s": [[2, 2], [9, 7]]}


def _model(name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    options = {"crop_size": [5, 4], "temporal_kernel_size": 4, "rf_locations": LOCATIONS, **kwargs}
    return om.create_model(name, in_shape=IN_SHAPE, n_neurons={"s": 2}, **options).eval()


@pytest.mark.parametrize("name", ["single_cell_lnp", "single_cell_sc"])
def test_each_neuron_sees_only_its_crop(name: str) -> None:
    model = _model(name)
    x = torch.randn(2, 1, 10, 12, 10)
    changed = x.clone()
    changed[..., 6:, :] = torch.randn_like(changed[..., 6:, :])  # rows 6-11: outside neuron 0's crop
    with torch.no_grad():
        before, after = model(x, "s"), model(changed, "s")
    torch.testing.assert_close(before[..., 0], after[..., 0])  # crop rows 0-4 around row 2
    assert not torch.allclose(before[..., 1], after[..., 1])  # crop rows 7-11 around row 9


def test_lnp_is_a_rank_one_filter_on_the_crop() -> None:
    model = _model("single_cell_lnp")
    readout = model.readout["s"]
    x = torch.randn(1, 1, 10, 12, 10)
    with torch.no_grad():
        out = model(x, "s")[0]
        spatial, temporal, bias = readout.spatial.numpy(), readout.temporal.numpy(), readout.bias.numpy()
    frames = x[0, 0].numpy()
    for neuron, (top, left) in enumerate([(0, 0), (7, 5)]):  # crops kept inside the frame
        crop = frames[:, top : top + 5, left : left + 4]
        projected = (crop * spatial[neuron, 0]).sum(axis=(1, 2))
        linear = np.array([projected[t : t + 4] @ temporal[neuron] for t in range(7)])
        expected = F.softplus(torch.as_tensor(linear + bias[neuron])).numpy()
        np.testing.assert_allclose(out[:, neuron].numpy(), expected, rtol=1e-4, atol=1e-5)


def test_spatial_contrast_is_gain_times_softplus_of_mean_and_contrast() -> None:
    kernel = [0.1, -0.3, 0.2, 1.0]
    model = _model("single_cell_sc", temporal_filter=kernel, rf_sigma=1.5)
    readout = model.readout["s"]
    x = torch.rand(1, 1, 9, 12, 10)
    with torch.no_grad():
        out = model(x, "s")[0].numpy()
        a = F.softplus(readout.gain_raw).numpy()
        w = F.softplus(readout.contrast_raw).numpy()
        b, c = readout.slope.numpy(), readout.offset.numpy()
    frames = x[0, 0].numpy().astype(np.float64)
    for neuron, ((row, col), (top, left)) in enumerate(zip(LOCATIONS["s"], [(0, 0), (7, 5)], strict=True)):
        rows, cols = np.mgrid[top : top + 5, left : left + 4]
        gauss = np.exp(-((rows - row) ** 2 + (cols - col) ** 2) / (2 * 1.5**2))
        gauss /= gauss.sum()
        crop = frames[:, top : top + 5, left : left + 4]
        for t in range(6):
            filtered = np.tensordot(kernel, crop[t : t + 4], axes=1)
            intensity = (gauss * filtered).sum()
            contrast = np.sqrt((gauss * (filtered - intensity) ** 2).sum())
            drive = b[neuron] * (intensity + w[neuron] * contrast) + c[neuron]
            assert out[t, neuron] == pytest.approx(a[neuron] * np.log1p(np.exp(drive)), rel=1e-4)


def test_only_the_four_scalars_learn_when_the_temporal_filter_is_given() -> None:
    model = _model("single_cell_sc", temporal_filter=[0.0, 0.0, 0.0, 1.0])
    names = sorted(name.split(".")[-1] for name, _ in model.named_parameters())
    assert names == ["contrast_raw", "gain_raw", "offset", "slope"]
    assert model.readout["s"].offset.shape == (2,)


def test_locations_and_sizes_are_checked() -> None:
    with pytest.raises(ValueError, match="2 \\[row, col\\] pairs for 3 neurons"):
        om.create_model(
            "single_cell_lnp", in_shape=IN_SHAPE, n_neurons={"s": 3}, rf_locations=LOCATIONS, crop_size=[5, 4]
        )
    with pytest.raises(ValueError, match="outside the 12x10 frame"):
        _model("single_cell_lnp", rf_locations={"s": [[2, 2], [12, 0]]})
    with pytest.raises(ValueError, match="must be positive and fit"):
        _model("single_cell_sc", crop_size=[15, 15])
    with pytest.raises(ValueError, match="not in n_neurons"):
        _model("single_cell_lnp", rf_locations={"other": [[1, 1]]})
    with pytest.raises(ValueError, match="temporal_filter has 2 values"):
        _model("single_cell_sc", temporal_filter=[1.0, 0.0])


@pytest.mark.parametrize("name", ["single_cell_lnp", "single_cell_sc"])
def test_checkpoint_round_trip_keeps_locations(name: str, tmp_path: Path) -> None:
    model = _model(name)
    assert model.architecture["kwargs"]["rf_locations"] == LOCATIONS
    om.save_model(model, tmp_path / "model")
    loaded = om.load_model(tmp_path / "model")
    x = torch.randn(1, 1, 8, 12, 10)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, "s"), model(x, "s"))


def _fit(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, steps: int = 150) -> None:
    optimiser = torch.optim.Adam(model.parameters(), lr=0.05)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only add overhead (100x on a busy machine)
    try:
        for _ in range(steps):
            optimiser.zero_grad()
            rate = model(x, "s")
            (rate - target * torch.log(rate + 1e-8)).mean().backward()  # Poisson
            optimiser.step()
    finally:
        torch.set_num_threads(threads)


def _cell(name: str, **kwargs) -> torch.nn.Module:
    options = {"crop_size": [5, 5], "temporal_kernel_size": 4, "rf_locations": {"s": [[5, 4]]}, **kwargs}
    return om.create_model(name, in_shape=IN_SHAPE, n_neurons={"s": 1}, **options)


def test_lnp_recovers_a_known_cell() -> None:
    torch.manual_seed(1)
    true = _cell("single_cell_lnp")
    rows, cols = torch.meshgrid(torch.arange(5.0), torch.arange(5.0), indexing="ij")
    distance = (rows - 2) ** 2 + (cols - 2) ** 2
    with torch.no_grad():  # centre-surround in space, biphasic in time
        true.readout["s"].spatial.copy_(torch.exp(-distance / 2) - 0.5 * torch.exp(-distance / 8))
        true.readout["s"].temporal.copy_(torch.tensor([[-0.3, 0.2, 0.6, 1.0]]))
        x = torch.randn(16, 1, 24, *IN_SHAPE[1:])
        target = true(x, "s")
    fitted = _cell("single_cell_lnp")
    _fit(fitted, x, target)
    with torch.no_grad():
        space_time = [
            torch.einsum("nchw,nt->nchwt", m.readout["s"].full_frame_filters(), m.readout["s"].temporal)
            for m in (fitted, true)
        ]
    assert torch.corrcoef(torch.stack([f.flatten() for f in space_time]))[0, 1] > 0.99


def test_spatial_contrast_model_fits_a_known_cell() -> None:
    torch.manual_seed(2)
    kernel = [0.0, 0.2, 0.5, 1.0]
    true = _cell("single_cell_sc", temporal_filter=kernel)
    with torch.no_grad():  # a cell that responds to contrast as much as to mean intensity
        readout = true.readout["s"]
        readout.contrast_raw.fill_(float(np.log(np.expm1(1.5))))
        readout.slope.fill_(2.0)
        readout.offset.fill_(-1.0)
        x = torch.randn(16, 1, 24, *IN_SHAPE[1:])
        target = true(x, "s")
    fitted = _cell("single_cell_sc", temporal_filter=kernel)
    _fit(fitted, x, target)
    with torch.no_grad():
        predicted = fitted(x, "s")
    assert torch.corrcoef(torch.stack([predicted.flatten(), target.flatten()]))[0, 1] > 0.95
    assert (
        F.softplus(fitted.readout["s"].contrast_raw).item() > 0.5
    )  # it found the contrast term (starts at 0.1)


def test_learned_temporal_filters_start_spread_over_recent_lags() -> None:
    """A start at the current frame alone sees nothing in white noise (issue 24): the start spreads
    over the recent lags, sums to 1 and peaks a few frames back."""
    from openretina_models.readouts.linear_filter import temporal_start

    start = temporal_start(2, 30)
    assert start.shape == (2, 30)
    torch.testing.assert_close(start.sum(1), torch.ones(2))
    assert int(start[0].argmax()) == 30 - 5  # tau = 5 frames: the peak is 4 frames back
    assert start[0, -1] < 0.5 * start[0].max()  # the current frame (the last entry) weighs less
    for name in ("single_cell_lnp", "single_cell_sc"):
        temporal = _model(name, temporal_kernel_size=30).readout["s"].temporal.detach()
        assert (temporal[:, :-1].abs().sum(1) > temporal[:, -1].abs()).all()


def test_the_lnp_start_has_a_gradient_towards_a_delayed_receptive_field() -> None:
    """Responses 3 frames after their white-noise stimulus: at the start, the spatial weights'
    gradient already points at the receptive field (with a start at the current frame alone it is
    noise, and Adam's first steps wander)."""
    rng = np.random.default_rng(0)
    frames = rng.choice([-1.0, 1.0], (1, 1, 2000, 12, 10)).astype(np.float32)
    field = np.zeros((12, 10), np.float32)
    field[1:4, 1:4] = 1.0  # inside neuron 0's crop (rows 0-4, columns 0-3)
    rates = np.log1p(np.exp(np.roll((frames[0, 0] * field).sum(axis=(1, 2)), 3) / 3.0))
    counts = torch.as_tensor(rng.poisson(rates)[None, :, None].repeat(2, axis=2), dtype=torch.float32)
    model = _model("single_cell_lnp", temporal_kernel_size=12).train()
    predicted = model(torch.as_tensor(frames), "s")
    (predicted - counts[:, 11:] * torch.log(predicted + 1e-8)).mean().backward()
    gradient = model.readout["s"].spatial.grad[0, 0].numpy()
    sign = np.sign(model.readout["s"].temporal.detach()[0].sum().item())
    towards = -sign * gradient.ravel()
    assert np.corrcoef(towards, field[0:5, 0:4].ravel())[0, 1] > 0.8
