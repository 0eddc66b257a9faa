"""``openretina characterise MODEL``: every model neuron characterised as retina labs characterise cells.

The model is shown the standard stimuli of `openretina_models.insilico.stimuli` (chirp, moving
bars, flashes, drifting gratings, dense noise) in physical units; each neuron gets a row of
indices and receptive-field fit parameters, the neurons are sorted into functional types, and
figures show the result. Every option, the output location and every stimulus are checked before
any work starts; the outputs are written into a temporary sibling folder that replaces the
previous output of this command only when everything succeeded.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gc
import json
import math
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openretina_cli import output_folder
from openretina_cli.config import model_source
from openretina_cli.errors import ConfigError, did_you_mean, reporting_errors
from openretina_cli.evaluation.characterisation_view import COMMAND as COMMAND_MARK
from openretina_cli.evaluation.characterisation_view import FOLDER, SETTINGS_FILE, summary

__all__ = ["add_parser", "run", "summary"]
ENTRIES = ("neurons.csv", "responses.safetensors", SETTINGS_FILE, "figures")
STIMULI = ("chirp", "bars", "flashes", "gratings", "noise")
# matplotlib's figure API (what the figures draw with, less our modules, which import torch): imported
# on a thread from the start, much of it while torch's import and the characterisation leave the
# interpreter free (loading libraries, tensor operations)
FIGURE_MODULE = "matplotlib.figure"
CELL_TYPE_KEYS = ("cell_type", "cell_types", "celltype", "celltypes", "group_assignment", "type")


def add_parser(commands: argparse._SubParsersAction) -> None:
    command = commands.add_parser(
        "characterise",
        help="characterise every model neuron: chirp, bars, flashes, gratings, receptive fields, types",
        description=(
            "Show MODEL the standard stimuli of retina labs (the chirp, moving bars in N directions, "
            "full-field flashes, drifting gratings, dense noise) and write, into <run>/characterisation/ "
            "(or --out): neurons.csv (one row per neuron: ON-OFF and transience indices, DSI/OSI and "
            "preferred direction with a shuffle-test p-value, frequency and contrast response, grating "
            "tuning, chromatic preference, the fitted receptive field, the functional type), "
            "responses.safetensors, characterisation.json and figures/."
        ),
    )
    command.add_argument("model", metavar="MODEL", help="run directory, model folder, checkpoint or name")
    command.add_argument(
        "--stimuli",
        default=",".join(STIMULI),
        help=f"comma-separated stimuli to show (default: all of {','.join(STIMULI)})",
    )
    command.add_argument("--sessions", default=None, help="comma-separated sessions (default: all)")
    command.add_argument("--neurons", default=None, help="neuron indices in every session, e.g. 0,3,5-9")
    command.add_argument("--out", default=None, help="output directory (default: <run>/characterisation)")
    command.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    command.add_argument(
        "--frame-rate", type=float, default=None, help="frames per second, when the model does not store it"
    )
    command.add_argument(
        "--pixel-size-um",
        type=float,
        default=None,
        help="µm on the retina per stimulus pixel, when the model does not store it",
    )
    command.add_argument("--directions", type=int, default=8, help="bar and grating directions (default 8)")
    command.add_argument("--bar-width-um", type=float, default=300.0, help="bar width (default 300 µm)")
    command.add_argument(
        "--bar-speed-um-per-s", type=float, default=1000.0, help="bar speed (default 1000 µm/s)"
    )
    command.add_argument(
        "--spatial-frequencies",
        default=None,
        help="grating spatial frequencies in cycles/µm, comma-separated (default: periods of 1, 1/2, "
        "1/4... of the frame's longer side, down to 4 pixels)",
    )
    command.add_argument(
        "--temporal-frequencies",
        default="1,2,4,8",
        help="grating temporal frequencies in Hz (default 1,2,4,8)",
    )
    command.add_argument(
        "--noise-seconds", type=float, default=120.0, help="dense noise shown for the STA (default 120 s)"
    )
    command.add_argument(
        "--types", type=int, default=None, help="number of functional types (default: chosen by BIC, 1-10)"
    )
    command.add_argument(
        "--cell-type-key",
        default=None,
        help="per-neuron metadata field with known cell types to compare the types with (default: the "
        "first of cell_type, celltypes, group_assignment, ... that the model's data has)",
    )
    command.add_argument("--batch-size", type=int, default=8, help="stimuli per forward pass (default 8)")
    command.add_argument("--seed", type=int, default=0, help="seed of the noise and the shuffle test")
    command.add_argument("--no-figures", action="store_true", help="write the tables only")


@dataclass
class Plan:
    """Everything checked before the work starts."""

    source: model_source.ModelSource
    out: output_folder.OutputFolder
    model: Any
    space: Any
    stimulus_sets: dict[str, Any]
    skipped: dict[str, str]
    sessions: dict[str, list[int]]
    channel_names: list[str]
    labels: dict[str, list[Any]] | None
    label_key: str | None


def run(args: argparse.Namespace) -> int:
    """The command: check everything, characterise, write; one message and exit 1 on bad input."""
    with reporting_errors():
        importing = None
        if not args.no_figures:
            from openretina_cli.evaluation.figure_jobs import import_in_background

            importing = import_in_background(FIGURE_MODULE)  # beside torch's import and the work
        with _torch_threads(args.device) as workers:
            checked = _plan(args)
            for name, reason in checked.skipped.items():
                print(f"Skipping {name}: {reason}")
            if "noise" in checked.stimulus_sets:
                note = _noise_note(checked.space)
                if note:
                    print(note)
            if not checked.stimulus_sets:
                raise ConfigError(
                    f"MODEL {args.model}: none of the stimuli asked for ({args.stimuli}) can be shown to it."
                )
            results = _characterise(checked, args, workers)
        with _no_cycle_collection():
            written = _write(checked, results, args, importing)
    for line in written:
        print(line)
    return 0


@contextlib.contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Python's cycle collector off while the types are sorted and the figures drawn: matplotlib
    makes many objects, and each full collection walks every object of torch and the results
    too (5-10 % of the figures' time); what is left over is collected later, as usual."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _noise_note(space: Any) -> str | None:
    """What the dense noise cannot give on a frame too small for a spatial receptive field."""
    from openretina_models.insilico.characterisation import RF_FIT_MIN_PIXELS

    if min(space.height, space.width) >= RF_FIT_MIN_PIXELS:
        return None
    return (
        f"Noise: the frame is {space.height}×{space.width} pixels, too small for a spatial receptive "
        f"field (fits need {RF_FIT_MIN_PIXELS}×{RF_FIT_MIN_PIXELS} or more): only each neuron's temporal "
        "filter, its channel and peak lag are measured."
    )


def parse_stimuli(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ConfigError(f"--stimuli {text!r}: name at least one of {', '.join(STIMULI)}.")
    for name in names:
        if name not in STIMULI:
            raise ConfigError(
                f"--stimuli: unknown stimulus {name!r}.{did_you_mean(name, STIMULI)} "
                f"The stimuli are {', '.join(STIMULI)}."
            )
    return list(dict.fromkeys(names))


def _check_numbers(args: argparse.Namespace) -> None:
    for name, value in {
        "--frame-rate": args.frame_rate,
        "--pixel-size-um": args.pixel_size_um,
        "--bar-width-um": args.bar_width_um,
        "--bar-speed-um-per-s": args.bar_speed_um_per_s,
        "--noise-seconds": args.noise_seconds,
    }.items():
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{name} must be a positive number, got {value}.")
    if args.directions < 1:
        raise ConfigError(f"--directions must be at least 1, got {args.directions}.")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}.")
    if args.types is not None and args.types < 1:
        raise ConfigError(f"--types must be at least 1, got {args.types}.")


def _floats(text: str | None, option: str) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{option} {text!r}: write numbers separated by commas, e.g. 1,2,4.") from None
    if not values:
        raise ConfigError(f"{option} {text!r}: give at least one number.")
    return values


def _plan(args: argparse.Namespace) -> Plan:
    from openretina_models.insilico import characterisation, stimuli

    from openretina_cli.config.devices import check_device
    from openretina_cli.insilico.targets import parse_indices

    names = parse_stimuli(args.stimuli)
    _check_numbers(args)
    check_device(args.device)
    spatial = _floats(args.spatial_frequencies, "--spatial-frequencies")
    temporal = _floats(args.temporal_frequencies, "--temporal-frequencies")
    source = model_source.resolve(args.model)
    out = output_folder.plan(
        args.out, source.default_output(FOLDER), "characterise", ENTRIES, source.inputs()
    )
    model = model_source.load(source, device=args.device)
    info = getattr(model, "data_info", None) or {}
    try:
        space = stimuli.StimulusSpace.from_model(
            model, frame_rate_hz=args.frame_rate, pixel_size_um=args.pixel_size_um
        )
        options = {
            "bars": {
                "directions": args.directions,
                "width_um": args.bar_width_um,
                "speed_um_per_s": args.bar_speed_um_per_s,
            },
            "gratings": {
                "directions": args.directions,
                "spatial_frequencies": spatial,
                "temporal_frequencies_hz": temporal,
            },
            "noise": {"duration_s": args.noise_seconds, "seed": args.seed},
        }
        sets, skipped = characterisation.make_stimuli(space, names, options)
    except stimuli.StimulusError as ex:
        raise ConfigError(_cli_words(str(ex))) from None
    known = list(model.n_neurons)
    chosen_sessions = known
    if args.sessions:
        chosen_sessions = [s.strip() for s in args.sessions.split(",") if s.strip()]
        for name in chosen_sessions:
            if name not in known:
                raise ConfigError(
                    f"--sessions: the model has no session {name!r}.{did_you_mean(name, known)} "
                    f"Sessions: {', '.join(known)}."
                )
    sessions: dict[str, list[int]] = {}
    for name in dict.fromkeys(chosen_sessions):
        count = int(model.n_neurons[name])
        if args.neurons is None:
            sessions[name] = list(range(count))
            continue
        wanted = _indices_within(args.neurons, count, name, parse_indices)
        if wanted:
            sessions[name] = wanted
    if not sessions or not any(sessions.values()):
        raise ConfigError(
            f"No neuron left after --sessions {args.sessions or '(all)'} --neurons {args.neurons}: the "
            f"sessions have {', '.join(f'{s}: {int(model.n_neurons[s])}' for s in chosen_sessions)} neurons."
        )
    channel_names = _channel_names(info, space.channels)
    labels, key = _labels(info, sessions, args.cell_type_key)
    return Plan(source, out, model, space, sets, skipped, sessions, channel_names, labels, key)


def _indices_within(text: str, count: int, session: str, parse_indices: Any) -> list[int]:
    """The indices of `text` that exist in a session of `count` neurons (others are dropped)."""
    try:
        return parse_indices(text, count, "--neurons", f"session {session!r}")
    except ConfigError as ex:
        if "does not exist" not in str(ex):
            raise
        every = parse_indices(text, 1 << 30, "--neurons", f"session {session!r}")
        return [i for i in every if i < count]


def _cli_words(message: str) -> str:
    return message.replace("frame_rate_hz=..., or ", "").replace("pixel_size_um=..., or ", "")


def _channel_names(info: dict[str, Any], channels: int) -> list[str]:
    names = info.get("channel_names")
    if isinstance(names, list) and len(names) == channels:
        return [re.sub(r"[^A-Za-z0-9]+", "_", str(n)).strip("_") or f"c{i}" for i, n in enumerate(names)]
    return [f"c{i}" for i in range(channels)]


def _labels(
    info: dict[str, Any], sessions: dict[str, list[int]], key: str | None
) -> tuple[dict[str, list[Any]] | None, str | None]:
    per_session = info.get("sessions") or {}
    metadata = {s: ((per_session.get(s) or {}).get("metadata") or {}) for s in sessions}
    if key is not None:
        for s, fields in metadata.items():
            values = fields.get(key)
            if not isinstance(values, list):
                known = sorted(fields)
                raise ConfigError(
                    f"--cell-type-key {key}: session {s!r} has no per-neuron field {key!r}."
                    f"{did_you_mean(key, known)} Fields: {', '.join(known) or '(none stored with the model)'}"
                    "."
                )
    else:
        key = next(
            (k for k in CELL_TYPE_KEYS if all(isinstance(m.get(k), list) for m in metadata.values())), None
        )
        if key is None:
            return None, None
    labels = {}
    for s, neurons in sessions.items():
        values = metadata[s][key]
        labels[s] = [values[i] if i < len(values) else None for i in neurons]
    return labels, key


@contextlib.contextmanager
def _torch_threads(device: str) -> Iterator[int]:
    """On a CPU, torch on one thread while the stimuli are made and shown, and as many threads
    showing them side by side as torch had (given as the block's value; 1 on another device):
    the default model's forward passes on a batch of 8 stimuli are small, and on a shared 2-core
    machine splitting each over two threads tripled their CPU time and doubled the whole
    command's; making the stimuli (96 small gratings) took 0.2 CPU s on one thread and 1.8-2.3 on
    two (benchmarks, issue 22)."""
    if not str(device).startswith("cpu"):
        yield 1
        return
    import torch
    from openretina_models.threads import one_thread

    threads = torch.get_num_threads()
    with one_thread():
        yield threads


def _characterise(plan: Plan, args: argparse.Namespace, workers: int) -> dict[str, Any]:
    """Show the stimuli (on `workers` threads) and analyse the responses."""
    from openretina_models.insilico import characterisation
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with (
        Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} stimuli"),
            TimeElapsedColumn(),
            transient=True,
        ) as progress,
    ):
        names = list(plan.stimulus_sets)
        task = progress.add_task(f"characterising ({', '.join(names)})", total=len(names))
        left = list(names)

        def advance(name: str, units: int) -> None:  # the stimuli finish in any order
            left.remove(name)
            progress.update(task, advance=units, description=f"characterising ({', '.join(left) or 'done'})")

        return characterisation.characterise(
            plan.model,
            plan.sessions,
            plan.space,
            plan.stimulus_sets,
            batch_size=args.batch_size,
            channel_names=plan.channel_names,
            progress=advance,
            seed=args.seed,
            workers=workers,
        )


@dataclass
class Types:
    labels: dict[str, Any]  # per session: (N,) functional type
    n_types: int
    bic: dict[int, float]
    agreement: dict[str, Any] | None


def _types(plan: Plan, results: dict[str, Any], args: argparse.Namespace) -> Types | None:
    from openretina_models.insilico import characterisation, functional_types

    if "chirp" not in plan.stimulus_sets and "bars" not in plan.stimulus_sets:
        return None
    stacked = characterisation.functional_type_features([results[s] for s in plan.sessions])
    if args.types is not None and args.types > stacked.shape[0]:
        raise ConfigError(
            f"--types {args.types}: there are only {stacked.shape[0]} neurons to sort into types."
        )
    found = functional_types.functional_types(stacked, n_types=args.types, seed=args.seed)
    per_session, start = {}, 0
    for s in plan.sessions:
        count = len(plan.sessions[s])
        per_session[s] = found.labels[start : start + count]
        start += count
    agreement = None
    if plan.labels is not None:
        truth = [str(v) for s in plan.sessions for v in plan.labels[s]]
        rows, cols, table = functional_types.confusion_table(truth, found.labels.tolist())
        agreement = {
            "cell_type_key": plan.label_key,
            "adjusted_rand_index": functional_types.adjusted_rand_index(truth, found.labels.tolist()),
            "confusion": {"cell_types": rows, "functional_types": cols, "counts": table.tolist()},
        }
    return Types(per_session, found.n_types, found.bic, agreement)


def _jsonable(value: Any) -> Any:
    """Strict JSON: NaN and infinities become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return _jsonable(value.item())
    return value


def neuron_rows(
    plan: Plan, results: dict[str, Any], types: Types | None
) -> tuple[list[str], list[list[Any]]]:
    """The neurons.csv table: session, neuron, neuron id, known type, functional type, every value."""
    info = (getattr(plan.model, "data_info", None) or {}).get("sessions") or {}
    columns: list[str] = []
    for s in plan.sessions:
        for column in results[s].table:
            if column not in columns:
                columns.append(column)
    head = ["session", "neuron", "neuron_id"]
    if plan.labels is not None:
        head.append("cell_type")
    if types is not None:
        head.append("functional_type")
    rows = []
    for s, neurons in plan.sessions.items():
        ids = (info.get(s) or {}).get("neuron_ids")
        table = results[s].table
        for i, neuron in enumerate(neurons):
            row: list[Any] = [
                s,
                neuron,
                ids[neuron] if isinstance(ids, list) and neuron < len(ids) else neuron,
            ]
            if plan.labels is not None:
                row.append(plan.labels[s][i])
            if types is not None:
                row.append(int(types.labels[s][i]))
            for column in columns:
                value = table.get(column)
                row.append("" if value is None else _cell(value[i]))
            rows.append(row)
    return head + columns, rows


def _cell(value: Any) -> Any:
    number = float(value)
    if not math.isfinite(number):
        return ""
    return int(number) if number.is_integer() and abs(number) < 1e15 else f"{number:.6g}"


def _write(
    plan: Plan, results: dict[str, Any], args: argparse.Namespace, importing: threading.Thread | None = None
) -> list[str]:
    """Sort the neurons into types and write every file. The figures that do not show the types
    are drawn by forked helpers meanwhile (see `characterise_figures.start`; `importing`: the
    thread importing pyplot)."""
    import numpy as np
    import torch
    from safetensors.torch import save_file

    from openretina_cli.commands import characterise_figures as figures

    with output_folder.write(plan.out) as staging:
        folder = staging / "figures"
        early = figures.untyped_jobs(folder, plan, results) if not args.no_figures else []
        background = figures.start(early, importing)
        try:
            types = _types(plan, results, args)
            head, rows = neuron_rows(plan, results, types)
            with (staging / "neurons.csv").open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(head)
                writer.writerows(rows)
            tensors = {
                f"{s}/{name}": torch.from_numpy(np.ascontiguousarray(array)).float()
                for s, result in results.items()
                for name, array in result.traces.items()
            }
            save_file(tensors, str(staging / "responses.safetensors"))
            settings = _settings(plan, results, types, args)
            (staging / SETTINGS_FILE).write_text(
                json.dumps(_jsonable(settings), indent=2, allow_nan=False) + "\n"
            )
            late = figures.typed_jobs(folder, plan, results, types) if not args.no_figures else []
            late_drawn = figures.draw(late)
        except BaseException:
            background.close()
            raise
        drawn = figures.drawn(background.results() + late_drawn)
    out = plan.out.path
    lines = [
        f"Characterised {len(rows)} neurons of {len(plan.sessions)} session(s) on "
        f"{', '.join(plan.stimulus_sets)}."
    ]
    if types is not None:
        line = f"Functional types: {types.n_types}"
        if types.agreement is not None:
            line += (
                f" (adjusted Rand index {types.agreement['adjusted_rand_index']:.2f} against "
                f"{types.agreement['cell_type_key']})"
            )
        lines.append(line + ".")
    if plan.space.note:
        lines.append(f"Note: {plan.space.note}")
    lines.append(
        f"Wrote {out / 'neurons.csv'}, responses.safetensors, {SETTINGS_FILE}"
        + (f" and {len(drawn)} figures" if drawn else "")
    )
    return lines + _update_run_report(plan.source, out)


def _update_run_report(source: model_source.ModelSource, out: Path) -> list[str]:
    """Show the characterisation on the run's report when it was written into the run's own folder."""
    if source.run_dir is None or out.resolve() != (source.run_dir / FOLDER).resolve():
        return []
    from openretina_cli.evaluation.report import MEI_FOLDER, refresh_report

    page = refresh_report(source.run_dir / "eval", source.run_dir / MEI_FOLDER)
    return [] if page is None else [f"Updated the run's report with the characterisation: {page}"]


def _settings(
    plan: Plan, results: dict[str, Any], types: Types | None, args: argparse.Namespace
) -> dict[str, Any]:
    first = next(iter(results.values()))
    return {
        "command": COMMAND_MARK,
        "model": plan.source.model_path,
        "space": plan.space.describe(),
        "channel_names": plan.channel_names,
        "stimuli": {
            name: {
                "conditions": s.conditions,
                "parameters": s.parameters,
                "frames": s.frames,
                "segments": {k: list(v) for k, v in s.segments.items()},
            }
            for name, s in plan.stimulus_sets.items()
        },
        "skipped": plan.skipped,
        "sessions": plan.sessions,
        "trace_axes": first.axes,
        "functional_types": None
        if types is None
        else {
            "n_types": types.n_types,
            "bic": {str(k): v for k, v in types.bic.items()},
            "chosen_by": "given (--types)" if args.types else "BIC",
            "agreement": types.agreement,
        },
        "options": {k: v for k, v in vars(args).items() if k not in ("command", "func")},
        "units": {
            "responses": "the model's output units",
            "contrast": "0 = the training mean; ±1 = ±amplitude normalised units per channel (see space)",
            "directions": "degrees counter-clockwise; 0 = moving towards +x (right), 90 = towards row 0 (up)",
            "rf_x_um, rf_y_um": "from the frame's top-left corner; x along columns, y along rows",
        },
    }
