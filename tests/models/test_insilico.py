"""openretina_models.insilico: objectives, constraints, batched optimisation and analyses."""

from __future__ import annotations

import functools

import numpy as np
import openretina_models as om
import pytest
import torch
from models_testkit import IN_SHAPE, build
from openretina_models import insilico

SESSION = "session_b"  # 7 neurons


@pytest.fixture
def model() -> torch.nn.Module:
    return build("core_readout", {}).eval()


def _frames(model: torch.nn.Module, output_frames: int = 4) -> int:
    return model.warmup_frames + output_frames


def _shape(model: torch.nn.Module) -> tuple[int, int, int, int]:
    c, h, w = IN_SHAPE
    return (c, _frames(model), h, w)


def _run(model, targets, seeds, stopper, **options) -> insilico.OptimisationResult:
    objective = insilico.ResponseObjective(model, SESSION, targets, window=(1, 4))
    start = insilico.random_start(_shape(model), seeds)
    return insilico.optimise_stimuli(objective, model, start, stopper=stopper, seeds=seeds, **options)


CONSTRAINTS = [
    insilico.TemporalSmoothing(1.0),
    insilico.SpatialBlur(0.5),
    insilico.L2Norm(3.0),
    insilico.ValueRange([-0.5, -1.0], [1.0, 0.4]),
]


@pytest.mark.parametrize(
    ("stopper", "optimiser"),
    [
        (insilico.FixedIterations(12), functools.partial(torch.optim.Adam, lr=0.1)),
        (insilico.Plateau(patience=2, min_delta=0.02, max_iterations=25), None),
        (insilico.FixedIterations(8), functools.partial(torch.optim.SGD, lr=0.5, momentum=0.9)),
    ],
    ids=["adam-fixed", "adam-plateau", "sgd-momentum"],
)
def test_a_batch_gives_the_stimuli_of_separate_runs(model, stopper, optimiser) -> None:
    targets, seeds = [0, 3, 6, 2], [11, 12, 13, 14]
    options = {"constraints": CONSTRAINTS, "optimiser": optimiser, "jitter": insilico.Jitter(1)}
    batch = _run(model, targets, seeds, stopper, **options)
    for b, (target, seed) in enumerate(zip(targets, seeds, strict=True)):
        alone = _run(model, [target], [seed], stopper, **options)
        torch.testing.assert_close(batch.stimuli[b], alone.stimuli[0], atol=2e-5, rtol=1e-4)
        assert batch.iterations[b] == alone.iterations[0]
        torch.testing.assert_close(batch.values[b], alone.values[0], atol=1e-5, rtol=1e-4)
    assert batch.stimuli.shape == (4, *_shape(model))
    if isinstance(stopper, insilico.Plateau):
        assert min(batch.iterations) < stopper.max_iterations  # some stopped on their plateau


def test_optimisation_raises_each_targets_response_and_constraints_hold(model) -> None:
    result = _run(model, range(7), range(7), insilico.FixedIterations(30), constraints=CONSTRAINTS)
    assert bool((result.values > result.start_values).all())
    norms = result.stimuli.flatten(1).norm(dim=1)
    assert float(norms.max()) <= 3.0 + 1e-5
    assert float(result.stimuli[:, 0].min()) >= -0.5
    assert float(result.stimuli[:, 0].max()) <= 1.0
    assert float(result.stimuli[:, 1].min()) >= -1.0
    assert float(result.stimuli[:, 1].max()) <= 0.4
    assert all(p.requires_grad for p in model.parameters())  # unfrozen afterwards


def test_a_negated_objective_lowers_the_response(model) -> None:
    objective = insilico.ResponseObjective(model, SESSION, [1, 4])
    start = insilico.random_start(_shape(model), [0, 1])
    result = insilico.optimise_stimuli(-objective, model, start, stopper=insilico.FixedIterations(20))
    assert bool((result.values > result.start_values).all())  # -response rose: the response fell
    with torch.no_grad():
        assert bool((objective(result.stimuli) < objective(start)).all())


