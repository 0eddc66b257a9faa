"""``openretina mei MODEL``: most exciting inputs, most discriminative stimuli and inner units.

All the stimuli of a session (or a layer) are optimised as one batch with
`openretina_models.insilico`. A target's stimulus depends only on the settings and its own index
(its seed is ``--seed`` plus the index), so optimising neuron 5 alone gives the same MEI as
optimising it among all the others. Every option is checked, and the objective is tried on the
starting stimuli, before anything is written.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openretina_cli import model_source
from openretina_cli.errors import ConfigError, did_you_mean

MEI_FOLDER = "mei"
RMS_CONTRAST = 0.25  # the default --norm is that of a clip with this RMS value (normalised units)


def add_parser(commands: argparse._SubParsersAction) -> None:
    mei = commands.add_parser(
        "mei",
        help="optimise stimuli for a trained model: MEIs, most discriminative stimuli, inner units",
        description=(
            "Find the stimulus that drives each neuron of MODEL most (its MEI), within a norm budget and "
            "per-channel value ranges. --discriminative KEY finds one stimulus per group of neurons "
            "instead; --inner LAYER one per channel of an inner layer. Writes meis.safetensors, "
            "meis.json, figures/ and videos/ into <run>/mei/ (or --out)."
        ),
    )
    mei.add_argument("model", metavar="MODEL", help="run directory, model folder, checkpoint or name")
    mei.add_argument("--session", action="append", default=None, help="session (repeatable; default all)")
    mei.add_argument("--neurons", default=None, help="neuron indices, e.g. 0,3,5-9 (default all)")
    mei.add_argument(
        "--frames", type=int, default=None, help="stimulus length in frames (default: warm-up + 10)"
    )
    mei.add_argument(
        "--window",
        default=None,
        metavar="START:STOP",
        help="output frames whose mean response is maximised (default: all output frames)",
    )
    mei.add_argument("--iterations", type=int, default=200, help="optimiser steps (default 200)")
    mei.add_argument(
        "--plateau",
        type=int,
        default=0,
        metavar="PATIENCE",
        help="stop a stimulus early once its response has not improved for this many steps (default off)",
    )
    mei.add_argument("--lr", type=float, default=10.0, help="learning rate (default 10, for SGD)")
    mei.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd", help="(default sgd)")
    mei.add_argument(
        "--norm",
        type=float,
        default=None,
        help=f"L2 norm budget of each stimulus (default: a clip of RMS {RMS_CONTRAST} normalised units)",
    )
    mei.add_argument(
        "--range",
        action="append",
        default=None,
        metavar="MIN:MAX",
        dest="ranges",
        help="value range in normalised units, once for all channels or once per channel in order "
        "(default: the training movie's range stored with the model)",
    )
    mei.add_argument("--temporal-sigma", type=float, default=0.0, help="Gaussian smoothing in frames")
    mei.add_argument("--spatial-sigma", type=float, default=0.0, help="Gaussian blur in pixels")
    mei.add_argument("--jitter", type=int, default=0, help="random shifts of up to this many pixels")
    mei.add_argument("--seed", type=int, default=0, help="seed of target 0; target i uses seed + i")
    mei.add_argument(
        "--discriminative",
        default=None,
        metavar="KEY",
        help="most discriminative stimuli: group neurons by this per-neuron metadata field (e.g. cell_type)",
    )
    mei.add_argument("--temperature", type=float, default=1.0, help="softmax temperature (--discriminative)")
    mei.add_argument("--inner", default=None, metavar="LAYER", help="optimise channels of this core layer")
    mei.add_argument("--channels", default=None, help="channels of --inner LAYER, e.g. 0-3 (default all)")
    mei.add_argument("--batch-size", type=int, default=64, help="stimuli optimised at once (default 64)")
    mei.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    mei.add_argument("--out", default=None, help="output directory (default: <run>/mei)")
    mei.add_argument("--no-figures", action="store_true", help="write the tensors and meis.json only")


@dataclass
class Group:
    """One batch of targets: the key of its tensor, what each stimulus drives, how it is scored."""

    key: str
    kind: str  # "neuron", "cluster" or "channel"
    labels: list[Any]  # per target: neuron index, cluster label or channel
    session: str | None
    objective: Any
    extra: list[dict[str, Any]] = field(default_factory=list)  # per-target fields for meis.json


def run_mei(parsed: argparse.Namespace) -> int:
    from openretina_cli.train_app import reporting_errors

    with reporting_errors():
        _check_options(parsed)
        source = model_source.resolve(parsed.model)
        out = source.output_dir(parsed.out, MEI_FOLDER)
        model = model_source.load(source, device=parsed.device)
        settings = _settings(parsed, model)
        groups = _groups(parsed, model, settings)
        results = [_optimise(group, model, settings, parsed) for group in groups]
        written = _write(out, model, source, settings, groups, results, figures=not parsed.no_figures)
        written.extend(_update_run_report(source, out))
    for line in written:
        print(line)
    return 0


def _update_run_report(source: model_source.ModelSource, out: Path) -> list[str]:
    """Show the MEIs on the run's report (cards and the grid by cell type) when they were written
    into the run's own mei/ folder and the run has a report."""
    if source.run_dir is None or out.resolve() != (source.run_dir / MEI_FOLDER).resolve():
        return []
    from openretina_cli.evaluation.report import refresh_report

    page = refresh_report(source.run_dir / "eval", out)
    return [] if page is None else [f"Updated the run's report with the MEIs: {page}"]


