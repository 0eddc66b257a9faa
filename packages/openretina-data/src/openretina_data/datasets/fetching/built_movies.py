"""Movies rebuilt from published stimulus pieces, cached as ``.npy`` files and streamed from them.

A built movie is written once into a scratch folder that replaces its cache folder only when
complete (so an interrupted build leaves nothing a later run could mistake for a movie), together
with ``meta.json`` holding the key it was built from and the training frames' moments. A later run
whose key matches streams the files (:class:`~openretina_data.npy_frames.NpyFrames`): it starts
at once and holds no copy of the movie. Concurrent runs (DDP ranks) wait for the first builder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from openretina_data.datasets.fetching.download import exclusive_lock
from openretina_data.errors import DataError
from openretina_data.npy_frames import NpyFrames

Builder = Callable[[Path], Mapping[str, Any]]
BUILT_MARKER = "meta.json"  # every folder a build wrote holds it; only such a folder is ever replaced


def cached_movies(
    folder: Path, key: Mapping[str, Any], names: Iterable[str], build: Builder
) -> tuple[dict[str, NpyFrames], dict[str, Any], bool]:
    """``({name: frames}, meta, built_now)`` for the movies ``<folder>/<name>.npy``.

    ``build(scratch)`` writes every ``<name>.npy`` into ``scratch`` and returns what ``meta.json``
    should hold besides the key. It runs only when the cache is missing or was built from another key.
    """
    names = list(names)
    cached = _read(folder, key, names)
    if cached is not None:
        return *cached, False
    folder.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(folder):
        cached = _read(folder, key, names)
        if cached is not None:
            return *cached, False
        scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}.building-", dir=folder.parent))
        try:
            scratch.chmod(0o755)  # a shared cache stays readable by others, as downloads are
            meta = {"source_key": dict(key), **build(scratch)}
            (scratch / BUILT_MARKER).write_text(json.dumps(meta, indent=1))
            replace_built_folder(scratch, folder)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    cached = _read(folder, key, names)
    assert cached is not None
    return *cached, True


def replace_built_folder(scratch: Path, folder: Path) -> None:
    """Rename the complete ``scratch`` to ``folder``, replacing an earlier build found there.

    An earlier build carries :data:`BUILT_MARKER`; a folder without it (someone else's files at
    that path) stops the build with a :class:`DataError` and is left as it is.
    """
    if folder.is_symlink() or folder.exists():
        ours = folder.is_dir() and not folder.is_symlink()
        if not ours or not ((folder / BUILT_MARKER).is_file() or not any(folder.iterdir())):
            raise DataError(
                folder,
                None,
                f"exists but was not built by openretina (no {BUILT_MARKER} in it), so it is left as it is",
                "move it away, or set OPENRETINA_CACHE_DIRECTORY (or cache_dir) to another folder",
            )
        shutil.rmtree(folder)  # an earlier build, from an older source or version
    os.replace(scratch, folder)


def _read(
    folder: Path, key: Mapping[str, Any], names: list[str]
) -> tuple[dict[str, NpyFrames], dict[str, Any]] | None:
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("source_key") != json.loads(json.dumps(dict(key))):
        return None
    if not all((folder / f"{name}.npy").is_file() for name in names):
        return None
    return {name: NpyFrames(folder / f"{name}.npy") for name in names}, meta


class MovieWriter:
    """Writes a (1, T, H, W) ``.npy`` movie frame block by frame block, summing its moments.

    The header is written first with the final shape, so the movie never sits in memory whole.
    """

    def __init__(self, target: Path, n_frames: int, height: int, width: int, dtype: np.dtype) -> None:
        self.dtype = np.dtype(dtype)
        self.shape = (1, int(n_frames), int(height), int(width))
        self.total = self.square = 0.0
        self.written = 0
        self._sink = target.open("wb")
        header = {"descr": self.dtype.str, "fortran_order": False, "shape": self.shape}
        np.lib.format.write_array_header_2_0(self._sink, header)

    def write(self, frames: np.ndarray) -> None:
        """Append (F, H, W) frames."""
        values = frames.astype(np.float64)
        self.total += float(values.sum())
        self.square += float(np.square(values, out=values).sum())
        self._sink.write(np.ascontiguousarray(frames, dtype=self.dtype).data)
        self.written += len(frames)

    def close(self) -> None:
        self._sink.close()
        if self.written != self.shape[1]:
            raise RuntimeError(f"wrote {self.written} frames into a movie of {self.shape[1]}")

    def moments(self) -> tuple[float, float, int]:
        """(sum, sum of squares, count) of every value written."""
        return self.total, self.square, self.written * self.shape[2] * self.shape[3]

    def __enter__(self) -> MovieWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self._sink.close()


def mean_std(total: float, square: float, count: int) -> tuple[float, float]:
    mean = total / count
    return mean, max(square / count - mean * mean, 0.0) ** 0.5