def test_objectives_compose() -> None:
    model = build("lnp", {}).eval()
    first = insilico.ResponseObjective(model, SESSION, [0, 1])
    second = insilico.ResponseObjective(model, SESSION, [2, 3])
    x = torch.randn(2, 2, model.warmup_frames + 3, *IN_SHAPE[1:])
    with torch.no_grad():
        torch.testing.assert_close((first + 2.0 * second)(x), first(x) + 2 * second(x))
        torch.testing.assert_close((-first)(x), -first(x))
    with pytest.raises(ValueError, match="for 2 and 3 stimuli"):
        first + insilico.ResponseObjective(model, SESSION, [0, 1, 2])


def test_a_group_target_averages_its_neurons(model) -> None:
    x = torch.randn(1, *_shape(model))
    with torch.no_grad():
        targets = [np.int64(1), [1, 2, 5]]
        group = insilico.ResponseObjective(model, SESSION, targets, window=(0, 2))(torch.cat([x, x]))[1]
        out = model(x, SESSION)[0, 0:2, [1, 2, 5]].mean()
    torch.testing.assert_close(group, out)


def test_the_contrastive_objective_separates_its_target_cluster(model) -> None:
    clusters = [[0, 1, 2], [3, 4], [5, 6]]
    objective = insilico.ContrastiveObjective(model, SESSION, clusters, temperature=0.5)
    start = insilico.random_start(_shape(model), range(3))
    result = insilico.optimise_stimuli(objective, model, start, stopper=insilico.FixedIterations(20))
    assert bool((result.values > result.start_values).all())
    with torch.no_grad():
        before = objective.responses.responses(start)  # (3 stimuli, 3 clusters)
        after = objective.responses.responses(result.stimuli)
    for target in range(3):  # the target cluster gained on the best of the others
        others = [k for k in range(3) if k != target]
        margin_before = before[target, target] - before[target, others].max()
        assert after[target, target] - after[target, others].max() > margin_before
    assert bool((result.values <= 0).all())  # a log-probability
    with pytest.raises(ValueError, match="two clusters"):
        insilico.ContrastiveObjective(model, SESSION, [[0, 1]])
    with pytest.raises(ValueError, match="temperature"):
        insilico.ContrastiveObjective(model, SESSION, clusters, temperature=0)


def test_an_inner_unit_is_driven_through_a_hook_that_is_removed(model) -> None:
    layer = "core.blocks.0"
    objective = insilico.InnerUnitObjective(model, layer, channels=[0, 3])
    start = insilico.random_start(_shape(model), [5, 6])
    result = insilico.optimise_stimuli(
        objective, model, start, constraints=[insilico.L2Norm(5.0)], stopper=insilico.FixedIterations(15)
    )
    assert bool((result.values > result.start_values).all())
    assert not model.get_submodule(layer)._forward_hooks
    with torch.no_grad():
        features = model.core.blocks[0](model.core.convs[0](result.stimuli))
    centre = features[:, :, :, features.shape[3] // 2, features.shape[4] // 2]
    torch.testing.assert_close(result.values, torch.stack([centre[0, 0].mean(), centre[1, 3].mean()]))
    with pytest.raises(ValueError, match="Unknown layer"):
        insilico.InnerUnitObjective(model, "core.nope", [0])
    with pytest.raises(ValueError, match="Channel 9"):
        insilico.InnerUnitObjective(model, layer, [9])(start[:1])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda m: insilico.ResponseObjective(m, "nope", [0]), "Unknown session 'nope'"),
        (lambda m: insilico.ResponseObjective(m, SESSION, [7]), "Neuron index 7"),
        (lambda m: insilico.ResponseObjective(m, SESSION, [[]]), "at least one neuron"),
        (lambda m: insilico.ValueRange(1.0, -1.0), "min 1.0 > max -1.0"),
        (lambda m: insilico.ValueRange(0.5, 1.0), "excludes 0"),
        (lambda m: insilico.L2Norm(0.0), "norm must be positive"),
        (lambda m: insilico.TemporalSmoothing(-1.0), "sigma must be positive"),
        (lambda m: insilico.Plateau(patience=0), "patience"),
    ],
)
def test_bad_settings_say_what_is_wrong(model, make, message) -> None:
    with pytest.raises(ValueError, match=message):
        make(model)


def test_a_window_longer_than_the_output_is_refused_before_any_step(model) -> None:
    objective = insilico.ResponseObjective(model, SESSION, [0], window=(0, 5))
    start = insilico.random_start(_shape(model), [0])  # 4 output frames
    with pytest.raises(ValueError, match=r"window 0:5 is longer .* \(4 frames"):
        insilico.optimise_stimuli(objective, model, start)
    with pytest.raises(ValueError, match="2 stimuli"):
        insilico.optimise_stimuli(objective, model, torch.cat([start, start]))


