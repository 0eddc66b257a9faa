"""``openretina import-1x CKPT OUT``: convert an openretina 1.x checkpoint into our format, once.

The checkpoint is read without executing anything stored in it, converted completely, and only
then written (``model.safetensors`` + ``model.json``) into OUT through a temporary folder renamed
into place, so a failure leaves nothing behind. OUT then works wherever a trained model does:
``openretina eval``, ``paths.load_model_path=OUT`` (fine-tuning) and ``load_model(OUT)``.
"""

from __future__ import annotations

import argparse
import sys


def add_parser(commands: argparse._SubParsersAction) -> None:
    command = commands.add_parser(
        "import-1x",
        help="convert an openretina 1.x checkpoint (.ckpt) or published model name into our format",
        description=(
            "Convert an openretina 1.x Lightning checkpoint into a model folder (model.safetensors + "
            "model.json) that every openretina command and load_model() read instantly. CKPT may also "
            "be a name 1.x publishes, e.g. hoefling_2024_high_res (downloaded once; needs "
            'pip install "openretina-models[hub]").'
        ),
    )
    command.add_argument("checkpoint", metavar="CKPT", help="1.x checkpoint file, or a published model name")
    command.add_argument("out", metavar="OUT", help="output folder (must not exist yet, or be empty)")


def run(args: argparse.Namespace) -> int:
    """Convert; print where the model went. Exit status 1 with one message on any bad input."""
    from pathlib import Path

    from openretina_models import CheckpointError
    from openretina_models.openretina1 import PUBLISHED_MODELS, convert_checkpoint
    from openretina_models.openretina1.published import fetch_checkpoint

    source = Path(args.checkpoint).expanduser()
    try:
        if not source.exists() and args.checkpoint in PUBLISHED_MODELS:
            source = fetch_checkpoint(args.checkpoint)
        elif source.is_dir():
            found = sorted(str(p.relative_to(source)) for p in source.rglob("*.ckpt"))[:10]
            listed = f" .ckpt files in it: {', '.join(found)}." if found else " It holds no .ckpt file."
            raise CheckpointError(
                f"{source} is a folder; CKPT is one checkpoint file of a 1.x run (e.g. "
                f"{source / 'checkpoints' / 'last.ckpt'}).{listed}"
            )
        elif not source.is_file():
            known = ", ".join(sorted(PUBLISHED_MODELS))
            raise CheckpointError(f"{source}: no such file (and not a published model name: {known}).")
        out = convert_checkpoint(source, Path(args.out).expanduser())
    except (CheckpointError, FileExistsError, ImportError) as error:
        print(f"openretina import-1x: error: {error}", file=sys.stderr)
        return 1
    print(f"converted {args.checkpoint} -> {out}")
    return 0
