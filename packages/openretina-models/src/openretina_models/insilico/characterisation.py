"""Characterise every neuron of a model the way retina labs characterise cells.

`characterise` shows the model the standard stimuli of `insilico.stimuli` (chirp, moving bars,
flashes, drifting gratings, dense noise), all neurons of a session at once and the conditions of
each stimulus in batches, and turns the responses into one table row per neuron (ON-OFF and
transience indices, direction and orientation selectivity with a shuffle test, frequency and
contrast response, grating tuning, chromatic preference, a fitted receptive field) and the traces
behind them. `functional_type_features` builds the features the functional types are clustered on.

Every stimulus starts with the model adapted to its first frame: the model's warm-up frames are
that frame repeated, so the responses line up frame by frame with the stimulus.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from openretina_models.insilico import indices, stimuli
from openretina_models.insilico.receptive_fields import (
    fit_receptive_fields,
    spatial_receptive_fields,
    spike_triggered_average,
)
from openretina_models.prediction import sees_ahead
from openretina_models.threads import OneThreadWorkers

__all__ = [
    "RF_FIT_MIN_PIXELS",
    "STIMULUS_NAMES",
    "Characterisation",
    "channel_gradients",
    "characterise",
    "functional_type_features",
    "make_stimuli",
    "model_responses",
]

STIMULUS_NAMES = ("chirp", "bars", "flashes", "gratings", "noise")
FREQUENCY_BINS = 8  # pieces of the chirp's frequency and contrast sweeps
NOISE_SECONDS = 120.0  # default dense-noise length: 3600 frames at 30 Hz
PERMUTATIONS = 1000
RF_FIT_MIN_PIXELS = 3  # a difference-of-Gaussians fit needs frames at least this many pixels each way

Progress = Callable[[str, int], None]  # (what was just done, how many work units it was)


def make_stimuli(
    space: stimuli.StimulusSpace,
    names: Sequence[str] = STIMULUS_NAMES,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[dict[str, stimuli.StimulusSet], dict[str, str]]:
    """The stimulus sets `names` for `space`, with keyword `options` per name; and, per stimulus the
    frame cannot show (`UnshowableStimulus`), why it was left out. Any other `StimulusError` (a
    parameter that does not fit) is raised: nothing is worth running with a wrong stimulus."""
    unknown = [n for n in names if n not in STIMULUS_NAMES]
    if unknown:
        raise stimuli.StimulusError(
            f"Unknown stimulus {unknown[0]!r}; the stimuli are {', '.join(STIMULUS_NAMES)}."
        )
    options = options or {}
    makers: dict[str, Callable[..., stimuli.StimulusSet]] = {
        "chirp": stimuli.chirp,
        "bars": stimuli.moving_bars,
        "flashes": stimuli.flashes,
        "gratings": stimuli.drifting_gratings,
        "noise": stimuli.dense_noise,
    }
    sets, skipped = {}, {}
    for name in names:
        kwargs = dict(options.get(name, {}))
        if name == "noise" and "frames" not in kwargs and "duration_s" not in kwargs:
            kwargs["duration_s"] = NOISE_SECONDS
        try:
            sets[name] = makers[name](space, **kwargs)
        except stimuli.UnshowableStimulus as ex:
            skipped[name] = str(ex)
    return sets, skipped


def model_responses(
    model: nn.Module,
    movies: torch.Tensor,
    sessions: Sequence[str],
    *,
    batch_size: int = 8,
    chunk_frames: int = 1024,
    device: torch.device | str | None = None,
) -> dict[str, torch.Tensor]:
    """Responses `(K, T, N)` per session to movies `(K, C, T, H, W)` (normalised units), one output per
    frame: the warm-up is the first frame repeated. Long movies go through in overlapping time chunks
    (exact for causal models; models that pad time get the whole movie at once)."""
    was_training = model.training
    model.eval()
    try:
        pieces = _response_pieces(model, movies, sessions, batch_size, chunk_frames, device)
        return _joined([[piece() for piece in batch] for batch in pieces])
    finally:
        model.train(was_training)


def _response_pieces(
    model: nn.Module,
    movies: torch.Tensor,
    sessions: Sequence[str],
    batch_size: int,
    chunk_frames: int,
    device: torch.device | str | None,
) -> list[list[Callable[[], dict[str, torch.Tensor]]]]:
    """The forward passes of `model_responses`, per batch of movies one per time chunk: independent
    of each other, so they may run at once on several threads (the model in eval mode). Each
    returns `(B, frames of its chunk, N)` per session."""
    warmup = int(model.warmup_frames)
    k, _, frames, _, _ = movies.shape
    dev = torch.device(device) if device is not None else next(iter(model.parameters())).device
    step = frames if sees_ahead(model) else max(int(chunk_frames), 1)
    forward_sessions = getattr(model, "forward_sessions", None)

    def piece(padded: torch.Tensor, start: int, stop: int) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            clip = padded[:, :, start : stop + warmup].to(dev)
            if forward_sessions is not None:
                result = forward_sessions(clip, list(sessions))
            else:
                result = {s: model(clip, s) for s in sessions}
            return {s: result[s][:, -(stop - start) :].float().cpu() for s in sessions}

    pieces = []
    for first in range(0, k, batch_size):
        batch = movies[first : first + batch_size]
        padded = torch.cat([batch[:, :, :1].expand(-1, -1, warmup, -1, -1), batch], dim=2)
        pieces.append([partial(piece, padded, a, min(a + step, frames)) for a in range(0, frames, step)])
    return pieces


def _joined(pieces: Sequence[Sequence[Mapping[str, torch.Tensor]]]) -> dict[str, torch.Tensor]:
    """The responses of `_response_pieces` put back together, chunks in time, batches in order."""
    sessions = list(pieces[0][0])
    batches = [{s: torch.cat([chunk[s] for chunk in batch], dim=1) for s in sessions} for batch in pieces]
    return {s: torch.cat([b[s] for b in batches]) for s in sessions}


@dataclass
class Characterisation:
    """One session's neurons: a table of per-neuron values and the traces behind them (neurons first)."""

    session: str
    neurons: list[int]
    table: dict[str, np.ndarray] = field(default_factory=dict)
    traces: dict[str, np.ndarray] = field(default_factory=dict)
    axes: dict[str, Any] = field(default_factory=dict)  # the x values of the traces, JSON-ready