def test_any_number_of_channels() -> None:
    torch.manual_seed(0)
    model = om.create_model(
        "core_readout",
        in_shape=(3, 8, 8),
        n_neurons={"s": 3},
        hidden_channels=[4],
        temporal_kernel_sizes=3,
        spatial_kernel_sizes=3,
    ).eval()
    objective = insilico.ResponseObjective(model, "s", [0, 1, 2])
    start = insilico.random_start((3, 6, 8, 8), range(3))
    constraints = [insilico.ValueRange([-1, -2, -3], [1, 2, 3]), insilico.L2Norm(4.0)]
    result = insilico.optimise_stimuli(
        objective, model, start, constraints=constraints, stopper=insilico.FixedIterations(5)
    )
    assert result.stimuli.shape == (3, 3, 6, 8, 8)
    assert float(result.stimuli[:, 2].abs().max()) <= 3.0


def test_chromatic_tuning_gradients_match_finite_differences(model) -> None:
    stimulus = torch.randn(_shape(model))
    contrasts = [-1.0, 0.0, 0.5, 1.0]
    tuning = insilico.chromatic_tuning(model, stimulus, SESSION, contrasts, neurons=[2, 5], window=(0, 3))
    assert tuning.responses.shape == (4, 4, 2)
    assert tuning.gradients.shape == (4, 4, 2, 2)

    def response(g: float, u: float) -> torch.Tensor:
        scaled = stimulus * torch.tensor([g, u]).view(2, 1, 1, 1)
        with torch.no_grad():
            return model(scaled[None], SESSION)[0, 0:3, [2, 5]].mean(dim=0).double()

    torch.testing.assert_close(tuning.responses[2, 3].double(), response(0.5, 1.0), atol=1e-5, rtol=1e-4)
    eps = 1e-2
    numeric = (response(0.5 + eps, 1.0) - response(0.5 - eps, 1.0)) / (2 * eps)
    torch.testing.assert_close(tuning.gradients[2, 3, :, 0].double(), numeric, atol=2e-3, rtol=2e-2)
    per_channel = insilico.chromatic_tuning(model, stimulus, SESSION, [[0.0, 1.0], [1.0]])
    assert per_channel.responses.shape == (2, 1, 7)


def test_local_sta_is_the_linear_filter_of_a_linear_model() -> None:
    torch.manual_seed(0)
    model = om.create_model(
        "lnp", in_shape=(2, 6, 5), n_neurons={"s": 3}, temporal_kernel_size=4, output_nonlinearity="exp"
    ).eval()
    images = torch.randn(2, 2, 4, 6, 5) * 0.1  # one output frame each
    sta = insilico.local_sta(model, images, "s")
    assert sta.shape == (2, 3, 2, 4, 6, 5)
    with torch.no_grad():
        rates = model(images, "s")[:, 0]  # (2, 3)
    # exp nonlinearity: gradient = rate x filter, so gradient / rate is the same filter everywhere
    filters = sta / rates[:, :, None, None, None, None]
    torch.testing.assert_close(filters[0], filters[1], atol=1e-5, rtol=1e-4)


def test_default_ranges_come_from_the_model_or_a_documented_fallback() -> None:
    low, high, note = insilico.default_ranges({"stimulus_range": {"min": [-2.0, 0.5], "max": [3.0, 4.0]}}, 2)
    assert (low, high) == ([-2.0, 0.0], [3.0, 4.0])
    assert note is not None
    assert "widened" in note
    low, high, note = insilico.default_ranges({"stimulus_range": {"min": [-1.5], "max": [2.5]}}, 3)
    assert (low, high, note) == ([-1.5] * 3, [2.5] * 3, None)
    low, high, note = insilico.default_ranges({"input_shape": [2, 4, 4]}, 2)
    assert (low, high) == ([-3.0, -3.0], [3.0, 3.0])
    assert note is not None
    assert "no training stimulus range" in note
    with pytest.raises(ValueError, match="inconsistent"):
        insilico.default_ranges({"stimulus_range": {"min": [0, 0], "max": [1, 1]}}, 3)