def _check_options(parsed: argparse.Namespace) -> None:
    positive = {"--iterations": parsed.iterations, "--batch-size": parsed.batch_size}
    for name, value in positive.items():
        if value < 1:
            raise ConfigError(f"{name} must be at least 1, got {value}.")
    if parsed.plateau < 0 or parsed.jitter < 0:
        raise ConfigError("--plateau and --jitter must be 0 (off) or positive.")
    for name, value in {
        "--lr": parsed.lr,
        "--temperature": parsed.temperature,
    }.items():
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{name} must be a positive number, got {value}.")
    if parsed.norm is not None and not (math.isfinite(parsed.norm) and parsed.norm > 0):
        raise ConfigError(
            f"--norm must be a positive number, got {parsed.norm}: it is each stimulus' L2 budget."
        )
    for name, value in {
        "--temporal-sigma": parsed.temporal_sigma,
        "--spatial-sigma": parsed.spatial_sigma,
    }.items():
        if value < 0 or not math.isfinite(value):
            raise ConfigError(f"{name} must be 0 (off) or positive, got {value}.")
    _check_device(parsed.device)
    if parsed.inner and parsed.discriminative:
        raise ConfigError("--inner and --discriminative are different experiments; choose one.")
    if parsed.channels and not parsed.inner:
        raise ConfigError("--channels selects channels of --inner LAYER; add --inner LAYER or use --neurons.")


def _check_device(name: str) -> None:
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device {name!r} is not a torch device; use cpu, cuda, cuda:1 or mps.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: torch sees no CUDA device on this machine; use --device cpu.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {name}: MPS is not available on this machine; use --device cpu.")


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


def _settings(parsed: argparse.Namespace, model: Any) -> Settings:
    from openretina_models import insilico

    channels, height, width = (int(v) for v in model.in_shape)
    warmup = int(model.warmup_frames)
    frames = warmup + 10 if parsed.frames is None else int(parsed.frames)
    if frames <= warmup:
        raise ConfigError(
            f"--frames {frames} is too short: the model needs more than {warmup} frames (its warm-up) "
            f"to respond; use --frames {warmup + 1} or more."
        )
    window = _parse_window(parsed.window)
    if parsed.inner is None:
        try:
            insilico.objectives.output_window(window, frames - warmup)
        except ValueError as ex:
            raise ConfigError(f"--window: {ex}") from None
    note = None
    if parsed.ranges:
        lows, highs = _parse_ranges(parsed.ranges, channels)
    else:
        try:
            lows, highs, note = insilico.default_ranges(getattr(model, "data_info", None), channels)
        except ValueError as ex:
            raise ConfigError(f"MODEL {parsed.model}: {ex} Pass --range MIN:MAX.") from None
    norm = (
        parsed.norm
        if parsed.norm is not None
        else RMS_CONTRAST * math.sqrt(channels * frames * height * width)
    )
    try:
        constraints: list[Any] = [insilico.ValueRange(lows, highs), insilico.L2Norm(norm)]
    except ValueError as ex:
        raise ConfigError(f"--range: {ex}" if "range" in str(ex) else f"--norm: {ex}") from None
    if parsed.temporal_sigma > 0:
        constraints.append(insilico.TemporalSmoothing(parsed.temporal_sigma))
    if parsed.spatial_sigma > 0:
        constraints.append(insilico.SpatialBlur(parsed.spatial_sigma))
    if parsed.plateau:
        stopper = insilico.Plateau(patience=parsed.plateau, max_iterations=parsed.iterations)
    else:
        stopper = insilico.FixedIterations(parsed.iterations)
    jitter = insilico.Jitter(parsed.jitter) if parsed.jitter else None
    record: dict[str, Any] = {
        "frames": frames,
        "warmup_frames": warmup,
        "window": list(window) if window else None,
    }
    record.update(optimizer=parsed.optimizer, lr=parsed.lr, seed=parsed.seed, **stopper.describe())
    constraint_record: dict[str, Any] = {}
    for constraint in constraints:
        constraint_record.update(constraint.describe())
    if jitter:
        constraint_record.update(jitter.describe())
    record["constraints"] = constraint_record
    stored = (getattr(model, "data_info", None) or {}).get("stimulus_range")
    record["range_source"] = "--range" if parsed.ranges else ("model" if stored else "default")
    return Settings(frames, window, constraints, stopper, jitter, note, record)


