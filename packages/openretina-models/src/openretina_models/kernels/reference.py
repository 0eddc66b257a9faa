"""Pure-PyTorch reference implementations: always available, and the ground truth for kernel tests."""

from __future__ import annotations

import torch


def readout_contraction_reference(
    features: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """`out[b, t, n] = sum_{c, h, w} features[b, c, t, h, w] * mask[n, h, w] * weights[n, c]`.

    Contracts space first (one matmul over pixels), then channels, so the full per-neuron
    `(N, C, H, W)` weight tensor and a permuted copy of the features are never built.
    """
    b, c, t, h, w = features.shape
    n = mask.shape[0]
    spatial = torch.matmul(features.reshape(b, c, t, h * w), mask.reshape(n, h * w).t())  # (B, C, T, N)
    return torch.einsum("bctn,nc->btn", spatial, weights)
