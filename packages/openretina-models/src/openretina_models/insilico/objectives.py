"""What a stimulus optimisation maximises: one value per stimulus of the batch.

Every objective maps a batch of stimuli `(B, C, T, H, W)` to `(B,)`, element `b` depending only on
stimulus `b` (the model must be in eval mode). That is what lets B targets be optimised as one
batch and still give the stimuli B separate runs would: the loss is the sum of the elements.
Objectives compose: `-objective`, `a + b`, `2.0 * objective`.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

import torch
from torch import nn

__all__ = [
    "ContrastiveObjective",
    "InnerUnitObjective",
    "Objective",
    "ResponseObjective",
    "TimeWindow",
]

TimeWindow = tuple[int, int] | None
"""`(start, stop)` in the model's output frames (frame 0 is the first after the warm-up); None: all."""


class Objective:
    """A per-stimulus value to maximise; subclasses implement `__call__(stimuli) -> (B,)`."""

    batch_size: int | None = None  # how many stimuli it expects (None: any)

    def __call__(self, stimuli: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def check(self, stimulus_shape: Sequence[int]) -> None:
        """Raise a ValueError if stimuli of `stimulus_shape` cannot be scored (before any work)."""
        if self.batch_size is not None and stimulus_shape[0] != self.batch_size:
            raise ValueError(
                f"The objective has {self.batch_size} targets but the batch has {stimulus_shape[0]} stimuli."
            )

    def subset(self, indices: Sequence[int]) -> Objective:
        """The same objective for the targets at `indices` only (in that order): stimulus `b` of a
        batch then drives target ``indices[b]``. Lets many targets be optimised in chunks."""
        raise NotImplementedError(f"{type(self).__name__} cannot select a subset of its targets.")

    def __neg__(self) -> Objective:
        return _Weighted(self, -1.0)

    def __mul__(self, weight: float) -> Objective:
        return _Weighted(self, float(weight))

    __rmul__ = __mul__

    def __add__(self, other: Objective) -> Objective:
        return _Sum(self, other)


class _Weighted(Objective):
    def __init__(self, inner: Objective, weight: float) -> None:
        self.inner, self.weight = inner, weight
        self.batch_size = inner.batch_size

    def __call__(self, stimuli: torch.Tensor) -> torch.Tensor:
        return self.weight * self.inner(stimuli)

    def subset(self, indices: Sequence[int]) -> Objective:
        return _Weighted(self.inner.subset(indices), self.weight)

    def check(self, stimulus_shape: Sequence[int]) -> None:
        self.inner.check(stimulus_shape)


class _Sum(Objective):
    def __init__(self, first: Objective, second: Objective) -> None:
        if None not in (first.batch_size, second.batch_size) and first.batch_size != second.batch_size:
            raise ValueError(f"Cannot add objectives for {first.batch_size} and {second.batch_size} stimuli.")
        self.first, self.second = first, second
        self.batch_size = first.batch_size if first.batch_size is not None else second.batch_size

    def __call__(self, stimuli: torch.Tensor) -> torch.Tensor:
        return self.first(stimuli) + self.second(stimuli)

    def subset(self, indices: Sequence[int]) -> Objective:
        return _Sum(self.first.subset(indices), self.second.subset(indices))

    def check(self, stimulus_shape: Sequence[int]) -> None:
        self.first.check(stimulus_shape)
        self.second.check(stimulus_shape)


def output_window(window: TimeWindow, output_frames: int) -> slice:
    """The slice of output frames `window` names, or a ValueError saying why it does not fit."""
    if window is None:
        return slice(0, output_frames)
    start, stop = int(window[0]), int(window[1])
    if not 0 <= start < stop:
        raise ValueError(f"The time window {start}:{stop} is empty or negative; use 0 <= start < stop.")
    if stop > output_frames:
        raise ValueError(
            f"The time window {start}:{stop} is longer than the model's output for this stimulus "
            f"({output_frames} frames after the warm-up); use a window within 0:{output_frames} or "
            "a longer stimulus."
        )
    return slice(start, stop)


def _groups(targets: Sequence[int | Sequence[int]], n_neurons: int, session: str) -> list[list[int]]:
    groups = [[int(t)] if isinstance(t, Integral) else [int(i) for i in t] for t in targets]
    for group in groups:
        if not group:
            raise ValueError("Every target needs at least one neuron.")
        bad = [i for i in group if not 0 <= i < n_neurons]
        if bad:
            raise ValueError(
                f"Neuron index {bad[0]} does not exist in session {session!r}, which has "
                f"{n_neurons} neurons (indices 0..{n_neurons - 1})."
            )
    return groups


def _group_matrix(groups: list[list[int]], n_neurons: int, like: torch.Tensor) -> torch.Tensor:
    """(G, N) rows that average each group's neurons."""
    matrix = torch.zeros(len(groups), n_neurons, dtype=like.dtype, device=like.device)
    for row, group in enumerate(groups):
        matrix[row, group] = 1.0 / len(group)
    return matrix


def _session_size(model: nn.Module, session: str) -> int:
    sizes = model.n_neurons
    if session not in sizes:
        raise ValueError(f"Unknown session {session!r}; the model knows {', '.join(sizes)}.")
    return int(sizes[session])


class ResponseObjective(Objective):
    """Stimulus `b` drives target `b`: the mean response of a neuron (or a group) in a time window.

    `targets[b]` is a neuron index or a list of indices of `session`; use `-objective` to find the
    stimulus that suppresses a target most.
    """

    def __init__(
        self,
        model: nn.Module,
        session: str,
        targets: Sequence[int | Sequence[int]],
        window: TimeWindow = None,
    ) -> None:
        self.model, self.session, self.window = model, session, window
        self.n_neurons = _session_size(model, session)
        self.groups = _groups(targets, self.n_neurons, session)
        self.batch_size = len(self.groups)

    def check(self, stimulus_shape: Sequence[int]) -> None:
        super().check(stimulus_shape)
        output_window(self.window, int(stimulus_shape[2]) - int(self.model.warmup_frames))

    def responses(self, stimuli: torch.Tensor) -> torch.Tensor:
        """(B, G) mean responses of every target group in the window, for every stimulus."""
        out = self.model(stimuli, self.session)  # (B, T_out, N)
        mean = out[:, output_window(self.window, out.shape[1])].mean(dim=1)  # (B, N)
        return mean @ _group_matrix(self.groups, self.n_neurons, mean).T

    def __call__(self, stimuli: torch.Tensor) -> torch.Tensor:
        return self.responses(stimuli).diagonal()

    def subset(self, indices: Sequence[int]) -> ResponseObjective:
        return ResponseObjective(self.model, self.session, [self.groups[i] for i in indices], self.window)


class ContrastiveObjective(Objective):
    """Most discriminative stimuli: stimulus `b` drives cluster `targets[b]` above the others.

    Each cluster's response is the mean over its neurons and the window; the value is the log of
    the softmax over clusters at `temperature` for the target cluster (Burg et al. 2024's
    contrastive objective), so it rises as the target cluster wins by more.
    """

    def __init__(
        self,
        model: nn.Module,
        session: str,
        clusters: Sequence[Sequence[int]],
        targets: Sequence[int] | None = None,
        window: TimeWindow = None,
        temperature: float = 1.0,
    ) -> None:
        if len(clusters) < 2:
            raise ValueError(f"A contrastive objective needs at least two clusters, got {len(clusters)}.")
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}.")
        self.targets = list(range(len(clusters))) if targets is None else [int(t) for t in targets]
        bad = [t for t in self.targets if not 0 <= t < len(clusters)]
        if bad:
            raise ValueError(f"Target cluster {bad[0]} does not exist; there are {len(clusters)} clusters.")
        self.responses = ResponseObjective(model, session, [list(c) for c in clusters], window)
        self.temperature = float(temperature)
        self.batch_size = len(self.targets)

    def check(self, stimulus_shape: Sequence[int]) -> None:
        super().check(stimulus_shape)
        self.responses.check((self.responses.batch_size, *stimulus_shape[1:]))

    def __call__(self, stimuli: torch.Tensor) -> torch.Tensor:
        clusters = self.responses.responses(stimuli)  # (B, K)
        log_p = torch.log_softmax(clusters / self.temperature, dim=1)
        index = torch.as_tensor(self.targets, device=stimuli.device)[:, None]
        return log_p.gather(1, index)[:, 0]

    def subset(self, indices: Sequence[int]) -> ContrastiveObjective:
        """The same clusters competing; only the clusters that stimuli are sought for change."""
        responses = self.responses
        return ContrastiveObjective(
            responses.model,
            responses.session,
            responses.groups,
            targets=[self.targets[i] for i in indices],
            window=responses.window,
            temperature=self.temperature,
        )


