"""The per-session readout interface and the container that holds one readout per session."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import nn

from openretina_models.errors import NameLookupError
from openretina_models.layers.activations import (
    apply_output_nonlinearity,
    check_output_nonlinearity,
    inverse_output_nonlinearity,
)


def check_clip_shape(clip: torch.Tensor, in_shape: tuple[int, int, int], expected: str) -> None:
    """Raise unless `clip` is `(batch, C, time, H, W)` for `in_shape = (C, H, W)`.

    `expected` opens the message and says what was expected, e.g. "LNP expects a stimulus".
    """
    c, h, w = in_shape
    if clip.ndim != 5 or clip.shape[1] != c or tuple(clip.shape[3:]) != (h, w):
        raise ValueError(f"{expected} (batch, {c}, time, {h}, {w}), got {tuple(clip.shape)}.")


class Readout(nn.Module):
    """Maps features `(B, C, T, H, W)` to one session's responses `(B, T, N)`.

    Holds the per-neuron bias, initialised so that the initial output equals the neurons' mean
    activity (the inverse of the output nonlinearity applied to it), and the output nonlinearity.
    """

    def __init__(
        self, n_neurons: int, mean_activity: np.ndarray | None, output_nonlinearity: str = "softplus"
    ) -> None:
        super().__init__()
        self.n_neurons = int(n_neurons)
        self.output_nonlinearity = check_output_nonlinearity(output_nonlinearity)
        if mean_activity is None:
            start = np.zeros(self.n_neurons)
        else:
            mean = np.asarray(mean_activity, dtype=np.float64).reshape(-1)
            if mean.shape != (self.n_neurons,):
                raise ValueError(
                    f"mean_activity has {mean.size} values but the session has {self.n_neurons} neurons."
                )
            start = inverse_output_nonlinearity(mean, output_nonlinearity)
        self.bias = nn.Parameter(torch.as_tensor(start, dtype=torch.float32))

    def finish(self, linear: torch.Tensor) -> torch.Tensor:
        """Add the bias and apply the output nonlinearity to a `(B, T, N)` linear prediction."""
        return apply_output_nonlinearity(linear + self.bias, self.output_nonlinearity)

    def regularisation(self) -> torch.Tensor:
        return self.bias.new_zeros(())


class MultiReadout(nn.ModuleDict):
    """One readout per session, built by `factory(n_neurons, mean_activity)`.

    `add_sessions` adds readouts for new sessions to a trained model without touching existing ones.
    """

    def __init__(
        self,
        factory: Callable[[int, np.ndarray | None], Readout],
        n_neurons: Mapping[str, int],
        mean_activity: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        super().__init__()
        self._factory = factory
        self.add_sessions(n_neurons, mean_activity)

    @property
    def n_neurons(self) -> dict[str, int]:
        """Neuron count per session, in insertion order."""
        return {name: readout.n_neurons for name, readout in self.items()}

    def add_sessions(
        self, n_neurons: Mapping[str, int], mean_activity: Mapping[str, np.ndarray] | None = None
    ) -> None:
        """Add a fresh readout for each new session `{name: N}` (bias from `mean_activity[name]`)."""
        clashes = [name for name in n_neurons if name in self]
        if clashes:
            raise ValueError(f"Sessions {clashes} already have a readout; choose new session names.")
        mean_activity = dict(mean_activity or {})
        unknown = [name for name in mean_activity if name not in n_neurons]
        if unknown:
            raise ValueError(
                f"mean_activity names sessions {unknown} that are not in n_neurons {list(n_neurons)}."
            )
        device = next((p.device for p in self.parameters()), None)
        for name, count in n_neurons.items():
            readout = self._factory(int(count), mean_activity.get(name)).train(self.training)
            self[str(name)] = readout.to(device) if device is not None else readout

    def get_readout(self, session: str) -> Readout:
        """The readout of `session`, or a KeyError naming the known sessions."""
        if session not in self:
            close = difflib.get_close_matches(str(session), list(self.keys()), n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise NameLookupError(
                f"Unknown session {session!r}.{hint} Known sessions: {', '.join(self.keys())}."
            )
        return self[session]  # type: ignore[return-value]

    def forward(self, features: torch.Tensor, session: str) -> torch.Tensor:  # type: ignore[override]
        return self.get_readout(session)(features)

    def regularisation(self, session: str) -> torch.Tensor:
        return self.get_readout(session).regularisation()
