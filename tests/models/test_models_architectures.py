"""Every registered architecture: shapes, gradients, causality and adding sessions."""

from __future__ import annotations

import openretina_models as om
import pytest
import torch
from models_testkit import IN_SHAPE, N_NEURONS, VARIANTS, build, variant_id

T = 24


@pytest.fixture(params=VARIANTS, ids=variant_id)
def variant(request: pytest.FixtureRequest) -> tuple[str, dict]:
    return request.param


def test_output_shape_and_finite(variant: tuple[str, dict], device: torch.device) -> None:
    model = build(*variant).to(device)
    x = torch.randn(model.stimulus_shape(T, batch=3), device=device)
    for session, n in N_NEURONS.items():
        y = model(x, session)
        assert y.shape == (3, T - model.warmup_frames, n)
        assert torch.isfinite(y).all()
        assert (y > 0).all() or variant[1].get("readout_nonlinearity") == "identity"
    assert model.regularisation("session_a").shape == ()


def test_every_parameter_gets_a_gradient(variant: tuple[str, dict], device: torch.device) -> None:
    model = build(*variant).to(device).train()
    x = torch.randn(model.stimulus_shape(T, batch=2), device=device)
    loss = model(x, "session_a").mean() + model(x, "session_b").mean() + model.regularisation("session_a")
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_causal_past_outputs_ignore_future_frames(variant: tuple[str, dict], device: torch.device) -> None:
    model = build(*variant).to(device).eval()
    x = torch.randn(model.stimulus_shape(T, batch=2), device=device)
    cut = T - 5  # frames >= cut change; outputs that end before cut must not
    future = x.clone()
    future[:, :, cut:] = torch.randn_like(future[:, :, cut:]) * 10
    with torch.no_grad():
        before, after = model(x, "session_a"), model(future, "session_a")
    visible = cut - model.warmup_frames  # output i ends at input frame i + warmup_frames
    assert torch.equal(before[:, :visible], after[:, :visible])
    assert not torch.equal(before[:, visible:], after[:, visible:])


def test_forward_sessions_equals_forward_per_session(variant: tuple[str, dict], device: torch.device) -> None:
    model = build(*variant).to(device).eval()
    x = torch.randn(model.stimulus_shape(T, batch=2), device=device)
    with torch.no_grad():
        together = model.forward_sessions(x, list(N_NEURONS))
        for session in N_NEURONS:
            torch.testing.assert_close(together[session], model(x, session))


def test_predict_sessions_equals_one_pass_each(variant: tuple[str, dict], device: torch.device) -> None:
    """Chunked, all sessions at once: the same numbers as one forward pass per session."""
    model = build(*variant).to(device).train()
    movie = torch.randn(model.stimulus_shape(3 * T, batch=1))[0].numpy()
    predicted = om.predict_sessions(model, movie, list(N_NEURONS), chunk_frames=model.warmup_frames + 7)
    assert model.training  # the model's mode is restored
    model.eval()
    with torch.no_grad():
        for session in N_NEURONS:
            expected = model(torch.from_numpy(movie)[None].to(device), session)[0].cpu().numpy()
            assert predicted[session].shape == expected.shape
            torch.testing.assert_close(torch.from_numpy(predicted[session]), torch.from_numpy(expected))


def test_add_sessions_keeps_old_outputs(variant: tuple[str, dict], device: torch.device) -> None:
    model = build(*variant).to(device).eval()
    x = torch.randn(model.stimulus_shape(T, batch=2), device=device)
    with torch.no_grad():
        before = model(x, "session_a")
    model.readout.add_sessions({"new": 3})
    assert not model.readout["new"].training  # joins in the model's mode
    with torch.no_grad():
        assert torch.equal(model(x, "session_a"), before)
        assert model(x, "new").shape == (2, T - model.warmup_frames, 3)
    assert model.n_neurons == {**N_NEURONS, "new": 3}
    assert next(model.readout["new"].parameters()).device.type == device.type


