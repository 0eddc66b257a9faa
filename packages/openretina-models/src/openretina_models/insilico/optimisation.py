"""Optimise a batch of stimuli at once, one per target, on any device.

The loss is the sum over the batch of each stimulus' own objective and every constraint acts per
stimulus, so with an optimiser that treats parameters element-wise (SGD, Adam, AdamW, RMSprop...)
stimulus `b` follows exactly the path a run for target `b` alone would take: batching only removes
the per-call overhead (and, on the CPU, lets the model run in the memory layout that is faster
for a batch: see `insilico.layout`). Each stimulus stops on its own (fixed iterations, or when it
reaches a plateau); a stopped stimulus is held while the others go on. Starts and jitter come from
one random generator per stimulus, seeded by `seeds[b]`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from openretina_models.insilico.constraints import Constraint, apply_constraints
from openretina_models.insilico.layout import LayoutTrial
from openretina_models.insilico.objectives import Objective

__all__ = [
    "FixedIterations",
    "Jitter",
    "OptimisationResult",
    "Plateau",
    "Stopper",
    "optimise_stimuli",
    "random_start",
]

OptimiserFactory = Callable[[list[torch.Tensor]], torch.optim.Optimizer]


class Stopper:
    """Decides, after each evaluation, which stimuli are done; `max_iterations` bounds every run."""

    max_iterations: int

    def start(self, batch: int, device: torch.device) -> None:
        """Forget earlier runs; `batch` stimuli are about to be optimised."""

    def done(self, values: torch.Tensor, iteration: int) -> torch.Tensor:
        """(B,) bool: stimuli that take no more steps, given their values after `iteration` steps."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError


class FixedIterations(Stopper):
    """Every stimulus takes exactly `iterations` optimiser steps."""

    def __init__(self, iterations: int) -> None:
        if iterations < 0:
            raise ValueError(f"iterations must be 0 or more, got {iterations}.")
        self.max_iterations = int(iterations)

    def done(self, values: torch.Tensor, iteration: int) -> torch.Tensor:
        return torch.full_like(values, iteration >= self.max_iterations, dtype=torch.bool)

    def describe(self) -> dict[str, Any]:
        return {"stopper": "fixed", "iterations": self.max_iterations}


class Plateau(Stopper):
    """A stimulus stops once its value has not risen by `min_delta` for `patience` steps in a row
    (or after `max_iterations`)."""

    def __init__(self, patience: int = 20, min_delta: float = 1e-4, max_iterations: int = 1000) -> None:
        if patience < 1 or max_iterations < 0:
            raise ValueError(
                f"patience must be >= 1 and max_iterations >= 0, got {patience}, {max_iterations}."
            )
        self.patience, self.min_delta = int(patience), float(min_delta)
        self.max_iterations = int(max_iterations)
        self._best: torch.Tensor | None = None
        self._since: torch.Tensor | None = None

    def start(self, batch: int, device: torch.device) -> None:
        self._best = torch.full((batch,), -torch.inf, device=device)
        self._since = torch.zeros(batch, dtype=torch.long, device=device)

    def done(self, values: torch.Tensor, iteration: int) -> torch.Tensor:
        if self._best is None or self._since is None or self._best.shape != values.shape:
            self.start(len(values), values.device)
        assert self._best is not None
        assert self._since is not None
        improved = values > self._best + self.min_delta
        self._best = torch.where(improved, values, self._best)
        self._since = torch.where(improved, torch.zeros_like(self._since), self._since + 1)
        return (self._since >= self.patience) | (iteration >= self.max_iterations)

    def describe(self) -> dict[str, Any]:
        return {
            "stopper": "plateau",
            "patience": self.patience,
            "min_delta": self.min_delta,
            "max_iterations": self.max_iterations,
        }


class Jitter:
    """Shifts each stimulus by up to `max_shift` pixels (randomly, per step) before the model sees it,
    so the optimised stimulus does not depend on exact pixel positions."""

    def __init__(self, max_shift: int) -> None:
        if max_shift < 1:
            raise ValueError(f"max_shift must be at least 1 pixel, got {max_shift}.")
        self.max_shift = int(max_shift)

    def __call__(self, stimuli: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
        shifted = []
        for b, generator in enumerate(generators):
            dy, dx = (torch.randint(-self.max_shift, self.max_shift + 1, (2,), generator=generator)).tolist()
            shifted.append(torch.roll(stimuli[b], shifts=(dy, dx), dims=(2, 3)))
        return torch.stack(shifted)

    def describe(self) -> dict[str, Any]:
        return {"jitter_pixels": self.max_shift}


class NonFiniteError(ValueError):
    """The objective or a stimulus became NaN or infinite: the optimisation diverged.

    Raised instead of returning stimuli that are not numbers. `targets` are the batch positions
    affected, `iteration` the step at which it was seen.
    """

    def __init__(self, iteration: int, targets: list[int], what: str) -> None:
        self.iteration = iteration
        self.targets = targets
        shown = ", ".join(str(t) for t in targets[:8]) + (", ..." if len(targets) > 8 else "")
        super().__init__(
            f"the {what} became NaN or infinite at step {iteration} for stimuli {shown} of the batch"
        )


@dataclass
class OptimisationResult:
    """Optimised stimuli and how each run went (one entry per stimulus)."""

    stimuli: torch.Tensor  # (B, C, T, H, W), detached
    values: torch.Tensor  # (B,) the objective of the final stimuli (no jitter)
    start_values: torch.Tensor  # (B,) the objective of the constrained starts
    iterations: list[int]  # optimiser steps each stimulus took
    history: list[torch.Tensor] = field(default_factory=list)  # per evaluation: (B,) values
    layout: str = "contiguous"  # the memory layout the model saw: a key of `insilico.layout.LAYOUTS`


def _generators(seeds: Sequence[int]) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(int(seed)) for seed in seeds]


