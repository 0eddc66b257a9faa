"""What every registered model offers the training loop, checkpoints and inference."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from openretina_models.readouts import MultiReadout
from openretina_models.readouts.base import check_clip_shape


class RetinaModel(nn.Module):
    """`forward(stimulus (B, C, T, H, W), session) -> (B, T - warmup_frames, N)`.

    Subclasses set `self.in_shape`, `self.core` (an `nn.Module`, empty for models without a shared
    core; freeze it with `model.core.requires_grad_(False)`) and `self.readout` (a `MultiReadout`).
    """

    in_shape: tuple[int, int, int]
    core: nn.Module
    readout: MultiReadout

    @property
    def warmup_frames(self) -> int:
        """Frames at the start of a clip with no output: `T_out = T - warmup_frames`."""
        raise NotImplementedError

    @property
    def n_neurons(self) -> dict[str, int]:
        """Neuron count per session, including sessions added after construction."""
        return self.readout.n_neurons

    def stimulus_shape(self, time_steps: int, batch: int = 1) -> tuple[int, int, int, int, int]:
        """The input shape `(batch, C, time_steps, H, W)` this model expects."""
        c, h, w = self.in_shape
        return (batch, c, time_steps, h, w)

    def check_stimulus(self, stimulus: torch.Tensor) -> None:
        check_clip_shape(stimulus, self.in_shape, "Expected a stimulus")
        if stimulus.shape[2] <= self.warmup_frames:
            raise ValueError(
                f"The stimulus has {stimulus.shape[2]} frames but the model needs more than "
                f"{self.warmup_frames} (its warmup_frames) to produce any output."
            )

    def forward_sessions(self, stimulus: torch.Tensor, sessions: Sequence[str]) -> dict[str, torch.Tensor]:
        """`forward` for several sessions on the same stimulus (subclasses share what they can)."""
        return {session: self(stimulus, session) for session in sessions}

    def regularisation(self, session: str) -> torch.Tensor:
        """The penalty to add to the loss on a batch of `session` (core plus that session's readout)."""
        raise NotImplementedError