def _session_names(parsed: argparse.Namespace, model: Any) -> list[str]:
    known = list(model.n_neurons)
    if not parsed.session:
        return known
    for name in parsed.session:
        if name not in known:
            raise ConfigError(
                f"--session {name!r}: the model has no such session.{did_you_mean(name, known)} "
                f"Sessions: {', '.join(known)}."
            )
    return list(dict.fromkeys(parsed.session))


def _groups(parsed: argparse.Namespace, model: Any, settings: Settings) -> list[Group]:
    from openretina_models import insilico

    if parsed.inner:
        return [_inner_group(parsed, model, settings)]
    groups = []
    for session in _session_names(parsed, model):
        count = int(model.n_neurons[session])
        where = f"session {session!r}"
        neurons = (
            list(range(count))
            if parsed.neurons is None
            else parse_indices(parsed.neurons, count, "Neuron", where)
        )
        ids = _neuron_ids(model, session, count)
        if parsed.discriminative:
            labels = _metadata(model, session, parsed.discriminative, count)
            clusters = sorted({labels[n] for n in neurons}, key=str)
            if len(clusters) < 2:
                raise ConfigError(
                    f"--discriminative {parsed.discriminative}: the chosen neurons of {where} are all "
                    f"{clusters[0]!r}; most discriminative stimuli need at least two groups."
                )
            members = [[n for n in neurons if labels[n] == c] for c in clusters]
            objective = insilico.ContrastiveObjective(
                model, session, members, window=settings.window, temperature=parsed.temperature
            )
            extra = [{"cluster": c, "neurons": m} for c, m in zip(clusters, members, strict=True)]
            groups.append(Group(session, "cluster", clusters, session, objective, extra))
        else:
            objective = insilico.ResponseObjective(model, session, neurons, window=settings.window)
            extra = [{"neuron": n, "neuron_id": ids[n]} for n in neurons]
            groups.append(Group(session, "neuron", neurons, session, objective, extra))
    return groups


def _inner_group(parsed: argparse.Namespace, model: Any, settings: Settings) -> Group:
    import torch
    from openretina_models import insilico

    try:
        probe = insilico.InnerUnitObjective(model, parsed.inner, [0], window=settings.window)
        with torch.no_grad():
            shape = tuple(probe.activations(torch.zeros(model.stimulus_shape(settings.frames))).shape)
    except ValueError as ex:
        raise ConfigError(f"--inner: {ex}") from None
    count, frames = shape[1], shape[2]
    channels = (
        list(range(count))
        if parsed.channels is None
        else parse_indices(parsed.channels, count, "Channel", f"layer {parsed.inner!r}")
    )
    try:
        insilico.objectives.output_window(settings.window, frames)
    except ValueError as ex:
        raise ConfigError(f"--window (in layer {parsed.inner}'s output frames): {ex}") from None
    objective = insilico.InnerUnitObjective(model, parsed.inner, channels, window=settings.window)
    return Group(parsed.inner, "channel", channels, None, objective, [{"channel": c} for c in channels])


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


