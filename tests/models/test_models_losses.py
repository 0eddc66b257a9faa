"""Losses are means: duplicating the batch, the clip or the neurons leaves them unchanged."""

from __future__ import annotations

import pytest
import torch
from openretina_models import get_loss, losses


@pytest.fixture
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    prediction = torch.rand(4, 20, 6, generator=g) + 0.1
    target = torch.poisson(prediction * 2, generator=g)
    return prediction, target


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
@pytest.mark.parametrize("dim", [0, 1, 2], ids=["batch", "time", "neurons"])
def test_loss_scale_does_not_change_with_size(
    name: str, dim: int, pair: tuple[torch.Tensor, torch.Tensor]
) -> None:
    prediction, target = pair
    loss = get_loss(name)
    doubled = loss(torch.cat([prediction, prediction], dim=dim), torch.cat([target, target], dim=dim))
    torch.testing.assert_close(doubled, loss(prediction, target), rtol=1e-5, atol=1e-6)


def test_poisson_loss_matches_formula(pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    prediction, target = pair
    expected = (prediction - target * torch.log(prediction + 1e-8)).mean()
    torch.testing.assert_close(losses.poisson_loss(prediction, target), expected)
    # Minimised, over a constant rate, by the target mean.
    rates = torch.linspace(0.5, 3.0, 251)
    values = torch.stack([losses.poisson_loss(torch.full_like(target, r), target) for r in rates])
    assert rates[values.argmin()].item() == pytest.approx(target.mean().item(), abs=0.01)


def test_correlation_loss_is_zero_for_perfect_and_two_for_inverted(
    pair: tuple[torch.Tensor, torch.Tensor],
) -> None:
    prediction, _ = pair
    assert losses.correlation_loss(prediction, prediction * 3 + 1).item() == pytest.approx(0.0, abs=1e-5)
    assert losses.correlation_loss(prediction, -prediction).item() == pytest.approx(2.0, abs=1e-5)


def test_shape_mismatch_mentions_warmup(pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    prediction, target = pair
    with pytest.raises(ValueError, match="warmup_frames"):
        losses.mse_loss(prediction[:, 3:], target)


def test_unknown_loss_lists_choices() -> None:
    with pytest.raises(ValueError, match="poisson"):
        get_loss("poison")
