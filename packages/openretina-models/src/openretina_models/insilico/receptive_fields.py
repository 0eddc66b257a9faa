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
from typing import Any

import numpy as np
import torch

from openretina_models.threads import one_thread

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


def _dog(params: dict[str, torch.Tensor], xx: torch.Tensor, yy: torch.Tensor) -> torch.Tensor:
    sig1 = 0.3 + torch.nn.functional.softplus(params["s1"])
    sig2 = 0.3 + torch.nn.functional.softplus(params["s2"])
    cos, sin = torch.cos(params["theta"]), torch.sin(params["theta"])
    dx = xx[None] - params["x"][:, None, None]
    dy = yy[None] - params["y"][:, None, None]
    # rows grow downwards; angles are measured with y up, hence the minus sign on dy
    u = dx * cos[:, None, None] - dy * sin[:, None, None]
    v = dx * sin[:, None, None] + dy * cos[:, None, None]
    q = (u / sig1[:, None, None]) ** 2 + (v / sig2[:, None, None]) ** 2
    k = torch.sigmoid(params["k"])[:, None, None]
    scale = (1.0 + torch.nn.functional.softplus(params["scale"]))[:, None, None]
    amp = params["amp"][:, None, None]
    return amp * (torch.exp(-q / 2) - k * torch.exp(-q / (2 * scale**2))) + params["offset"][:, None, None]


class _PlainLBFGS(torch.optim.LBFGS):
    """torch's L-BFGS, set up without importing `torch._dynamo` (seconds, on first use of any
    `torch.optim` optimiser): `Optimizer.add_param_group` is wrapped only so that `torch.compile`
    skips it, and this fit is never compiled, so the undecorated function does the same work."""

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        plain = getattr(torch.optim.Optimizer.add_param_group, "__wrapped__", None)
        if plain is None:  # a torch that no longer wraps it
            super().add_param_group(param_group)
        else:
            plain(self, param_group)


def fit_receptive_fields(maps: torch.Tensor | np.ndarray, *, steps: int = 100) -> ReceptiveFieldFit:
    """Fit every spatial map `(N, H, W)` with an elliptical difference of Gaussians (all maps at
    once by L-BFGS; each map's loss depends on its own parameters only). Maps are flipped so their largest
    value is positive and scaled to 1 first; `polarity` records the flip."""
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
    x0 = (positive * xx).sum(dim=(1, 2)) / mass
    y0 = (positive * yy).sum(dim=(1, 2)) / mass
    inv_softplus_1 = math.log(math.expm1(0.7))  # sigma = 1 pixel
    params = {
        "x": x0.clone(),
        "y": y0.clone(),
        "s1": torch.full((n,), inv_softplus_1 + 0.3, dtype=torch.float64),
        "s2": torch.full((n,), inv_softplus_1, dtype=torch.float64),
        "theta": torch.zeros(n, dtype=torch.float64),
        "k": torch.full((n,), -3.0, dtype=torch.float64),
        "scale": torch.full((n,), 0.5, dtype=torch.float64),
        "amp": torch.ones(n, dtype=torch.float64),
        "offset": torch.zeros(n, dtype=torch.float64),
    }
    for p in params.values():
        p.requires_grad_(True)
    # One L-BFGS problem for all maps: the loss is a sum of per-map terms, so each map's parameters
    # see only their own map's gradient.
    optimiser = _PlainLBFGS(
        list(params.values()),
        lr=1.0,
        max_iter=steps,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-10,
        tolerance_change=1e-14,
    )

    def closure() -> torch.Tensor:
        for p in params.values():  # what `optimiser.zero_grad()` does, without its torch._dynamo import
            p.grad = None
        loss = (_dog(params, xx, yy) - target).pow(2).sum()
        loss.backward()
        return loss

    with one_thread():  # tiny tensors: more threads only add synchronisation
        optimiser.step(closure)
    with torch.no_grad():
        fitted = _dog(params, xx, yy)
        residual = (fitted - target).pow(2).sum(dim=(1, 2))
        total = (target - target.mean(dim=(1, 2), keepdim=True)).pow(2).sum(dim=(1, 2)).clamp_min(1e-30)
        sig1 = 0.3 + torch.nn.functional.softplus(params["s1"])
        sig2 = 0.3 + torch.nn.functional.softplus(params["s2"])
        theta = params["theta"].clone()
        swap = sig2 > sig1
        major, minor = torch.where(swap, sig2, sig1), torch.where(swap, sig1, sig2)
        theta = torch.where(swap, theta + math.pi / 2, theta)
        k = torch.sigmoid(params["k"])
        surround_scale = 1.0 + torch.nn.functional.softplus(params["scale"])
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
