"""MATLAB v7.3 ``.mat`` files: HDF5 files behind a 512-byte text header, read with h5py.

h5py sees MATLAB arrays with their axes reversed (a MATLAB (3, frames) array reads as (frames, 3)).
Older MATLAB versions (v5/v7, the default of ``save``) are not HDF5; they are recognised by their
header so the message can say how to re-save them.
"""

from __future__ import annotations

from pathlib import Path

import h5py

from openretina_data.errors import DataError

_HEADER_BYTES = 128


def open_mat_v73(path: Path) -> h5py.File:
    """``path`` opened read-only, or a DataError saying why it is not a MATLAB v7.3 file."""
    if not h5py.is_hdf5(path):
        with path.open("rb") as handle:
            header = handle.read(_HEADER_BYTES)
        if header.startswith(b"MATLAB 5.0 MAT-file"):
            version = header[:116].split(b",")[0].decode("ascii", "replace")
            problem = f"a MATLAB v5/v7 file ('{version}'), not MATLAB v7.3 (HDF5)"
        else:
            problem = "not a MATLAB v7.3 (HDF5) file"
        raise DataError(
            path,
            "MAT-file header",
            problem,
            "re-save it in MATLAB with save(filename, '-struct', 's', '-v7.3'), "
            "or download the published file again",
        )
    return h5py.File(path, "r")


def require(handle: h5py.File, path: Path, key: str, ndim: int, layout: str) -> h5py.Dataset:
    """The dataset ``key`` with ``ndim`` axes (as h5py reads them), or a DataError naming it."""
    if key not in handle or not isinstance(handle[key], h5py.Dataset):
        raise DataError(path, key, "missing", f"use the published file: it holds {key} as {layout}")
    dataset = handle[key]
    if dataset.ndim != ndim:
        raise DataError(
            path,
            key,
            f"shape {dataset.shape}, expected {layout} (as h5py reads it)",
            "use the published file",
        )
    return dataset