def test_bias_starts_at_mean_activity() -> None:
    model = build("core_readout", {"readout_nonlinearity": "softplus"})
    start = torch.nn.functional.softplus(model.readout["session_a"].bias)
    torch.testing.assert_close(start, torch.linspace(0.2, 2.0, 5), rtol=1e-4, atol=1e-4)


def test_unknown_model_and_hyperparameter_errors_name_alternatives() -> None:
    with pytest.raises(KeyError, match="core_readout"):
        om.create_model("core_reedout", in_shape=IN_SHAPE, n_neurons=N_NEURONS)
    with pytest.raises(TypeError, match="hidden_channels"):
        om.create_model("core_readout", in_shape=IN_SHAPE, n_neurons=N_NEURONS, hiden_channels=[4])
    with pytest.raises(ValueError, match="spatial_kernel_sizes"):
        om.create_model(
            "core_readout", in_shape=IN_SHAPE, n_neurons=N_NEURONS, spatial_kernel_sizes=[3, 3, 3]
        )


def test_unknown_session_is_a_clear_error() -> None:
    model = build("lnp", {})
    with pytest.raises(KeyError, match="session_a"):
        model(torch.randn(model.stimulus_shape(T)), "session_c")


def test_wrong_stimulus_shape_is_a_clear_error() -> None:
    model = build("core_readout", {})
    with pytest.raises(ValueError, match=r"\(batch, 2, time, 10, 8\)"):
        model(torch.randn(1, 3, T, 10, 8), "session_a")
    with pytest.raises(ValueError, match="warmup_frames"):
        model(torch.randn(model.stimulus_shape(model.warmup_frames)), "session_a")


def test_architecture_record_is_json_with_defaults_filled() -> None:
    model = build("core_readout", {})
    record = model.architecture
    assert record["name"] == "core_readout"
    assert record["kwargs"]["in_shape"] == list(IN_SHAPE)
    assert record["kwargs"]["readout"] == "gaussian_mask"  # a default, stored explicitly
    assert "mean_activity" not in record["kwargs"]


def test_regularisers_are_means_independent_of_layer_width() -> None:
    def core_penalty(channels: int) -> float:
        torch.manual_seed(0)
        model = om.create_model(
            "core_readout",
            in_shape=IN_SHAPE,
            n_neurons={"s": 2},
            hidden_channels=[channels, channels],
            gamma_input=1.0,
            gamma_hidden=1.0,
            gamma_in_sparse=1.0,
            gamma_temporal=1.0,
        )
        for conv in model.core.convs:  # identical kernels whatever the width
            conv.spatial.weight.data.fill_(0.1)
            conv.temporal.weight.data.copy_(
                torch.linspace(0, 1, conv.temporal.weight.shape[2]).view(1, 1, -1, 1, 1)
            )
        return model.core.regularisation().item()

    assert core_penalty(4) == pytest.approx(core_penalty(16), rel=1e-5)


def test_gaussian_only_options_are_rejected_for_the_factorised_readout() -> None:
    with pytest.raises(ValueError, match="readout_position_scale"):
        om.create_model(
            "core_readout",
            in_shape=IN_SHAPE,
            n_neurons=N_NEURONS,
            readout="factorised",
            readout_position_scale=2.0,
        )


def test_position_scale_keeps_positions_but_speeds_their_updates() -> None:
    slow = build("core_readout", {"readout_position_scale": 1.0}).readout["session_a"]
    fast = build("core_readout", {"readout_position_scale": 5.0}).readout["session_a"]
    torch.testing.assert_close(slow.position, fast.position)  # same start, same seed
    for readout in (slow, fast):
        with torch.no_grad():
            readout.position_raw.add_(0.01)  # one Adam-sized step in parameter units
    moved = (fast.position - slow.position).abs().mean().item()
    assert moved == pytest.approx(0.04, rel=1e-4)
