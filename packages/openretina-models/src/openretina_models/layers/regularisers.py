"""Weight penalties, all normalised as means so their weights keep meaning across layer sizes."""

from __future__ import annotations

import torch
import torch.nn.functional as F

_LAPLACE = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def laplace_smoothness(spatial: torch.Tensor) -> torch.Tensor:
    """Mean squared Laplacian of spatial kernels `(out, in, kh, kw)`, zero-padded so edges count too."""
    kernels = spatial.reshape(-1, 1, *spatial.shape[-2:])
    laplace = _LAPLACE.to(device=spatial.device, dtype=spatial.dtype)[None, None]
    return F.conv2d(kernels, laplace, padding=1).pow(2).mean()


def group_sparsity(spatial: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean over (out, in) channel pairs of the L2 norm of each spatial kernel (group lasso)."""
    groups = spatial.reshape(spatial.shape[0] * spatial.shape[1], -1)
    return torch.sqrt(groups.pow(2).sum(dim=1) + eps).mean()


def temporal_smoothness(temporal: torch.Tensor) -> torch.Tensor:
    """Mean squared second difference of temporal kernels `(..., kt)`; zero for kernels shorter than 3."""
    if temporal.shape[-1] < 3:
        return temporal.new_zeros(())
    second = temporal[..., 2:] - 2 * temporal[..., 1:-1] + temporal[..., :-2]
    return second.pow(2).mean()
