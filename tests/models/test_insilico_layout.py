"""The memory layout a stimulus optimisation feeds the model: tried, chosen, and without side effects."""

from __future__ import annotations

import time

import pytest
import torch
from models_testkit import IN_SHAPE, VARIANTS, build, variant_id
from openretina_models import insilico
from openretina_models.insilico.layout import STEPS_PER_LAYOUT, LayoutTrial

SESSION = "session_b"
CPU = torch.device("cpu")


def _finish_step(trial: LayoutTrial, iteration: int, seconds: float) -> None:
    """Play one optimiser step that took `seconds` (only timed steps are recorded)."""
    if trial.timer(iteration) is not None:
        trial.record(iteration, time.perf_counter() - seconds)


@pytest.mark.parametrize(
    ("contiguous_s", "channels_last_s", "expected"), [(2.0, 1.0, "channels_last"), (1.0, 2.0, "contiguous")]
)
def test_the_trial_tries_each_layout_on_real_steps_then_keeps_the_faster(
    contiguous_s: float, channels_last_s: float, expected: str
) -> None:
    trial = LayoutTrial(CPU, iterations=50, layout="fastest")
    seen = []
    for iteration in range(2 * STEPS_PER_LAYOUT):
        layout = trial.layout(iteration)
        seen.append(layout)
        _finish_step(trial, iteration, contiguous_s if layout == torch.contiguous_format else channels_last_s)
    assert seen == [torch.contiguous_format] * STEPS_PER_LAYOUT + [torch.channels_last_3d] * STEPS_PER_LAYOUT
    assert trial.describe() == expected
    later = trial.feed(torch.zeros(2, 3, 4, 5, 6), 40)
    assert later.is_contiguous(memory_format=trial.chosen)
    assert trial.timer(40) is None  # nothing more is timed once chosen


def test_a_layout_is_judged_by_its_quickest_step_so_one_slow_step_does_not_decide() -> None:
    trial = LayoutTrial(CPU, iterations=50, layout="fastest")
    slow_once = {1: 5.0, 2: 1.0, 4: 1.5, 5: 1.5}  # contiguous: 5.0 then 1.0; channels-last: 1.5
    for iteration in range(2 * STEPS_PER_LAYOUT):
        _finish_step(trial, iteration, slow_once.get(iteration, 0.0))
    assert trial.describe() == "contiguous"


def test_a_run_that_ends_during_the_trial_settles_on_what_it_timed() -> None:
    untimed = LayoutTrial(CPU, iterations=50, layout="fastest")
    untimed.settle()
    assert untimed.describe() == "contiguous"
    half = LayoutTrial(CPU, iterations=50, layout="fastest")
    for iteration in range(STEPS_PER_LAYOUT + 1):  # one channels-last step, not timed
        _finish_step(half, iteration, 1.0)
    half.settle()
    assert half.describe() == "contiguous"
    assert half.layout(STEPS_PER_LAYOUT + 1) == torch.contiguous_format


@pytest.mark.parametrize(
    ("device", "iterations", "layout", "batch", "expected"),
    [
        (CPU, 5, "fastest", 32, "contiguous"),  # too short to try
        (torch.device("cuda"), 100, "fastest", 32, "contiguous"),  # off the CPU, PyTorch chooses
        (CPU, 100, "auto", 32, "channels_last"),  # the fixed rule: a batch on the CPU
        (CPU, 100, "auto", 8, "channels_last"),
        (CPU, 100, "auto", 7, "contiguous"),
        (CPU, 100, "auto", 1, "contiguous"),
        (torch.device("cuda"), 100, "auto", 32, "contiguous"),
        (CPU, 100, "contiguous", 32, "contiguous"),
        (CPU, 100, "channels_last", 1, "channels_last"),
    ],
)
def test_one_layout_without_a_trial(
    device: torch.device, iterations: int, layout: str, batch: int, expected: str
) -> None:
    trial = LayoutTrial(device, iterations, layout, batch=batch)
    assert trial.describe() == expected
    assert trial.timer(1) is None
    assert all(trial.layout(i) == trial.chosen for i in range(10))


