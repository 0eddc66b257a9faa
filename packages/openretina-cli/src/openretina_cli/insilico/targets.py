"""The targets of ``openretina mei`` and their optimisation: settings, groups, one call each.

A group is one tensor of meis.safetensors (a session's neurons or clusters, or a layer's
channels) with the objective that scores it. The optimisation itself is
`openretina_models.insilico.optimise_targets`: a target's stimulus depends only on the settings and
its own seed (``--seed`` plus the neuron index, the channel, or the cluster's position).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from openretina_cli.errors import ConfigError, did_you_mean
from openretina_cli.insilico.request import RMS_CONTRAST, MeiRequest


@dataclass
class Group:
    """One batch of targets: the key of its tensor, what each stimulus drives, how it is scored."""

    key: str
    kind: str  # "neuron", "cluster" or "channel"
    labels: list[Any]  # per target: neuron index, cluster label or channel
    session: str | None
    objective: Any
    extra: list[dict[str, Any]] = field(default_factory=list)  # per-target fields for meis.json


def check_finite_weights(model: Any, name: str) -> None:
    """A model whose weights hold NaN or inf can only give stimuli that are not numbers."""
    import torch

    for key, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ConfigError(
                f"MODEL {name}: its weights hold NaN or infinite values ({key}), so no stimulus can be "
                "optimised for it. Retrain it, or export it again from a checkpoint taken before the "
                "values broke."
            )


def diverged(ex: Exception, request: MeiRequest) -> ConfigError:
    causes = [f"--lr {request.lr:g} is too large for --optimizer {request.optimizer} (try 10x smaller)"]
    if request.discriminative:
        causes.append(f"--temperature {request.temperature:g} is too small (try 0.1 to 1)")
    return ConfigError(f"The optimisation diverged: {ex}. Likely cause: {'; or '.join(causes)}.")


def parse_indices(text: str, count: int, what: str, where: str) -> list[int]:
    """``0,3,5-9`` as a sorted list of unique indices below ``count``."""
    indices: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part.lstrip("-"):
                first, last = (int(v) for v in part.split("-", 1))
                chosen = range(first, last + 1)
            else:
                chosen = range(int(part), int(part) + 1)
        except ValueError:
            raise ConfigError(f"{what} {text!r}: {part!r} is not an index or a range like 5-9.") from None
        if not chosen:
            raise ConfigError(f"{what} {text!r}: the range {part!r} is empty; write it as LOW-HIGH.")
        bad = [i for i in chosen if not 0 <= i < count]
        if bad:
            raise ConfigError(
                f"{what} {bad[0]} does not exist in {where}, which has {count} (indices 0..{count - 1})."
            )
        indices.update(chosen)
    return sorted(indices)


def _parse_window(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        start, stop = (int(v) for v in text.split(":"))
    except ValueError:
        raise ConfigError(f"--window {text!r}: write it as START:STOP in output frames, e.g. 0:10.") from None
    return start, stop


def _parse_ranges(texts: Sequence[str], channels: int) -> tuple[list[float], list[float]]:
    lows, highs = [], []
    for text in texts:
        try:
            low, high = (float(v) for v in text.split(":"))
        except ValueError:
            raise ConfigError(
                f"--range {text!r}: write it as MIN:MAX, e.g. -2.5:3 (use --range=-3:3)."
            ) from None
        lows.append(low)
        highs.append(high)
    if len(texts) not in (1, channels):
        raise ConfigError(
            f"{len(texts)} --range values for a {channels}-channel model; give one for all channels or "
            f"one per channel."
        )
    return lows * (channels // len(lows)), highs * (channels // len(highs))


@dataclass
class Settings:
    """The optimisation settings, as recorded in meis.json."""

    frames: int
    window: tuple[int, int] | None
    constraints: list[Any]
    stopper: Any
    jitter: Any
    range_note: str | None
    record: dict[str, Any]


def settings_for(request: MeiRequest, model: Any) -> Settings:
    """The constraints, stopper and jitter of `request` for `model`, and their record for meis.json."""
    from openretina_models import insilico

    channels, height, width = (int(v) for v in model.in_shape)
    warmup = int(model.warmup_frames)
    frames = warmup + 10 if request.frames is None else int(request.frames)
    if frames <= warmup:
        raise ConfigError(
            f"--frames {frames} is too short: the model needs more than {warmup} frames (its warm-up) "
            f"to respond; use --frames {warmup + 1} or more."
        )
    window = _parse_window(request.window)
    if request.inner is None:
        try:
            insilico.objectives.output_window(window, frames - warmup)
        except ValueError as ex:
            raise ConfigError(f"--window: {ex}") from None
    note = None
    if request.ranges:
        lows, highs = _parse_ranges(request.ranges, channels)
    else:
        try:
            lows, highs, note = insilico.default_ranges(getattr(model, "data_info", None), channels)
        except ValueError as ex:
            raise ConfigError(f"MODEL {request.model}: {ex} Pass --range MIN:MAX.") from None
    norm = (
        request.norm
        if request.norm is not None
        else RMS_CONTRAST * math.sqrt(channels * frames * height * width)
    )
    try:
        constraints: list[Any] = [insilico.ValueRange(lows, highs), insilico.L2Norm(norm)]
    except ValueError as ex:
        raise ConfigError(f"--range: {ex}" if "range" in str(ex) else f"--norm: {ex}") from None
    if request.temporal_sigma > 0:
        constraints.append(insilico.TemporalSmoothing(request.temporal_sigma))
    if request.spatial_sigma > 0:
        constraints.append(insilico.SpatialBlur(request.spatial_sigma))
    if request.plateau:
        stopper = insilico.Plateau(patience=request.plateau, max_iterations=request.iterations)
    else:
        stopper = insilico.FixedIterations(request.iterations)
    jitter = insilico.Jitter(request.jitter) if request.jitter else None
    record: dict[str, Any] = {
        "frames": frames,
        "warmup_frames": warmup,
        "window": list(window) if window else None,
    }
    record.update(optimizer=request.optimizer, lr=request.lr, seed=request.seed, **stopper.describe())
    constraint_record: dict[str, Any] = {}
    for constraint in constraints:
        constraint_record.update(constraint.describe())
    if jitter:
        constraint_record.update(jitter.describe())
    record["constraints"] = constraint_record
    stored = (getattr(model, "data_info", None) or {}).get("stimulus_range")
    record["range_source"] = "--range" if request.ranges else ("model" if stored else "default")
    return Settings(frames, window, constraints, stopper, jitter, note, record)


def _session_names(request: MeiRequest, model: Any) -> list[str]:
    known = list(model.n_neurons)
    if not request.sessions:
        return known
    for name in request.sessions:
        if name not in known:
            raise ConfigError(
                f"--session {name!r}: the model has no such session.{did_you_mean(name, known)} "
                f"Sessions: {', '.join(known)}."
            )
    return list(dict.fromkeys(request.sessions))


def groups_for(request: MeiRequest, model: Any, settings: Settings) -> list[Group]:
    """One group per session (neurons or clusters), or one for the channels of ``--inner``."""
    from openretina_models import insilico

    if request.inner:
        return [_inner_group(request, model, settings)]
    groups = []
    for session in _session_names(request, model):
        count = int(model.n_neurons[session])
        where = f"session {session!r}"
        neurons = (
            list(range(count))
            if request.neurons is None
            else parse_indices(request.neurons, count, "Neuron", where)
        )
        ids = _neuron_ids(model, session, count)
        if request.discriminative:
            labels = _metadata(model, session, request.discriminative, count)
            clusters = sorted({labels[n] for n in neurons}, key=str)
            if len(clusters) < 2:
                raise ConfigError(
                    f"--discriminative {request.discriminative}: the chosen neurons of {where} are all "
                    f"{clusters[0]!r}; most discriminative stimuli need at least two groups."
                )
            members = [[n for n in neurons if labels[n] == c] for c in clusters]
            objective = insilico.ContrastiveObjective(
                model, session, members, window=settings.window, temperature=request.temperature
            )
            extra = [{"cluster": c, "neurons": m} for c, m in zip(clusters, members, strict=True)]
            groups.append(Group(session, "cluster", clusters, session, objective, extra))
        else:
            objective = insilico.ResponseObjective(model, session, neurons, window=settings.window)
            extra = [{"neuron": n, "neuron_id": ids[n]} for n in neurons]
            groups.append(Group(session, "neuron", neurons, session, objective, extra))
    return groups


def _inner_group(request: MeiRequest, model: Any, settings: Settings) -> Group:
    import torch
    from openretina_models import insilico

    try:
        probe = insilico.InnerUnitObjective(model, request.inner, [0], window=settings.window)
        with torch.no_grad():
            shape = tuple(probe.activations(torch.zeros(model.stimulus_shape(settings.frames))).shape)
    except ValueError as ex:
        raise ConfigError(f"--inner: {ex}") from None
    count, frames = shape[1], shape[2]
    channels = (
        list(range(count))
        if request.channels is None
        else parse_indices(request.channels, count, "Channel", f"layer {request.inner!r}")
    )
    try:
        insilico.objectives.output_window(settings.window, frames)
    except ValueError as ex:
        raise ConfigError(f"--window (in layer {request.inner}'s output frames): {ex}") from None
    objective = insilico.InnerUnitObjective(model, request.inner, channels, window=settings.window)
    return Group(request.inner, "channel", channels, None, objective, [{"channel": c} for c in channels])


def _neuron_ids(model: Any, session: str, count: int) -> list[Any]:
    info = ((getattr(model, "data_info", None) or {}).get("sessions") or {}).get(session) or {}
    ids = info.get("neuron_ids")
    return list(ids) if isinstance(ids, list) and len(ids) == count else list(range(count))


def _metadata(model: Any, session: str, key: str, count: int) -> list[Any]:
    info = ((getattr(model, "data_info", None) or {}).get("sessions") or {}).get(session) or {}
    metadata = info.get("metadata") or {}
    values = metadata.get(key)
    if not isinstance(values, list) or len(values) != count:
        known = sorted(k for k, v in metadata.items() if isinstance(v, list) and len(v) == count)
        raise ConfigError(
            f"--discriminative {key}: session {session!r} has no per-neuron metadata field {key!r}."
            f"{did_you_mean(key, known)} Fields: {', '.join(known) or '(none stored with the model)'}."
        )
    return [v if isinstance(v, str | int | float) else json.dumps(v) for v in values]


def seeds_of(group: Group, seed: int) -> list[int]:
    """Each target's seed: ``seed`` plus its neuron index or channel, or its cluster's position."""
    if group.kind in ("neuron", "channel"):
        return [seed + int(label) for label in group.labels]
    return [seed + i for i in range(len(group.labels))]


def optimise(group: Group, model: Any, settings: Settings, request: MeiRequest) -> Any:
    """The group's stimuli from `openretina_models.insilico.optimise_targets` (one message on failure)."""
    import functools

    import torch
    from openretina_models import insilico

    channels, height, width = (int(v) for v in model.in_shape)
    optimiser = None
    if request.optimizer == "adam":
        optimiser = functools.partial(torch.optim.Adam, lr=request.lr)
    try:
        result = insilico.optimise_targets(
            group.objective,
            model,
            (channels, settings.frames, height, width),
            seeds_of(group, request.seed),
            batch_size=request.batch_size,
            device=request.device,
            constraints=settings.constraints,
            stopper=settings.stopper,
            optimiser=optimiser,
            lr=request.lr,
            jitter=settings.jitter,
        )
    except insilico.NonFiniteError as ex:
        raise diverged(ex, request) from None
    except ValueError as ex:
        raise ConfigError(f"{group.key}: {ex}") from None
    if all(result.stalled):
        raise ConfigError(
            f"{group.key}: no stimulus moved from its start (or every one ended flat), so there is no MEI "
            f"to write. Check --lr {request.lr:g} (too large a step is undone by the norm and range "
            "limits, too small a step changes nothing) and --iterations."
        )
    return result
