"""An ensemble: one model whose prediction is the mean of its members' predictions.

Members are any registered models trained on the same data (same frame shape, sessions and
neurons). The ensemble is itself registered (as ``ensemble``), so it saves and loads like any
model: its checkpoint's JSON lists each member's architecture and the safetensors file holds every
member's weights under ``members.<i>.``. Members may consume different numbers of warm-up frames;
each prediction is cut to the frames every member predicts (the last ``T - warmup_frames``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from openretina_models.architectures.base import RetinaModel
from openretina_models.registry import create_model, register_model

__all__ = ["Ensemble", "ensemble", "ensemble_of"]


class Ensemble(RetinaModel):
    """Averages the predictions of `members` (each a model from `create_model`)."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(members) < 1:
            raise ValueError("An ensemble needs at least one member.")
        shapes = {tuple(int(s) for s in m.in_shape) for m in members}
        if len(shapes) != 1:
            raise ValueError(
                f"Ensemble members take different frame shapes {sorted(shapes)}; they must match."
            )
        first = dict(members[0].n_neurons)
        for index, member in enumerate(members[1:], start=1):
            if dict(member.n_neurons) != first:
                raise ValueError(
                    f"Ensemble member {index} has sessions {dict(member.n_neurons)} but member 0 has "
                    f"{first}; every member must be trained on the same sessions and neurons."
                )
        self.in_shape = shapes.pop()  # type: ignore[assignment]
        self.members = nn.ModuleList(members)
        self.readout = EnsembleReadouts(self.members)  # type: ignore[assignment]

    @property
    def warmup_frames(self) -> int:
        """The largest member warm-up: only frames every member predicts are averaged."""
        return max(int(m.warmup_frames) for m in self.members)

    @property
    def n_neurons(self) -> dict[str, int]:
        return dict(self.members[0].n_neurons)

    def forward(self, stimulus: torch.Tensor, session: str) -> torch.Tensor:
        self.check_stimulus(stimulus)
        frames = stimulus.shape[2] - self.warmup_frames
        total = None
        for member in self.members:
            prediction = member(stimulus, session)[:, -frames:]
            total = prediction if total is None else total + prediction
        assert total is not None
        return total / len(self.members)

    def forward_sessions(self, stimulus: torch.Tensor, sessions: Sequence[str]) -> dict[str, torch.Tensor]:
        self.check_stimulus(stimulus)
        frames = stimulus.shape[2] - self.warmup_frames
        totals: dict[str, torch.Tensor] = {}
        for member in self.members:
            for session, prediction in member.forward_sessions(stimulus, sessions).items():
                cropped = prediction[:, -frames:]
                totals[session] = cropped if session not in totals else totals[session] + cropped
        return {session: total / len(self.members) for session, total in totals.items()}

    def regularisation(self, session: str) -> torch.Tensor:
        return torch.stack([m.regularisation(session) for m in self.members]).mean()


class EnsembleReadouts:
    """The members' readouts seen as one: adding a session adds it to every member.

    A plain object, not a module, so the weights stay registered once (under ``members``)."""

    def __init__(self, members: nn.ModuleList) -> None:
        self._members = members

    @property
    def n_neurons(self) -> dict[str, int]:
        return dict(self._members[0].n_neurons)

    def add_sessions(
        self, n_neurons: Mapping[str, int], mean_activity: Mapping[str, Any] | None = None
    ) -> None:
        for member in self._members:
            member.readout.add_sessions(n_neurons, mean_activity=mean_activity)

    def __getitem__(self, session: str) -> nn.ModuleList:
        """Every member's readout of `session` (in the members' train/eval mode)."""
        readouts = [member.readout[session] for member in self._members]
        view = nn.ModuleList(readouts)
        view.training = readouts[0].training
        return view

    def regularisation(self, session: str) -> torch.Tensor:
        return torch.stack([m.readout.regularisation(session) for m in self._members]).mean()


@register_model("ensemble")
def ensemble(
    *,
    in_shape: tuple[int, int, int],
    n_neurons: Mapping[str, int],
    mean_activity: Mapping[str, np.ndarray] | None = None,
    members: Sequence[Mapping[str, Any]] = (),
) -> Ensemble:
    """Rebuild an ensemble from its members' architectures `[{"name", "kwargs"}, ...]` (untrained
    weights; `load_model` then loads the saved ones). Build one from trained models with `ensemble_of`."""
    if not members:
        raise ValueError('An ensemble needs "members": a list of {"name", "kwargs"} architectures.')
    built = []
    for index, spec in enumerate(members):
        if not isinstance(spec, Mapping) or "name" not in spec or not isinstance(spec.get("kwargs"), Mapping):
            raise ValueError(
                f'Ensemble member {index} must be {{"name": str, "kwargs": {{...}}}}, got {spec!r}.'
            )
        kwargs = {**spec["kwargs"], "in_shape": in_shape, "n_neurons": n_neurons}
        built.append(create_model(spec["name"], **kwargs))
    return Ensemble(built)


def ensemble_of(models: Sequence[nn.Module]) -> Ensemble:
    """An ensemble of trained `models` (copies of their weights), ready for `save_model`."""
    if not models:
        raise ValueError("An ensemble needs at least one member.")
    first = models[0]
    for index, model in enumerate(models[1:], start=1):
        if tuple(model.in_shape) != tuple(first.in_shape):
            raise ValueError(
                f"Ensemble member {index} takes frames of shape {tuple(model.in_shape)} but member 0 takes "
                f"{tuple(first.in_shape)}; members must be trained on the same data."
            )
        if dict(model.n_neurons) != dict(first.n_neurons):
            raise ValueError(
                f"Ensemble member {index} has sessions {dict(model.n_neurons)} but member 0 has "
                f"{dict(first.n_neurons)}; members must be trained on the same sessions and neurons."
            )
    specs = []
    for index, model in enumerate(models):
        architecture = getattr(model, "architecture", None)
        if not isinstance(architecture, Mapping) or "name" not in architecture:
            raise ValueError(
                f"Ensemble member {index} was not built by create_model (it has no .architecture); "
                "load members with load_model."
            )
        kwargs = {k: v for k, v in architecture["kwargs"].items() if k not in ("in_shape", "n_neurons")}
        specs.append({"name": architecture["name"], "kwargs": kwargs})
    result = create_model(
        "ensemble", in_shape=tuple(first.in_shape), n_neurons=dict(first.n_neurons), members=specs
    )
    assert isinstance(result, Ensemble)
    for index, (target, source) in enumerate(zip(result.members, models, strict=True)):
        try:
            target.load_state_dict(source.state_dict(), strict=True)
        except RuntimeError as error:
            raise ValueError(
                f"Ensemble member {index}: its weights do not fit its architecture: {error}"
            ) from None
    return result.eval()
