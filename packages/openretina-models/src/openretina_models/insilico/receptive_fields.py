"""Receptive fields from responses to dense noise: spike-triggered averages and 2-D fits.

A model has no sampling-noise budget: its response to as much noise as one likes costs one
forward pass, and the spike-triggered average (here the response-weighted average of the
preceding frames, with the mean response removed) is computed for all neurons at once as one
matrix product per time lag. The spatial receptive field (the STA at its strongest lag and
channel) is then fitted, for all neurons together, by a difference of Gaussians with a shared
elliptical shape: centre, σ major/minor, angle, and a surround `k · exp(-q / 2s²)` whose strength
is reported as the ratio of its integral to the centre's (`k s²`; 0 = no surround).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["ReceptiveFieldFit", "fit_receptive_fields", "spatial_receptive_fields", "spike_triggered_average"]


def spike_triggered_average(stimulus: torch.Tensor, responses: torch.Tensor, lags: int) -> torch.Tensor:
    """STAs `(N, C, lags, H, W)` from a noise movie `(C, T, H, W)` and responses `(T, N)` aligned with its
    frames: lag 0 is the frame shown at the time of the response, lag L the frame L frames earlier."""
    if stimulus.ndim != 4 or responses.ndim != 2 or responses.shape[0] != stimulus.shape[1]:
        raise ValueError(
            f"stimulus must be (C, T, H, W) and responses (T, N) with the same T; got "
            f"{tuple(stimulus.shape)} and {tuple(responses.shape)}."
        )
    c, t, h, w = stimulus.shape
    if not 1 <= lags < t:
        raise ValueError(f"lags={lags} must be between 1 and the number of frames - 1 ({t - 1}).")
    s = stimulus.to(torch.float64).reshape(c, t, h * w).permute(1, 0, 2).reshape(t, c * h * w)
    r = responses.to(torch.float64)
    r = r[lags - 1 :] - r[lags - 1 :].mean(dim=0, keepdim=True)  # (T', N), mean removed
    used = r.shape[0]
    out = torch.empty(r.shape[1], lags, c * h * w, dtype=torch.float64)
    for lag in range(lags):
        frames = s[lags - 1 - lag : lags - 1 - lag + used]  # the frames `lag` before each response
        out[:, lag] = r.T @ frames / used
    return out.reshape(-1, lags, c, h, w).permute(0, 2, 1, 3, 4).to(torch.float32)


def spatial_receptive_fields(sta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per neuron, the STA's spatial map `(N, H, W)` at the channel and lag of most energy, and that
    channel `(N,)` and lag `(N,)`."""
    n, c, lags, _h, _w = sta.shape
    energy = sta.pow(2).sum(dim=(3, 4)).reshape(n, c * lags)
    best = energy.argmax(dim=1)
    channel, lag = best // lags, best % lags
    maps = sta[torch.arange(n), channel, lag]
    return maps, channel, lag


@dataclass
class ReceptiveFieldFit:
    """Difference-of-Gaussians fits, in pixels (x: column, y: row, from the top-left pixel's centre)."""

    x: np.ndarray
    y: np.ndarray
    sigma_major: np.ndarray
    sigma_minor: np.ndarray
    angle_deg: np.ndarray  # of the major axis, counter-clockwise from +x with y up, in [0, 180)
    surround_strength: np.ndarray  # integral of the surround over that of the centre
    polarity: np.ndarray  # +1: the centre has the sign of a light increment (ON), -1 (OFF)
    r2: np.ndarray  # fraction of the map's variance the fit explains
    fitted: np.ndarray  # (N, H, W) the fitted maps, with the maps' sign and scale


# The DoG's parameters, one column each of a (N, 9) tensor. Sigmas, the surround's weight and its
# relative width go through softplus or sigmoid, so every value of a column is a valid field.
PARAMETERS = ("x", "y", "s1", "s2", "theta", "k", "scale", "amp", "offset")