def _unjittered(objective: Objective, stimuli: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return objective(stimuli)


def random_start(
    shape: Sequence[int],
    seeds: Sequence[int],
    std: float = 0.1,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """One Gaussian noise stimulus of `shape` `(C, T, H, W)` per seed, `(len(seeds), C, T, H, W)`.

    Stimulus `b` depends only on `seeds[b]` (drawn on the CPU, then moved), so a batch and
    separate runs start alike on every device.
    """
    noise = [torch.randn(tuple(shape), generator=g) * std for g in _generators(seeds)]
    return torch.stack(noise).to(device)


def optimise_stimuli(
    objective: Objective,
    model: nn.Module,
    start: torch.Tensor,
    *,
    constraints: Sequence[Constraint] = (),
    stopper: Stopper | None = None,
    optimiser: OptimiserFactory | None = None,
    lr: float = 10.0,
    jitter: Jitter | None = None,
    seeds: Sequence[int] | None = None,
    keep_history: bool = False,
    layout: str = "auto",
) -> OptimisationResult:
    """Maximise `objective` over the stimuli `start` `(B, C, T, H, W)` (one per target).

    `optimiser` builds a `torch.optim` optimiser from the list holding the stimulus tensor
    (default: plain SGD at `lr`, i.e. projected gradient ascent, which moves only the pixels the
    target is sensitive to; Adam's per-pixel step sizes also move the others and leave noise).
    Use an element-wise optimiser to keep batch and separate runs alike.
    `stopper` defaults to 100 fixed iterations. `seeds` (one per stimulus) seed the jitter. The
    model runs in eval mode with its parameters frozen; both are restored afterwards.
    `layout` is the memory layout the model sees the stimuli in: "auto" uses channels-last for
    batches of 8 or more on the CPU (repeatable bit for bit), "fastest" times the first steps in
    both and keeps the faster (see `insilico.layout`; the layouts differ only in float summation
    order, ~1e-8), "contiguous" or "channels_last" fix it.
    """
    if start.ndim != 5:
        raise ValueError(f"start must be (batch, C, T, H, W), got shape {tuple(start.shape)}.")
    objective.check(start.shape)
    batch = start.shape[0]
    stopper = stopper or FixedIterations(100)
    generators = _generators(seeds if seeds is not None else range(batch))
    if len(generators) != batch:
        raise ValueError(f"{len(generators)} seeds for {batch} stimuli; give one seed per stimulus.")
    layouts = LayoutTrial(start.device, stopper.max_iterations, layout, batch=int(start.shape[0]))
    stimuli = start.detach().clone(memory_format=torch.contiguous_format)
    apply_constraints(stimuli, constraints)
    stimuli.requires_grad_(True)
    optimise = optimiser([stimuli]) if optimiser else torch.optim.SGD([stimuli], lr=lr)
    was_training = model.training
    frozen = [p for p in model.parameters() if p.requires_grad]
    model.eval()
    for parameter in frozen:
        parameter.requires_grad_(False)
    try:
        stopper.start(batch, stimuli.device)
        active = [True] * batch
        iterations = [stopper.max_iterations] * batch
        history: list[torch.Tensor] = []
        start_values: torch.Tensor | None = None
        for iteration in range(stopper.max_iterations + 1):
            started = layouts.timer(iteration)
            seen = jitter(stimuli, generators) if jitter else stimuli
            values = objective(layouts.feed(seen, iteration))
            if start_values is None:
                start_values = (
                    _unjittered(objective, layouts.feed(stimuli, iteration))
                    if jitter
                    else values.detach().clone()
                )
            if keep_history:
                history.append(values.detach().cpu())
            # One conversion to Python per step: which stimuli stop now, and which are not numbers.
            flags = torch.stack([stopper.done(values.detach(), iteration), ~torch.isfinite(values.detach())])
            stops_now, broken = flags.tolist()
            if any(broken):
                raise NonFiniteError(iteration, [b for b, bad in enumerate(broken) if bad], "objective")
            for b, stops in enumerate(stops_now):
                if stops and active[b]:
                    active[b], iterations[b] = False, iteration
            if not any(active):
                break
            mask = None if all(active) else torch.tensor(active, device=stimuli.device)
            held = None if mask is None else stimuli.detach().clone()
            optimise.zero_grad(set_to_none=True)
            (-(values if mask is None else values * mask.to(values.dtype)).sum()).backward()
            if started is not None:
                layouts.record(iteration, started)
            optimise.step()
            with torch.no_grad():
                apply_constraints(stimuli, constraints)
                if mask is not None and held is not None:  # stopped stimuli stay as they were
                    stimuli.copy_(torch.where(mask.view(-1, 1, 1, 1, 1), stimuli, held))
        layouts.settle()
        with torch.no_grad():
            final = objective(layouts.feed(stimuli, stopper.max_iterations))
            finite = torch.isfinite(final) & torch.isfinite(stimuli).flatten(1).all(dim=1)
            if not bool(finite.all()):
                bad = (~finite).nonzero().flatten().tolist()
                raise NonFiniteError(stopper.max_iterations, bad, "final stimulus or its objective")
    finally:
        for parameter in frozen:
            parameter.requires_grad_(True)
        model.train(was_training)
    assert start_values is not None
    return OptimisationResult(
        stimuli=stimuli.detach(),
        values=final.detach(),
        start_values=start_values,
        iterations=iterations,
        history=history,
        layout=layouts.describe(),
    )
