"""Analyses of a trained model around given stimuli: chromatic tuning maps and local STAs.

The chromatic tuning map (Höfling et al. 2024) scales each colour channel of a stimulus (usually
an MEI) by a contrast factor on a grid and records each neuron's response and its gradient with
respect to those factors: where the gradient points says which channel the neuron would rather
see more of. Local spike-triggered averages are the gradients of each neuron's response with
respect to the pixels of each of a set of stimuli: the linear receptive field around that stimulus.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from openretina_models.insilico.objectives import TimeWindow, output_window

__all__ = ["ChromaticTuning", "chromatic_tuning", "local_sta"]


@dataclass
class ChromaticTuning:
    """Responses over a grid of per-channel contrast factors.

    `responses[i0, i1, ..., n]` is neuron `n`'s mean response when channel `c` is scaled by
    `contrasts[c][i_c]`; `gradients[..., n, c]` its derivative with respect to that factor.
    """

    contrasts: list[torch.Tensor]  # per channel, the factors tried
    responses: torch.Tensor  # (K_0, ..., K_{C-1}, N)
    gradients: torch.Tensor  # (K_0, ..., K_{C-1}, N, C)
    neurons: list[int]


def _window_mean(model: nn.Module, stimuli: torch.Tensor, session: str, window: TimeWindow) -> torch.Tensor:
    out = model(stimuli, session)  # (B, T_out, N)
    return out[:, output_window(window, out.shape[1])].mean(dim=1)


def _frozen_eval(model: nn.Module) -> list[nn.Parameter]:
    frozen = [p for p in model.parameters() if p.requires_grad]
    model.eval()
    for parameter in frozen:
        parameter.requires_grad_(False)
    return frozen


def chromatic_tuning(
    model: nn.Module,
    stimulus: torch.Tensor,
    session: str,
    contrasts: Sequence[float] | Sequence[Sequence[float]],
    neurons: Sequence[int] | None = None,
    window: TimeWindow = None,
    batch_size: int = 64,
) -> ChromaticTuning:
    """Responses of `neurons` (default all) of `session` to `stimulus` `(C, T, H, W)` with each
    channel scaled by every combination of `contrasts` (one list for all channels, or one per channel).

    The grid has `K^C` points for `C` channels; it is evaluated in batches of `batch_size`.
    """
    if stimulus.ndim != 4:
        raise ValueError(f"stimulus must be (C, T, H, W), got shape {tuple(stimulus.shape)}.")
    channels = stimulus.shape[0]
    nested = len(contrasts) > 0 and isinstance(contrasts[0], Sequence)
    per_channel = [list(c) for c in contrasts] if nested else [list(contrasts)] * channels  # type: ignore[arg-type]
    if len(per_channel) != channels or any(len(c) == 0 for c in per_channel):
        raise ValueError(f"Give one non-empty list of contrasts, or one per channel ({channels}).")
    factors = [torch.tensor(c, dtype=stimulus.dtype) for c in per_channel]
    grid = torch.tensor(list(itertools.product(*per_channel)), dtype=stimulus.dtype)  # (P, C)
    sizes = model.n_neurons
    if session not in sizes:
        raise ValueError(f"Unknown session {session!r}; the model knows {', '.join(sizes)}.")
    chosen = list(range(sizes[session])) if neurons is None else [int(n) for n in neurons]
    was_training = model.training
    frozen = _frozen_eval(model)
    responses, gradients = [], []
    try:
        for part in grid.split(batch_size):
            scale = part.to(stimulus.device).clone().requires_grad_(True)  # (P, C)
            scaled = stimulus[None] * scale[:, :, None, None, None]
            mean = _window_mean(model, scaled, session, window)[:, chosen]  # (P, N)
            rows = []
            for n in range(mean.shape[1]):  # each grid point's gradient depends on its own row only
                (grad,) = torch.autograd.grad(mean[:, n].sum(), scale, retain_graph=n < mean.shape[1] - 1)
                rows.append(grad)
            responses.append(mean.detach())
            gradients.append(torch.stack(rows, dim=1))  # (P, N, C)
    finally:
        for parameter in frozen:
            parameter.requires_grad_(True)
        model.train(was_training)
    shape = [len(c) for c in per_channel]
    return ChromaticTuning(
        contrasts=factors,
        responses=torch.cat(responses).reshape(*shape, len(chosen)).cpu(),
        gradients=torch.cat(gradients).reshape(*shape, len(chosen), channels).cpu(),
        neurons=chosen,
    )


def local_sta(
    model: nn.Module,
    stimuli: torch.Tensor,
    session: str,
    neurons: Sequence[int] | None = None,
    window: TimeWindow = None,
) -> torch.Tensor:
    """Gradients `(K, N, C, T, H, W)` of each neuron's mean response in `window` with respect to
    each stimulus of `stimuli` `(K, C, T, H, W)`: the neuron's linear filter around that stimulus."""
    if stimuli.ndim != 5:
        raise ValueError(f"stimuli must be (K, C, T, H, W), got shape {tuple(stimuli.shape)}.")
    sizes = model.n_neurons
    if session not in sizes:
        raise ValueError(f"Unknown session {session!r}; the model knows {', '.join(sizes)}.")
    chosen = list(range(sizes[session])) if neurons is None else [int(n) for n in neurons]
    was_training = model.training
    frozen = _frozen_eval(model)
    try:
        x = stimuli.detach().clone().requires_grad_(True)
        mean = _window_mean(model, x, session, window)[:, chosen]  # (K, N)
        rows = []
        for n in range(mean.shape[1]):
            (grad,) = torch.autograd.grad(mean[:, n].sum(), x, retain_graph=n < mean.shape[1] - 1)
            rows.append(grad)
    finally:
        for parameter in frozen:
            parameter.requires_grad_(True)
        model.train(was_training)
    return torch.stack(rows, dim=1).detach()