def test_an_unknown_layout_is_refused_before_any_step() -> None:
    model = build("core_readout", {}).eval()
    objective = insilico.ResponseObjective(model, SESSION, [0])
    start = insilico.random_start((IN_SHAPE[0], model.warmup_frames + 2, *IN_SHAPE[1:]), [0])
    with pytest.raises(
        ValueError, match=r"Unknown layout 'nhwc'; use 'auto', 'fastest', 'contiguous', 'channels_last'"
    ):
        insilico.optimise_stimuli(objective, model, start, layout="nhwc")


def _optimise(model: torch.nn.Module, targets: list[int], layout: str) -> insilico.OptimisationResult:
    objective = insilico.ResponseObjective(model, SESSION, targets)
    start = insilico.random_start((IN_SHAPE[0], model.warmup_frames + 3, *IN_SHAPE[1:]), targets)
    return insilico.optimise_stimuli(
        objective,
        model,
        start,
        constraints=[insilico.L2Norm(3.0), insilico.ValueRange(-1.0, 1.0)],
        stopper=insilico.FixedIterations(12),
        lr=1.0,
        layout=layout,
    )


def test_both_layouts_give_the_same_stimuli_in_the_standard_layout() -> None:
    model = build("core_readout", {}).eval()
    standard = _optimise(model, [0, 3, 5], "contiguous")
    channels_last = _optimise(model, [0, 3, 5], "channels_last")
    assert channels_last.layout == "channels_last"
    assert channels_last.stimuli.is_contiguous()  # only the model's copy changes layout
    assert bool((standard.values > standard.start_values).all())  # the steps did something
    torch.testing.assert_close(channels_last.stimuli, standard.stimuli, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(channels_last.values, standard.values, atol=1e-6, rtol=1e-5)


def test_the_users_model_is_left_exactly_as_it_was() -> None:
    model = build("core_readout", {}).train()
    first = next(model.parameters())
    first.requires_grad_(False)  # the user had frozen this one
    first.data = first.data.contiguous(memory_format=torch.channels_last_3d)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    needs_grad = {name: p.requires_grad for name, p in model.named_parameters()}
    strides = {name: p.stride() for name, p in model.named_parameters()}
    result = _optimise(model, [1, 2], "fastest")  # both layouts are fed to the model
    assert result.layout in ("contiguous", "channels_last")
    assert model.training
    assert {name: p.requires_grad for name, p in model.named_parameters()} == needs_grad
    assert {name: p.stride() for name, p in model.named_parameters()} == strides
    after = model.state_dict()
    for name, value in before.items():  # parameters and batch-norm running statistics
        assert torch.equal(after[name], value), name
    assert all(p.grad is None for p in model.parameters())


def test_auto_is_repeatable_bit_for_bit() -> None:
    model = build("core_readout", {}).eval()
    targets = [0, 1, 2, 3, 4, 0, 1, 2]  # a batch of 8 (neurons may repeat): channels-last on the CPU
    first, second = _optimise(model, targets, "auto"), _optimise(model, targets, "auto")
    assert first.layout == second.layout == "channels_last"
    assert torch.equal(first.stimuli, second.stimuli)
    assert torch.equal(first.values, second.values)


@pytest.mark.parametrize("variant", VARIANTS, ids=[variant_id(v) for v in VARIANTS])
def test_every_architecture_takes_channels_last_stimuli(variant: tuple[str, dict]) -> None:
    """The "auto" layout picks channels-last for batches of any model, so every architecture must take it."""
    model = build(*variant).eval()
    session = next(iter(model.n_neurons))
    results = {}
    for layout in ("contiguous", "channels_last"):
        objective = insilico.ResponseObjective(model, session, [0, 1])
        start = insilico.random_start((IN_SHAPE[0], model.warmup_frames + 3, *IN_SHAPE[1:]), [0, 1])
        stopper = insilico.FixedIterations(3)
        results[layout] = insilico.optimise_stimuli(
            objective, model, start, stopper=stopper, lr=1.0, layout=layout
        )
    torch.testing.assert_close(
        results["channels_last"].stimuli, results["contiguous"].stimuli, atol=1e-6, rtol=1e-5
    )
