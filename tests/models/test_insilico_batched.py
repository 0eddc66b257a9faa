"""openretina_models.insilico.optimise_targets: many targets in chunks, each from its own seed.

The guarantee `openretina mei` relies on lives here: a target's stimulus depends only on its own
seed and the settings, whatever it is batched with and whatever the batch size.
"""

from __future__ import annotations

import pytest
import torch
from models_testkit import IN_SHAPE, build
from openretina_models import insilico

SESSION = "session_b"  # 7 neurons


@pytest.fixture
def model() -> torch.nn.Module:
    return build("core_readout", {}).eval()


def _shape(model: torch.nn.Module) -> tuple[int, int, int, int]:
    c, h, w = IN_SHAPE
    return (c, model.warmup_frames + 4, h, w)


SETTINGS = {
    "constraints": [insilico.L2Norm(3.0), insilico.ValueRange(-1.0, 1.0)],
    "stopper": insilico.FixedIterations(6),
    "jitter": insilico.Jitter(1),
    "lr": 0.5,
}


@pytest.mark.parametrize("batch_size", [1, 2, 3, 64])
def test_a_targets_stimulus_depends_only_on_its_own_seed(model, batch_size: int) -> None:
    neurons = [0, 3, 6, 2, 5]
    seeds = [100 + n for n in neurons]
    objective = insilico.ResponseObjective(model, SESSION, neurons, window=(1, 4))
    result = insilico.optimise_targets(
        objective, model, _shape(model), seeds, batch_size=batch_size, **SETTINGS
    )
    assert result.stimuli.shape == (5, *_shape(model))
    assert len(result.chunks) == -(-5 // batch_size)
    for b, (neuron, seed) in enumerate(zip(neurons, seeds, strict=True)):
        alone = insilico.optimise_targets(
            insilico.ResponseObjective(model, SESSION, [neuron], window=(1, 4)),
            model,
            _shape(model),
            [seed],
            **SETTINGS,
        )
        torch.testing.assert_close(result.stimuli[b], alone.stimuli[0], atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(result.values[b], alone.values[0], atol=1e-5, rtol=1e-4)
        assert result.iterations[b] == alone.iterations[0]
    assert result.stalled == [False] * 5


def test_the_same_call_gives_the_same_stimuli_bit_for_bit(model) -> None:
    objective = insilico.ResponseObjective(model, SESSION, [1, 4, 2], window=(1, 4))
    first = insilico.optimise_targets(objective, model, _shape(model), [7, 8, 9], batch_size=2, **SETTINGS)
    again = insilico.optimise_targets(objective, model, _shape(model), [7, 8, 9], batch_size=2, **SETTINGS)
    assert torch.equal(first.stimuli, again.stimuli)


def test_one_seed_per_target_and_a_positive_batch_size(model) -> None:
    objective = insilico.ResponseObjective(model, SESSION, [1, 4], window=(1, 4))
    with pytest.raises(ValueError, match="one seed per target"):
        insilico.optimise_targets(objective, model, _shape(model), [1, 2, 3])
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        insilico.optimise_targets(objective, model, _shape(model), [1, 2], batch_size=0)


def test_an_unmoved_stimulus_is_marked_stalled(model) -> None:
    objective = insilico.ResponseObjective(model, SESSION, [1, 4], window=(1, 4))
    still = {**SETTINGS, "lr": 1e-30, "jitter": None}
    result = insilico.optimise_targets(objective, model, _shape(model), [1, 2], **still)
    assert result.stalled == [True, True]


def _subset_matches(objective: insilico.Objective, indices: list[int], model) -> None:
    """Scoring stimuli b of a subset equals scoring them at positions indices[b] of the whole."""
    full = objective.batch_size
    stimuli = insilico.random_start(_shape(model), range(full))
    with torch.no_grad():
        whole = objective(stimuli)
        part = objective.subset(indices)(stimuli[indices])
    assert part.shape == (len(indices),)
    torch.testing.assert_close(part, whole[indices])


def test_every_objective_selects_a_subset_of_its_targets(model) -> None:
    response = insilico.ResponseObjective(model, SESSION, [0, [1, 2], 5, 6], window=(1, 4))
    _subset_matches(response, [2, 0], model)
    contrastive = insilico.ContrastiveObjective(model, SESSION, [[0, 1], [2, 3], [4, 5, 6]], temperature=0.5)
    _subset_matches(contrastive, [2, 1], model)
    inner = insilico.InnerUnitObjective(model, "core.blocks.0", [0, 1, 2])
    _subset_matches(inner, [1], model)
    _subset_matches(-response + 2.0 * response, [3, 1], model)


def test_an_objective_without_targets_to_select_says_so() -> None:
    class Custom(insilico.Objective):
        def __call__(self, stimuli: torch.Tensor) -> torch.Tensor:
            return stimuli.flatten(1).sum(1)

    with pytest.raises(NotImplementedError, match="Custom cannot select a subset"):
        Custom().subset([0])