def _rectified(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, None)


def _chirp(result: Characterisation, responses: np.ndarray, stim: stimuli.StimulusSet) -> None:
    """responses (K, T, N)."""
    traces = np.transpose(responses, (2, 0, 1))  # (N, K, T)
    result.traces["chirp"] = traces.astype(np.float32)
    rate = stim.frame_rate_hz
    result.axes["chirp"] = {
        "frame_rate_hz": rate,
        "segments": {k: list(v) for k, v in stim.segments.items()},
        "conditions": stim.conditions,
    }
    main = traces[:, 0]
    a, b = stim.segments["frequency_sweep"]
    freq = indices.sweep_amplitudes(main[:, a:b], FREQUENCY_BINS)
    top = float(stim.parameters["frequency_max_hz"])
    centres = (np.arange(FREQUENCY_BINS) + 0.5) / FREQUENCY_BINS * top
    a, b = stim.segments["contrast_sweep"]
    contrast = indices.sweep_amplitudes(main[:, a:b], FREQUENCY_BINS)
    levels = (np.arange(FREQUENCY_BINS) + 0.5) / FREQUENCY_BINS * float(stim.parameters["contrast"])
    result.traces["chirp_frequency_response"] = freq.astype(np.float32)
    result.traces["chirp_contrast_response"] = contrast.astype(np.float32)
    result.axes["chirp_frequency_response"] = {"frequency_hz": centres.tolist()}
    result.axes["chirp_contrast_response"] = {"contrast": levels.tolist()}
    result.table["chirp_preferred_frequency_hz"] = centres[np.argmax(freq, axis=1)]
    peak = contrast.max(axis=1, keepdims=True)
    reached = contrast >= 0.5 * np.where(peak > 0, peak, np.inf)
    half = np.where(reached.any(axis=1), levels[np.argmax(reached, axis=1)], np.nan)
    result.table["chirp_contrast_half_max"] = half
    # the steps: ON at light onset, OFF at light offset (the dark step), above the response in the dark
    on_a, on_b = stim.segments["light_step"]
    off_a, off_b = stim.segments["dark_step"]
    dark = main[:, stim.segments["dark"][1] - 1]
    on = _rectified(main[:, on_a:on_b] - dark[:, None]).max(axis=1)
    off = _rectified(main[:, off_a:off_b] - main[:, on_b - 1 : on_b]).max(axis=1)
    result.table["chirp_on_off_index"] = indices.on_off_index(on, off)


