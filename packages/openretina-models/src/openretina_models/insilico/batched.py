"""Optimising many targets in chunks, each from its own seed: what ``openretina mei`` runs.

A target's stimulus depends only on its own seed and the settings, whatever it is batched with:
its start is drawn from its seed alone (`random_start`), its jitter is seeded the same way, and
every objective scores each stimulus independently. So ``batch_size`` changes speed and memory,
never the result, and optimising neuron 5 alone gives the MEI it gets among all the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from openretina_models.insilico.constraints import Constraint, apply_constraints
from openretina_models.insilico.objectives import Objective
from openretina_models.insilico.optimisation import (
    Jitter,
    OptimisationResult,
    OptimiserFactory,
    Stopper,
    optimise_stimuli,
    random_start,
)

__all__ = ["START_STD", "BatchedResult", "optimise_targets", "stalled"]

START_STD = 0.01  # standard deviation of the noise each stimulus starts from (normalised units)


@dataclass
class BatchedResult:
    """Every target's optimised stimulus and how its run went, in target order."""

    stimuli: torch.Tensor  # (targets, C, T, H, W), detached
    values: torch.Tensor  # (targets,) the objective of the final stimuli
    start_values: torch.Tensor  # (targets,) the objective of the constrained starts
    iterations: list[int]  # optimiser steps each stimulus took
    stalled: list[bool]  # never left its start, or ended flat: not a most exciting input
    chunks: list[OptimisationResult]  # the optimisation of each chunk of at most batch_size


def optimise_targets(
    objective: Objective,
    model: nn.Module,
    stimulus_shape: Sequence[int],
    seeds: Sequence[int],
    *,
    batch_size: int = 64,
    start_std: float = START_STD,
    device: str | torch.device = "cpu",
    constraints: Sequence[Constraint] = (),
    stopper: Stopper | None = None,
    optimiser: OptimiserFactory | None = None,
    lr: float = 10.0,
    jitter: Jitter | None = None,
) -> BatchedResult:
    """Maximise `objective` for each of its targets, `batch_size` stimuli at a time.

    `stimulus_shape` is one stimulus `(C, T, H, W)`; `seeds` holds one seed per target of
    `objective` (``openretina mei`` uses ``--seed`` plus the neuron index, the channel, or the
    cluster's position). Each chunk runs `optimise_stimuli` on ``objective.subset(chunk)``. Raises
    what `optimise_stimuli` raises (a `NonFiniteError` when the optimisation diverges).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    count = len(seeds)
    if objective.batch_size is not None and objective.batch_size != count:
        raise ValueError(
            f"{count} seeds for an objective with {objective.batch_size} targets; give one seed per target."
        )
    chunks: list[OptimisationResult] = []
    stalled_flags: list[bool] = []
    for begin in range(0, count, batch_size):
        chunk = list(range(begin, min(begin + batch_size, count)))
        chunk_seeds = [int(seeds[i]) for i in chunk]
        start = random_start(stimulus_shape, chunk_seeds, std=start_std, device=device)
        part = optimise_stimuli(
            objective if len(chunk) == count else objective.subset(chunk),
            model,
            start,
            constraints=constraints,
            stopper=stopper,
            optimiser=optimiser,
            lr=lr,
            jitter=jitter,
            seeds=chunk_seeds,
        )
        stalled_flags.extend(stalled(start, part.stimuli, constraints))
        chunks.append(part)
    return BatchedResult(
        stimuli=torch.cat([part.stimuli for part in chunks]),
        values=torch.cat([part.values for part in chunks]),
        start_values=torch.cat([part.start_values for part in chunks]),
        iterations=[it for part in chunks for it in part.iterations],
        stalled=stalled_flags,
        chunks=chunks,
    )


def stalled(start: torch.Tensor, stimuli: torch.Tensor, constraints: Sequence[Constraint]) -> list[bool]:
    """Per stimulus: it never left its (constrained) start, or it ended as a flat, featureless clip."""
    begun = start.detach().clone()
    with torch.no_grad():
        apply_constraints(begun, constraints)
    flat = stimuli.flatten(1)
    scale = begun.flatten(1).abs().amax(dim=1).clamp_min(1e-12)
    unmoved = (flat - begun.flatten(1)).abs().amax(dim=1) <= 1e-6 * scale
    featureless = flat.std(dim=1) <= 1e-9
    return (unmoved | featureless).tolist()