class _Captured(Exception):
    """Ends a forward pass once the hooked layer has produced its output."""


class InnerUnitObjective(Objective):
    """Stimulus `b` drives channel `channels[b]` of an inner layer at the centre of its feature map.

    `layer` is a module name in `model` (e.g. `core.blocks.0`, see `model.named_modules()`); its
    output must be `(B, channels, T, H, W)`. The forward pass stops at that layer. The value is the
    unit's mean activation over `window` (in the layer's output frames; None: all).
    """

    def __init__(
        self,
        model: nn.Module,
        layer: str,
        channels: Sequence[int],
        window: TimeWindow = None,
        session: str | None = None,
    ) -> None:
        names = dict(model.named_modules())
        if layer not in names or layer == "":
            inner = [n for n in names if n.startswith("core.")]
            listing = f"layers of this model include {', '.join(inner[:12])}" if inner else "it has no core"
            raise ValueError(f"Unknown layer {layer!r}; {listing}.")
        self.model, self.layer, self.module = model, layer, names[layer]
        self.channels = [int(c) for c in channels]
        self.window, self.session = window, session
        self.batch_size = len(self.channels)
        if not layer.startswith("core.") and session is None:
            raise ValueError(f"Layer {layer!r} is outside the core; pass the session whose readout runs.")

    def activations(self, stimuli: torch.Tensor) -> torch.Tensor:
        """The hooked layer's output `(B, channels, T, H, W)` for `stimuli`."""
        captured: list[torch.Tensor] = []

        def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            captured.append(output)
            raise _Captured

        handle = self.module.register_forward_hook(hook)
        try:
            if self.session is None:
                self.model.core(stimuli)
            else:
                self.model(stimuli, self.session)
        except _Captured:
            pass
        finally:
            handle.remove()
        if not captured:
            raise ValueError(f"Layer {self.layer!r} did not run in the model's forward pass.")
        output = captured[0]
        if output.ndim != 5:
            raise ValueError(
                f"Layer {self.layer!r} returns shape {tuple(output.shape)}; inner units need "
                "(batch, channels, time, height, width)."
            )
        bad = [c for c in self.channels if not 0 <= c < output.shape[1]]
        if bad:
            raise ValueError(
                f"Channel {bad[0]} does not exist in layer {self.layer!r}, which has {output.shape[1]}."
            )
        return output

    def __call__(self, stimuli: torch.Tensor) -> torch.Tensor:
        output = self.activations(stimuli)
        centre = output[:, :, :, output.shape[3] // 2, output.shape[4] // 2]  # (B, K, T)
        index = torch.as_tensor(self.channels, device=stimuli.device)
        unit = centre[torch.arange(len(index), device=stimuli.device), index]  # (B, T)
        return unit[:, output_window(self.window, unit.shape[1])].mean(dim=1)

    def subset(self, indices: Sequence[int]) -> InnerUnitObjective:
        channels = [self.channels[i] for i in indices]
        return InnerUnitObjective(self.model, self.layer, channels, self.window, self.session)