def _softplus(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.softplus(x)


def _dog(p: torch.Tensor, xx: torch.Tensor, yy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The fields `(N, H*W)` of parameters `p` `(N, 9)` and their derivatives `(N, H*W, 9)` with
    respect to each neuron's own parameters (written out: the fit needs them at every step)."""
    x, y, s1, s2, theta, k, surround, amp, offset = (p[:, i, None] for i in range(len(PARAMETERS)))
    sig1, sig2 = 0.3 + _softplus(s1), 0.3 + _softplus(s2)
    cos, sin = torch.cos(theta), torch.sin(theta)
    dx, dy = xx.reshape(1, -1) - x, yy.reshape(1, -1) - y
    # rows grow downwards; angles are measured with y up, hence the minus sign on dy
    u = dx * cos - dy * sin
    v = dx * sin + dy * cos
    q = (u / sig1) ** 2 + (v / sig2) ** 2
    weight = torch.sigmoid(k)
    width = 1.0 + _softplus(surround)
    centre = torch.exp(-q / 2)
    ring = torch.exp(-q / (2 * width**2))
    shape = centre - weight * ring
    by_q = amp * (-centre / 2 + weight * ring / (2 * width**2))  # d field / d q
    by_u, by_v = by_q * 2 * u / sig1**2, by_q * 2 * v / sig2**2
    jacobian = torch.stack(
        [
            -(by_u * cos + by_v * sin),  # x: du/dx = -cos, dv/dx = -sin
            by_u * sin - by_v * cos,  # y: du/dy = sin, dv/dy = -cos
            by_q * (-2 * u**2 / sig1**3) * torch.sigmoid(s1),
            by_q * (-2 * v**2 / sig2**3) * torch.sigmoid(s2),
            -by_u * v + by_v * u,  # theta: du/dθ = -v, dv/dθ = u
            -amp * ring * weight * (1 - weight),
            -amp * weight * ring * q / width**3 * torch.sigmoid(surround),
            shape,
            torch.ones_like(shape),
        ],
        dim=2,
    )
    return amp * shape + offset, jacobian


def _levenberg_marquardt(
    p: torch.Tensor, target: torch.Tensor, xx: torch.Tensor, yy: torch.Tensor, steps: int
) -> torch.Tensor:
    """Least squares of every neuron's field against its map: each neuron has its own damping and
    accepts its own steps (the problems are independent; they only share the tensor operations)."""
    n = p.shape[0]
    flat = target.reshape(n, -1)
    damping = torch.ones(n, dtype=p.dtype)
    fitted, jac = _dog(p, xx, yy)
    loss = (fitted - flat).pow(2).sum(dim=1)
    active = torch.ones(n, dtype=torch.bool)
    for _ in range(steps):
        normal = jac.transpose(1, 2) @ jac  # (N, 9, 9)
        gradient = (jac.transpose(1, 2) @ (fitted - flat)[:, :, None])[:, :, 0]
        diagonal = torch.diagonal(normal, dim1=1, dim2=2)
        # Marquardt's scaling, with a floor so a parameter the map does not constrain (the surround's
        # width when it has no weight) cannot take a huge step into a flat, saturated region
        diagonal = diagonal.clamp_min(1e-2 * diagonal.mean(dim=1, keepdim=True)) + 1e-12
        step = -torch.linalg.solve(normal + damping[:, None, None] * torch.diag_embed(diagonal), gradient)
        trial = p + step
        trial_fitted, trial_jac = _dog(trial, xx, yy)
        trial_loss = (trial_fitted - flat).pow(2).sum(dim=1)
        better = active & torch.isfinite(trial_loss) & (trial_loss < loss)
        # converged: a nearly undamped (Gauss-Newton) step no longer lowers the loss noticeably
        settled = better & (damping < 1e-2) & (loss - trial_loss <= 1e-9 * loss)
        p = torch.where(better[:, None], trial, p)
        fitted = torch.where(better[:, None], trial_fitted, fitted)
        jac = torch.where(better[:, None, None], trial_jac, jac)
        loss = torch.where(better, trial_loss, loss)
        damping = torch.where(better, (damping / 3).clamp_min(1e-9), damping * 4)
        active = active & ~settled & (damping < 1e10)  # or no step left that lowers the loss
        if not bool(active.any()):
            break
    return p


def fit_receptive_fields(maps: torch.Tensor | np.ndarray, *, steps: int = 100) -> ReceptiveFieldFit:
    """Fit every spatial map `(N, H, W)` with an elliptical difference of Gaussians: all maps at
    once, each its own least-squares problem solved by Levenberg-Marquardt with the derivatives
    written out (no optimiser library: `torch.optim` alone would take seconds to import). Maps are
    flipped so their largest value is positive and scaled to 1 first; `polarity` records the flip."""
    m = torch.as_tensor(maps, dtype=torch.float64)
    if m.ndim != 3:
        raise ValueError(f"maps must be (N, H, W), got {tuple(m.shape)}.")
    n, h, w = m.shape
    flat = m.reshape(n, -1)
    peak = flat.abs().argmax(dim=1)
    sign = torch.sign(flat[torch.arange(n), peak])
    sign[sign == 0] = 1.0
    scale = flat.abs().max(dim=1).values.clamp_min(1e-30)
    target = m * (sign / scale)[:, None, None]
    yy, xx = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )
    # start at the centre of mass of the positive part around the peak, 1 pixel wide, round
    positive = target.clamp_min(0) ** 2
    mass = positive.sum(dim=(1, 2)).clamp_min(1e-30)
    inv_softplus_1 = math.log(math.expm1(0.7))  # sigma = 1 pixel
    start = {
        "x": (positive * xx).sum(dim=(1, 2)) / mass,
        "y": (positive * yy).sum(dim=(1, 2)) / mass,
        "s1": inv_softplus_1 + 0.3,
        "s2": inv_softplus_1,
        "theta": 0.0,
        "k": -3.0,
        "scale": 0.5,
        "amp": 1.0,
        "offset": 0.0,
    }
    p = torch.stack([torch.as_tensor(start[k], dtype=torch.float64).expand(n) for k in PARAMETERS], dim=1)
    p = _levenberg_marquardt(p, target, xx, yy, steps)
    fitted = _dog(p, xx, yy)[0].reshape(n, h, w)
    params = dict(zip(PARAMETERS, p.unbind(dim=1), strict=True))
    residual = (fitted - target).pow(2).sum(dim=(1, 2))
    total = (target - target.mean(dim=(1, 2), keepdim=True)).pow(2).sum(dim=(1, 2)).clamp_min(1e-30)
    sig1 = 0.3 + _softplus(params["s1"])
    sig2 = 0.3 + _softplus(params["s2"])
    swap = sig2 > sig1
    major, minor = torch.where(swap, sig2, sig1), torch.where(swap, sig1, sig2)
    theta = torch.where(swap, params["theta"] + math.pi / 2, params["theta"])
    k = torch.sigmoid(params["k"])
    surround_scale = 1.0 + _softplus(params["scale"])
    return ReceptiveFieldFit(
        x=params["x"].numpy().copy(),
        y=params["y"].numpy().copy(),
        sigma_major=major.numpy(),
        sigma_minor=minor.numpy(),
        angle_deg=(torch.rad2deg(theta) % 180.0).numpy(),
        surround_strength=(k * surround_scale**2).numpy(),
        polarity=sign.numpy(),
        r2=(1 - residual / total).numpy(),
        fitted=(fitted * (scale / sign)[:, None, None]).numpy(),
    )
