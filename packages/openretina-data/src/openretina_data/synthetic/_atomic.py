"""Write a dataset folder all at once: into a hidden sibling first, then renamed into place."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from openretina_data.errors import DataError

# What the dataset writers put in a folder: `overwrite` replaces a folder holding nothing else.
_WRITTEN_FOLDERS = ("stimuli", "ground_truth")
_WRITTEN_SUFFIXES = (".h5", ".hdf5")


def _foreign_entries(target: Path) -> list[str]:
    """Entries of `target` a dataset writer does not make: a user's files, which are never replaced."""
    return sorted(
        entry.name
        for entry in target.iterdir()
        if not (
            (entry.is_dir() and entry.name in _WRITTEN_FOLDERS)
            or (entry.is_file() and entry.suffix in _WRITTEN_SUFFIXES)
        )
    )


@contextmanager
def atomic_directory(path: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty folder to write into; on success it becomes `path`, on failure it vanishes.

    `path` may be missing or an empty folder. An existing non-empty folder is replaced only when
    `overwrite` is true, only when it holds nothing but what a dataset writer makes (session files,
    `stimuli/`, `ground_truth/`), and only after the new data is complete.
    """
    target = Path(path).expanduser()
    for parent in target.parents:
        if parent.exists() and not parent.is_dir():
            raise DataError(target, None, f"lies inside {parent}, which is a file", "choose a folder path")
    if target.exists():
        if not target.is_dir():
            raise DataError(target, None, "exists and is a file", "choose a new folder for the dataset")
        if any(target.iterdir()) and not overwrite:
            raise DataError(
                target,
                None,
                "already exists and is not empty",
                "choose a new folder, or ask to overwrite it (overwrite=True, `--overwrite`)",
            )
        foreign = _foreign_entries(target) if overwrite else []
        if foreign:
            raise DataError(
                target,
                None,
                f"holds {', '.join(foreign[:5])}, which no dataset writer made, so it is not overwritten",
                "choose a new folder, or move those files away first",
            )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if not target.exists():
        staging.rename(target)
        return
    if not any(target.iterdir()):
        target.rmdir()
        staging.rename(target)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    retired.rmdir()
    target.rename(retired)
    staging.rename(target)
    shutil.rmtree(retired, ignore_errors=True)
