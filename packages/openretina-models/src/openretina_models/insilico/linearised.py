"""Each model neuron's linear receptive field around a grey screen: where the neuron looks.

A Gaussian readout's position is a parameter on the core's feature map, and the core may learn to
shift its features (all kernels moved one way, all readouts the other fits the data as well). The
gradient of a neuron's response with respect to a uniform grey clip (zeros: the training data's
mean) does not depend on how that work is split between core and readout, so its peak is the
place the neuron actually responds to.
"""

from __future__ import annotations

import torch
from torch import nn

from openretina_models.insilico.analyses import _frozen_eval

__all__ = ["grey_receptive_fields"]


def grey_receptive_fields(model: nn.Module, session: str, chunk: int = 64) -> torch.Tensor:
    """`(N, C, T, H, W)`: the gradient of each neuron's last output frame with respect to a grey
    clip just long enough for one output frame (`model.warmup_frames + 1` frames).

    Neurons are taken `chunk` at a time, each with its own copy of the clip in one batch, so one
    backward pass serves the whole chunk.
    """
    sizes = model.n_neurons
    if session not in sizes:
        raise ValueError(f"Unknown session {session!r}; the model knows {', '.join(sizes)}.")
    channels, height, width = (int(s) for s in model.in_shape)
    frames = int(getattr(model, "warmup_frames", 0)) + 1
    device = next(model.parameters()).device
    was_training = model.training
    frozen = _frozen_eval(model)
    fields = []
    try:
        for start in range(0, int(sizes[session]), chunk):
            neurons = torch.arange(start, min(start + chunk, int(sizes[session])), device=device)
            shape = (len(neurons), channels, frames, height, width)
            clip = torch.zeros(shape, device=device, requires_grad=True)
            out = model(clip, session)  # (B, T_out, N)
            out[torch.arange(len(neurons), device=device), -1, neurons].sum().backward()
            fields.append(clip.grad.detach().cpu())
    finally:
        for parameter in frozen:
            parameter.requires_grad_(True)
        model.train(was_training)
    return torch.cat(fields)
