"""The run directory: what goes in it, and removing it when a run fails before training starts."""

from __future__ import annotations

import shutil
from pathlib import Path

# What Hydra itself writes into a run directory before our code runs.
_HYDRA_ENTRIES = {".hydra", "train.log", "main.log"}


def remove_unstarted_run(run_dir: Path, log_dir: Path | None) -> None:
    """Delete a run directory holding only Hydra's own files, and parents it left empty.

    A run that fails before training starts should leave nothing behind; anything else found in
    the directory (a user's file, a checkpoint) keeps it.
    """
    if not run_dir.is_dir():
        return
    if any(entry.name not in _HYDRA_ENTRIES for entry in run_dir.iterdir()):
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    stop = log_dir.resolve() if log_dir is not None else None
    parent = run_dir.parent
    while parent != stop and parent != parent.parent:
        try:
            parent.rmdir()  # only succeeds when empty
        except OSError:
            break
        if parent.name == "openretina_assets":
            break
        parent = parent.parent