def _flashes(
    result: Characterisation, responses: np.ndarray, stim: stimuli.StimulusSet, channel_names: list[str]
) -> None:
    traces = np.transpose(responses, (2, 0, 1))  # (N, K, T)
    result.traces["flashes"] = traces.astype(np.float32)
    result.axes["flashes"] = {
        "frame_rate_hz": stim.frame_rate_hz,
        "segments": {k: list(v) for k, v in stim.segments.items()},
        "conditions": stim.conditions,
    }
    _base_a, base_b = stim.segments["baseline"]
    inc, dec = stim.segments["increment"], stim.segments["decrement"]
    for k, condition in enumerate(stim.conditions):
        trace = traces[:, k]
        baseline = trace[:, base_b - 1]
        on_trace, off_trace = trace[:, inc[0] : inc[1]], trace[:, dec[0] : dec[1]]
        on = _rectified(on_trace - baseline[:, None]).max(axis=1)
        off = _rectified(off_trace - baseline[:, None]).max(axis=1)
        suffix = "" if condition["channel"] == "all" else f"_{channel_names[int(condition['channel'])]}"
        result.table[f"on_off_index{suffix}"] = indices.on_off_index(on, off)
        if suffix == "":
            preferred = np.where((on >= off)[:, None], on_trace, off_trace)
            result.table["on_response"] = on
            result.table["off_response"] = off
            result.table["transience_index"] = indices.transience_index(preferred, baseline)


def _bars(result: Characterisation, responses: np.ndarray, stim: stimuli.StimulusSet, seed: int) -> None:
    traces = np.transpose(responses, (2, 0, 1))  # (N, K, T)
    result.traces["bars"] = traces.astype(np.float32)
    result.axes["bars"] = {
        "frame_rate_hz": stim.frame_rate_hz,
        "conditions": stim.conditions,
        "segments": {k: list(v) for k, v in stim.segments.items()},
    }
    directions = stim.parameters["directions_deg"]
    baseline = traces[
        :, :, stim.segments["background_before"][1] - 1 if stim.segments["background_before"][1] else 0
    ]
    a, b = stim.segments["sweep"]
    change = traces[:, :, a:b] - baseline[:, :, None]
    peaks = _rectified(change).max(axis=2)  # (N, K)
    names = list(dict.fromkeys(c["channel"] for c in stim.conditions))
    d = len(directions)
    tuning = peaks.reshape(peaks.shape[0], len(names), d).sum(axis=1)  # colours pooled
    result.traces["bar_tuning"] = tuning.astype(np.float32)
    result.axes["bar_tuning"] = {"direction_deg": list(directions)}
    # a neuron the bars mostly suppress is tuned like one they do not drive (see `mostly_excited`)
    excited = indices.mostly_excited(change.reshape(change.shape[0], -1))
    result.table["bars_excite"] = excited.astype(np.float64)
    tuning = np.where(excited[:, None], tuning, 0.0)
    tuned = indices.direction_tuning(tuning, directions)
    result.table["dsi"] = tuned.dsi
    result.table["osi"] = tuned.osi
    result.table["preferred_direction_deg"] = tuned.preferred_direction_deg
    result.table["preferred_orientation_deg"] = tuned.preferred_orientation_deg
    if d >= 3:
        result.table["ds_p_value"] = indices.direction_p_value(
            tuning, directions, permutations=PERMUTATIONS, seed=seed
        )
        result.table["os_p_value"] = indices.direction_p_value(
            tuning, directions, permutations=PERMUTATIONS, seed=seed, statistic="osi"
        )


