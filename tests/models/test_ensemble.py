"""The ensemble model: the mean of its members, saved and loaded like any model."""

from __future__ import annotations

from pathlib import Path

import openretina_models as om
import pytest
import torch
from openretina_models.architectures import Ensemble, ensemble_of

IN_SHAPE = (2, 8, 6)
SESSIONS = {"s0": 4, "s1": 3}


def _member(seed: int, temporal: int = 5, n_neurons: dict[str, int] | None = None) -> torch.nn.Module:
    torch.manual_seed(seed)
    return om.create_model(
        "core_readout",
        in_shape=IN_SHAPE,
        n_neurons=n_neurons or SESSIONS,
        hidden_channels=[4],
        temporal_kernel_sizes=temporal,
        spatial_kernel_sizes=3,
    ).eval()


def test_saved_and_loaded_ensemble_predicts_the_mean_of_its_members(tmp_path: Path) -> None:
    # members with different warm-ups (4 and 6 frames): the ensemble keeps the frames all predict
    members = [_member(0, temporal=5), _member(1, temporal=7), _member(2, temporal=5)]
    om.save_model(ensemble_of(members), tmp_path / "ensemble", data_info={"sessions": {}})
    loaded = om.load_model(tmp_path / "ensemble")
    assert isinstance(loaded, Ensemble)
    assert loaded.warmup_frames == 6
    assert loaded.n_neurons == SESSIONS
    stimulus = torch.randn(2, *IN_SHAPE[:1], 20, *IN_SHAPE[1:])
    with torch.no_grad():
        expected = torch.stack([m(stimulus, "s1")[:, -14:] for m in members]).mean(0)
        torch.testing.assert_close(loaded(stimulus, "s1"), expected)
        both = loaded.forward_sessions(stimulus, ["s0", "s1"])
        torch.testing.assert_close(both["s1"], expected)
        assert both["s0"].shape == (2, 14, 4)
    # parameters: exactly the members' together
    assert sum(p.numel() for p in loaded.parameters()) == sum(
        p.numel() for m in members for p in m.parameters()
    )


def test_predict_applies_the_stored_normalisation_to_an_ensemble(tmp_path: Path) -> None:
    info = {"input_shape": list(IN_SHAPE), "stimulus_normalisation": {"mean": [1.0, 2.0], "std": [2.0, 4.0]}}
    members = [_member(0), _member(1)]
    om.save_model(ensemble_of(members), tmp_path / "e", data_info=info)
    loaded = om.load_model(tmp_path / "e")
    movie = torch.randn(2, 12, 8, 6).numpy()
    each = [om.predict(m, movie, "s0", data_info=info) for m in members]
    torch.testing.assert_close(
        torch.as_tensor(om.predict(loaded, movie, "s0")), torch.as_tensor((each[0] + each[1]) / 2)
    )


def test_members_of_other_neurons_or_frames_are_refused() -> None:
    with pytest.raises(ValueError, match="same sessions and neurons"):
        ensemble_of([_member(0), _member(1, n_neurons={"s0": 4, "s1": 2})])
    other = om.create_model("core_readout", in_shape=(1, 8, 6), n_neurons=SESSIONS, hidden_channels=[4])
    with pytest.raises(ValueError, match="frames of shape"):
        ensemble_of([_member(0), other])
    with pytest.raises(ValueError, match="at least one member"):
        ensemble_of([])


def test_a_checkpoint_without_members_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="members"):
        om.create_model("ensemble", in_shape=IN_SHAPE, n_neurons=SESSIONS)