def _optimise(group: Group, model: Any, settings: Settings, parsed: argparse.Namespace) -> Any:
    import functools

    import torch
    from openretina_models import insilico

    channels, height, width = (int(v) for v in model.in_shape)
    indices = list(range(len(group.labels)))
    optimiser = None
    if parsed.optimizer == "adam":
        optimiser = functools.partial(torch.optim.Adam, lr=parsed.lr)
    parts = []
    for begin in range(0, len(indices), parsed.batch_size):
        chunk = indices[begin : begin + parsed.batch_size]
        seeds = [parsed.seed + _seed_index(group, i) for i in chunk]
        start = insilico.random_start(
            (channels, settings.frames, height, width), seeds, std=0.01, device=parsed.device
        )
        objective = _subset(group, chunk)
        try:
            parts.append(
                insilico.optimise_stimuli(
                    objective,
                    model,
                    start,
                    constraints=settings.constraints,
                    stopper=settings.stopper,
                    optimiser=optimiser,
                    lr=parsed.lr,
                    jitter=settings.jitter,
                    seeds=seeds,
                )
            )
        except ValueError as ex:
            raise ConfigError(f"{group.key}: {ex}") from None
    return parts


def _seed_index(group: Group, i: int) -> int:
    label = group.labels[i]
    return int(label) if group.kind in ("neuron", "channel") else i


def _subset(group: Group, chunk: list[int]) -> Any:
    """The group's objective for the targets in `chunk` only."""
    from openretina_models import insilico

    objective = group.objective
    if len(chunk) == len(group.labels):
        return objective
    if isinstance(objective, insilico.ResponseObjective):
        return insilico.ResponseObjective(
            objective.model, objective.session, [group.labels[i] for i in chunk], window=objective.window
        )
    if isinstance(objective, insilico.ContrastiveObjective):
        inner = objective.responses
        return insilico.ContrastiveObjective(
            inner.model,
            inner.session,
            inner.groups,
            targets=chunk,
            window=inner.window,
            temperature=objective.temperature,
        )
    return insilico.InnerUnitObjective(
        objective.model, objective.layer, [group.labels[i] for i in chunk], window=objective.window
    )


def _write(
    out: Path,
    model: Any,
    source: model_source.ModelSource,
    settings: Settings,
    groups: list[Group],
    results: list[list[Any]],
    figures: bool,
) -> list[str]:
    import torch
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    entries: list[dict[str, Any]] = []
    frame_rate = (getattr(model, "data_info", None) or {}).get("frame_rate_hz")
    for group, parts in zip(groups, results, strict=True):
        stimuli = torch.cat([part.stimuli for part in parts]).cpu()
        values = torch.cat([part.values for part in parts]).cpu().tolist()
        starts = torch.cat([part.start_values for part in parts]).cpu().tolist()
        iterations = [it for part in parts for it in part.iterations]
        tensors[group.key] = stimuli.contiguous()
        for i, extra in enumerate(group.extra):
            entry = {"tensor": group.key, "index": i, **extra}
            if group.session is not None:
                entry["session"] = group.session
            entry.update(
                objective=values[i],
                start_objective=starts[i],
                iterations=iterations[i],
                constraints=settings.record["constraints"],
            )
            if group.kind == "neuron":
                entry["response"] = values[i]
            entries.append(entry)
    save_file(tensors, str(out / "meis.safetensors"))
    drawn = 0
    if figures:
        from openretina_cli.evaluation.figures import channel_names
        from openretina_cli.mei_figures import draw_target

        names = channel_names(int(model.in_shape[0]), getattr(model, "data_info", None))
        for entry in entries:
            stimulus = tensors[entry["tensor"]][entry["index"]].numpy()
            entry.update(draw_target(out, entry, stimulus, names, frame_rate))
            drawn += 1
    summary = {
        "model": source.model_path,
        "mode": groups[0].kind if groups else "neuron",
        "units": "the model's normalised stimulus units",
        "settings": settings.record,
        "note": settings.range_note,
        "tensors": {key: list(t.shape) for key, t in tensors.items()},
        "targets": entries,
    }
    (out / "meis.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [f"Note: {settings.range_note}"] if settings.range_note else []
    for group, parts in zip(groups, results, strict=True):
        values = [v for part in parts for v in part.values.tolist()]
        lines.append(
            f"{group.key}: {len(values)} {group.kind}s, objective {min(values):.3g}..{max(values):.3g}"
        )
    lines.append(
        f"Wrote {out / 'meis.safetensors'}, {out / 'meis.json'}"
        + (f" and {drawn} figures and videos" if drawn else "")
    )
    if any(str(entry.get("video", "")).endswith(".gif") for entry in entries):
        lines.append(
            'Videos are GIFs: for mp4 install the video extra (pip install "openretina-cli[video]", '
            "imageio with its ffmpeg plugin)."
        )
    return lines
