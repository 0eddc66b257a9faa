"""Write a dataset folder all at once: into a hidden sibling first, then renamed into place."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from openretina_data.errors import DataError


@contextmanager
def atomic_directory(path: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty folder to write into; on success it becomes `path`, on failure it vanishes.

    `path` may be missing or an empty folder. An existing non-empty folder is replaced only when
    `overwrite` is true, and only after the new data is complete.
    """
    target = Path(path).expanduser()
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
