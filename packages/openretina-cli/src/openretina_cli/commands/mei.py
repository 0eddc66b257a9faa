"""``openretina mei MODEL``: most exciting inputs, most discriminative stimuli and inner units.

The command parses its options into one `MeiRequest`, checks it, and calls
`openretina_models.insilico.optimise_targets` for each group of targets, so a notebook that makes
the same call gets the same MEIs bit for bit. A target's stimulus depends only on the settings and
its own seed (``--seed`` plus its index), so optimising neuron 5 alone gives the MEI it gets among
all the others. Every option is checked, and the objective is tried on the starting stimuli,
before anything is written. What is written, and how, is `openretina_cli.insilico.writing`.
"""

from __future__ import annotations

import argparse

from openretina_cli.config import model_source
from openretina_cli.errors import reporting_errors
from openretina_cli.insilico import targets
from openretina_cli.insilico.request import RMS_CONTRAST, MeiRequest
from openretina_cli.insilico.writing import MEI_ENTRIES, MEI_FOLDER, update_run_report, write_meis
from openretina_cli.output_folder import plan


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


def request_from(args: argparse.Namespace) -> MeiRequest:
    """The parsed options as one typed request (the only place the argparse namespace is read)."""
    return MeiRequest(
        model=args.model,
        sessions=tuple(args.session) if args.session else None,
        neurons=args.neurons,
        frames=args.frames,
        window=args.window,
        iterations=args.iterations,
        plateau=args.plateau,
        lr=args.lr,
        optimizer=args.optimizer,
        norm=args.norm,
        ranges=tuple(args.ranges) if args.ranges else None,
        temporal_sigma=args.temporal_sigma,
        spatial_sigma=args.spatial_sigma,
        jitter=args.jitter,
        seed=args.seed,
        discriminative=args.discriminative,
        temperature=args.temperature,
        inner=args.inner,
        channels=args.channels,
        batch_size=args.batch_size,
        device=args.device,
        out=args.out,
        figures=not args.no_figures,
    )


def run(args: argparse.Namespace) -> int:
    request = request_from(args)
    with reporting_errors():
        request.check()
        source = model_source.resolve(request.model)
        out = plan(request.out, source.default_output(MEI_FOLDER), "mei", MEI_ENTRIES, source.inputs())
        model = model_source.load(source, device=request.device)
        targets.check_finite_weights(model, request.model)
        settings = targets.settings_for(request, model)
        groups = targets.groups_for(request, model, settings)
        results = [targets.optimise(group, model, settings, request) for group in groups]
        written = write_meis(out, model, source, settings, groups, results, figures=request.figures)
        written.extend(update_run_report(source, out.path))
    for line in written:
        print(line)
    return 0