def _gratings(
    result: Characterisation, responses: np.ndarray, stim: stimuli.StimulusSet, baseline: np.ndarray
) -> None:
    traces = np.transpose(responses, (2, 0, 1))  # (N, K, T)
    skip = min(traces.shape[2] // 4, max(1, round(0.25 * stim.frame_rate_hz)))  # the onset transient
    magnitude = np.sqrt(((traces[:, :, skip:] - baseline[:, None, None]) ** 2).mean(axis=2))  # (N, K)
    keys = ["spatial_frequency_cycles_per_um", "temporal_frequency_hz", "direction_deg"]
    axes, index = indices.conditions_grid(stim.conditions, keys)
    grid = np.zeros((traces.shape[0], *(len(a) for a in axes)))
    counts = np.zeros(tuple(len(a) for a in axes))
    for k, (i, j, m) in enumerate(index):
        grid[:, i, j, m] += magnitude[:, k]
        counts[i, j, m] += 1
    grid /= np.maximum(counts, 1)[None]
    result.traces["grating_tuning"] = grid.astype(np.float32)
    result.axes["grating_tuning"] = dict(zip(keys, axes, strict=True))
    result.table["preferred_spatial_frequency_cycles_per_um"] = indices.grid_preference(grid, axes[0], 1)
    result.table["preferred_temporal_frequency_hz"] = indices.grid_preference(grid, axes[1], 2)
    n = grid.shape[0]
    best = grid.reshape(n, len(axes[0]) * len(axes[1]), len(axes[2]))
    pick = best.max(axis=2).argmax(axis=1)
    tuning = best[np.arange(n), pick]  # direction tuning at the preferred spatial and temporal frequency
    tuned = indices.direction_tuning(tuning, axes[2])
    result.table["grating_dsi"] = tuned.dsi
    result.table["grating_osi"] = tuned.osi
    result.table["grating_preferred_direction_deg"] = tuned.preferred_direction_deg


def _noise(
    result: Characterisation,
    responses: np.ndarray,
    stim: stimuli.StimulusSet,
    space: stimuli.StimulusSpace,
    lags: int,
) -> None:
    movie = stim.movies[0] / torch.tensor(space.amplitude).view(-1, 1, 1, 1)  # back to contrast units
    sta = spike_triggered_average(movie, torch.from_numpy(responses[0]), lags)  # (N, C, L, H, W)
    maps, channel, lag = spatial_receptive_fields(sta)
    n = maps.shape[0]
    flat = maps.reshape(n, -1).abs().argmax(dim=1)
    h, w = space.height, space.width
    rows, cols = flat // w, flat % w
    temporal = sta[torch.arange(n), :, :, rows, cols]  # (N, C, L)
    result.traces["sta_spatial"] = maps.numpy()
    result.traces["sta_temporal"] = temporal.numpy()
    result.axes["sta_temporal"] = {"lag_ms": (np.arange(lags) / stim.frame_rate_hz * 1000).tolist()}
    result.table["rf_channel"] = channel.numpy()
    result.table["rf_peak_lag_ms"] = lag.numpy() / stim.frame_rate_hz * 1000.0
    if min(h, w) < RF_FIT_MIN_PIXELS:
        return
    fit = fit_receptive_fields(maps)
    result.traces["rf_fitted"] = fit.fitted.astype(np.float32)
    pixel = space.pixel_size_um if space.pixel_size_um is not None else math.nan
    result.table["rf_x_px"] = fit.x
    result.table["rf_y_px"] = fit.y
    result.table["rf_x_um"] = (fit.x + 0.5) * pixel
    result.table["rf_y_um"] = (fit.y + 0.5) * pixel
    result.table["rf_sigma_major_um"] = fit.sigma_major * pixel
    result.table["rf_sigma_minor_um"] = fit.sigma_minor * pixel
    result.table["rf_sigma_major_px"] = fit.sigma_major
    result.table["rf_sigma_minor_px"] = fit.sigma_minor
    result.table["rf_angle_deg"] = fit.angle_deg
    result.table["rf_surround_strength"] = fit.surround_strength
    result.table["rf_polarity"] = fit.polarity
    result.table["rf_fit_r2"] = fit.r2


def channel_gradients(
    model: nn.Module,
    movie: torch.Tensor,
    session: str,
    neurons: Sequence[int],
    *,
    batch_size: int = 64,
) -> torch.Tensor:
    """Per neuron, the gradient `(N, C)` of its mean response to `movie` `(C, T, H, W)` with respect
    to a contrast factor on each channel: `chromatic_tuning`'s gradient at factors 1, for many neurons
    in one backward pass. The movie is repeated once per neuron, each copy with its own factors, and
    each copy scores only its own neuron, so the gradient of the sum is every neuron's own gradient."""
    was_training = model.training
    model.eval()
    rows = []
    try:
        for first in range(0, len(neurons), batch_size):
            chunk = torch.as_tensor(list(neurons[first : first + batch_size]), device=movie.device)
            factors = torch.ones(len(chunk), movie.shape[0], dtype=movie.dtype, device=movie.device)
            factors.requires_grad_(True)
            out = model(movie[None] * factors[:, :, None, None, None], session)  # (B, T_out, N_all)
            own = out.mean(dim=1)[torch.arange(len(chunk), device=movie.device), chunk]
            (grad,) = torch.autograd.grad(own.sum(), factors)
            rows.append(grad.detach().cpu())
    finally:
        model.train(was_training)
    return torch.cat(rows)


def _chromatic(
    model: nn.Module,
    session: str,
    neurons: list[int],
    space: stimuli.StimulusSpace,
    rate: float,
    channel_names: list[str],
    batch_size: int,
) -> dict[str, np.ndarray]:
    """Chromatic preference: the gradient of the response to a full-field increment with respect to each
    channel's contrast (`chromatic_tuning` at the all-channels point), as shares of its absolute sum."""
    warmup = int(model.warmup_frames)
    step = max(2, round(0.5 * rate))
    movie = torch.zeros(space.channels, warmup + step, space.height, space.width)
    movie[:, warmup:] = torch.tensor(space.amplitude).view(-1, 1, 1, 1)
    device = next(iter(model.parameters())).device
    grads = channel_gradients(model, movie.to(device), session, neurons, batch_size=batch_size)
    grad = grads.double().numpy()
    share = grad / np.maximum(np.abs(grad).sum(axis=1, keepdims=True), 1e-30)
    out = {f"chromatic_preference_{name}": share[:, c] for c, name in enumerate(channel_names)}
    out["preferred_channel"] = np.argmax(grad, axis=1).astype(np.float64)
    return out


def characterise(
    model: nn.Module,
    sessions: Mapping[str, Sequence[int] | None],
    space: stimuli.StimulusSpace,
    stimulus_sets: Mapping[str, stimuli.StimulusSet],
    *,
    batch_size: int = 8,
    channel_names: Sequence[str] | None = None,
    progress: Progress | None = None,
    seed: int = 0,
    workers: int | None = None,
) -> dict[str, Characterisation]:
    """Responses, indices and receptive-field fits of the chosen neurons (`None`: all) of each session.

    Each stimulus runs once for all sessions (a model with `forward_sessions` computes its core once).
    The batches of every stimulus are shown by `workers` threads at once, each running torch on one
    thread (default: as many as torch has threads on a CPU, one on another device), while this
    thread analyses the responses that are in, the dense noise's first (its receptive-field fits
    take longest). With several workers every number is the one a single thread gives, whatever
    their number; with one, everything runs in turn in this thread on torch's threads as set.
    `progress(what, units)` is called after each stimulus's analysis, in the order they finish.
    """
    names = list(channel_names) if channel_names is not None else [str(c) for c in range(space.channels)]
    chosen = {
        s: (list(range(int(model.n_neurons[s]))) if n is None else [int(i) for i in n])
        for s, n in sessions.items()
    }
    results = {s: Characterisation(s, neurons) for s, neurons in chosen.items()}
    device = next(iter(model.parameters())).device
    if workers is None:
        workers = torch.get_num_threads() if device.type == "cpu" else 1
    was_training = model.training
    model.eval()
    try:
        with OneThreadWorkers(workers) as pool:
            parts = _characterised(
                model, chosen, space, stimulus_sets, batch_size, names, progress, seed, pool
            )
    finally:
        model.train(was_training)
    for name in ["baseline", *stimulus_sets]:  # every column in the order of the stimuli
        for s, result in results.items():
            part = parts[name][s]
            result.table.update(part.table)
            result.traces.update(part.traces)
            result.axes.update(part.axes)
    if "flashes" not in stimulus_sets:
        for result in results.values():
            if "chirp_on_off_index" in result.table:
                result.table["on_off_index"] = result.table["chirp_on_off_index"]
    return results


def _characterised(
    model: nn.Module,
    chosen: dict[str, list[int]],
    space: stimuli.StimulusSpace,
    stimulus_sets: Mapping[str, stimuli.StimulusSet],
    batch_size: int,
    names: list[str],
    progress: Progress | None,
    seed: int,
    pool: OneThreadWorkers,
) -> dict[str, dict[str, Characterisation]]:
    """`characterise`'s work, each stimulus's results apart: {stimulus or "baseline": {session: part}}."""
    sessions = list(chosen)
    zero = torch.zeros(1, space.channels, 1, space.height, space.width)
    baseline = {s: r[0, 0].numpy()[chosen[s]] for s, r in model_responses(model, zero, sessions).items()}
    parts = {"baseline": {s: Characterisation(s, n) for s, n in chosen.items()}}
    for s in chosen:
        parts["baseline"][s].table["baseline"] = baseline[s].astype(np.float64)
    lags = max(2, int(model.warmup_frames) + 1)
    order = sorted(stimulus_sets, key=lambda name: name != "noise")
    shown, chromatic = {}, {}
    for name in order:
        stim = stimulus_sets[name]
        pieces = _response_pieces(model, stim.movies, sessions, batch_size, 1024, None)
        shown[name] = [[pool.submit(piece) for piece in batch] for batch in pieces]
        if name == "flashes" and space.channels > 1:
            for s, neurons in chosen.items():
                job = partial(_chromatic, model, s, neurons, space, stim.frame_rate_hz, names, 8 * batch_size)
                chromatic[s] = pool.submit(job)
    for name in order:
        stim = stimulus_sets[name]
        responses = _joined([[result() for result in batch] for batch in shown.pop(name)])
        parts[name] = {}
        for s, neurons in chosen.items():
            r = responses[s][:, :, neurons].numpy().astype(np.float64)  # (K, T, N)
            part = parts[name][s] = Characterisation(s, neurons)
            if name == "chirp":
                _chirp(part, r, stim)
            elif name == "flashes":
                _flashes(part, r, stim, names)
            elif name == "bars":
                _bars(part, r, stim, seed)
            elif name == "gratings":
                _gratings(part, r, stim, baseline[s])
            elif name == "noise":
                _noise(part, r, stim, space, min(lags, stim.frames - 1))
            if s in chromatic and name == "flashes":
                part.table.update(chromatic[s]())
        if progress is not None:
            progress(name, 1)
    return parts


# Principal components kept of each part of the chirp: the steps (dark, light, dark, grey), the
# frequency sweep and the contrast sweep (each with the grey after it).
CHIRP_COMPONENTS = 2
CHIRP_PARTS = (
    ("dark", "light_step", "dark_step", "mean_before_frequency"),
    ("frequency_sweep", "mean_before_contrast"),
    ("contrast_sweep", "mean_after_contrast", "final_dark"),
)


def _block(features: np.ndarray, components: int) -> np.ndarray:
    """The first principal components of one block of features, scaled to a total variance of 1, so
    each block (a part of the chirp, the bars) weighs the same whatever its number of raw features."""
    x = features - features.mean(axis=0, keepdims=True)
    u, sv, _ = np.linalg.svd(x, full_matrices=False)
    k = max(1, min(components, x.shape[0] - 1, x.shape[1])) if x.shape[0] > 1 else 1
    scores = u[:, :k] * sv[:k]
    total = float((scores**2).sum() / max(x.shape[0], 1))
    return scores / math.sqrt(total) if total > 1e-20 else scores


def _chirp_parts(result: Characterisation) -> list[np.ndarray]:
    """The chirp trace of every neuron (every channel's condition), averaged in bins of about 1/8 s
    and z-scored per neuron, cut into `CHIRP_PARTS` `[(N, bins)]` (parts the chirp lacks left out)."""
    chirp = result.traces["chirp"]
    n, k, t = chirp.shape
    axes = result.axes["chirp"]
    width = max(1, round(float(axes["frame_rate_hz"]) / 8))
    usable = (t // width) * width
    binned = chirp[:, :, :usable].reshape(n, k, -1, width).mean(axis=3).astype(np.float64)
    flat = binned.reshape(n, -1)
    mean = flat.mean(axis=1)[:, None, None]
    std = np.maximum(flat.std(axis=1), 1e-12)[:, None, None]
    binned = (binned - mean) / std
    segments = axes.get("segments", {})
    parts = []
    for names in CHIRP_PARTS:
        spans = [segments[name] for name in names if name in segments]
        if not spans:
            continue
        first, last = min(a for a, _ in spans) // width, max(b for _, b in spans) // width
        if last > first:
            parts.append(binned[:, :, first:last].reshape(n, -1))
    return parts or [binned.reshape(n, -1)]


def functional_type_features(results: Characterisation | Sequence[Characterisation]) -> np.ndarray:
    """Features `(N, F)` the functional types are clustered on, for the neurons of all `results`
    pooled (in order), in the spirit of Baden et al. 2016: the chirp trace, z-scored per neuron and
    reduced part by part (the steps, the frequency sweep, the contrast sweep: `CHIRP_COMPONENTS`
    principal components each, each part weighing a third of the chirp), and, when bars were shown,
    the direction selectivity index: what the bars add to the chirp (Baden et al. sorted
    direction-selective cells from the others with the bars). The chirp and the DSI weigh the same.

    Why part by part: the sweeps are 24 of the chirp's 33 s, so principal components of the whole
    trace spend themselves on the sweeps, and the steps' sustained-or-transient difference ends
    up in small components that the clustering's variance floor drowns (in trained models, ON
    sustained and ON transient cells fell into one type). Why z-scored: scaled to its largest
    change, a trace depends on one transient peak. The shape of the direction tuning is left out:
    for the non-selective majority it holds only weak orientation and frame-edge effects, and it
    split cells of one type by them."""
    pooled = [results] if isinstance(results, Characterisation) else list(results)
    if not pooled:
        raise ValueError("Give at least one characterisation.")
    blocks = []
    if all("chirp" in r.traces for r in pooled):
        per_result = [_chirp_parts(r) for r in pooled]
        counts = {len(parts) for parts in per_result}
        if len(counts) > 1:
            raise ValueError(
                "The characterisations showed chirps with different parts; show them the same chirp."
            )
        parts = [np.concatenate(group) for group in zip(*per_result, strict=True)]
        scale = 1.0 / math.sqrt(len(parts))  # the chirp as a whole weighs as much as the bars
        blocks.extend(_block(part, CHIRP_COMPONENTS) * scale for part in parts)
    if all("bar_tuning" in r.traces for r in pooled):
        dsi = np.concatenate([np.nan_to_num(r.table["dsi"].astype(np.float64)) for r in pooled])
        blocks.append(_block(dsi[:, None], 1))
    if not blocks:
        raise ValueError("Functional types need the chirp or the moving bars; neither was shown.")
    return np.concatenate(blocks, axis=1)
