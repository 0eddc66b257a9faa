"""Load a pickle of numpy arrays without running arbitrary code, and without copying the arrays.

The Höfling 2024 movies are distributed as a pickled dict of numpy arrays. A pickle can call any
importable function while it loads, so even a file from a known source (the open-retina mirror) is
read with an unpickler that only resolves what numpy arrays and plain containers need: array
reconstruction, dtypes, numpy scalars and builtin containers/scalars. Anything else is refused with
an error that names the file and the offending global.

Arrays are rebuilt as read-only views on the bytes the unpickler already read (``np.frombuffer``),
so a 0.6 GB movie costs 0.6 GB, not twice that, while it loads.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from openretina_data.errors import DataError

_NUMPY_CORE = "numpy._core" if importlib.util.find_spec("numpy._core") is not None else "numpy.core"

_SAFE_BUILTINS = frozenset(
    {"dict", "list", "tuple", "set", "frozenset", "bytes", "bytearray", "str", "int", "float", "complex"}
    | {"bool", "slice", "range"}
)


class _PendingArray:
    """Stands in for an ndarray between ``_reconstruct`` and ``__setstate__`` (pickle's BUILD)."""

    __slots__ = ("array", "subtype")

    def __init__(self, subtype: Any) -> None:
        self.subtype = subtype
        self.array: np.ndarray | None = None

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        _version, shape, dtype, fortran, raw = state if len(state) == 5 else (None, *state)
        dtype = np.dtype(dtype)
        if isinstance(raw, bytes | bytearray) and not dtype.hasobject:
            flat = np.frombuffer(raw, dtype=dtype)
            self.array = flat.reshape(shape, order="F" if fortran else "C")
            return
        array = np.ndarray.__new__(np.ndarray, (0,), np.uint8)
        array.__setstate__(state)  # object arrays (lists of values): numpy's own, safe, path
        self.array = array


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> _PendingArray:
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"only plain numpy arrays are allowed, not {subtype!r}")
    return _PendingArray(subtype)


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module.startswith(("numpy.core", "numpy._core")):
            module = _NUMPY_CORE + module.split("core", 1)[1]
        if module == f"{_NUMPY_CORE}.multiarray" and name == "_reconstruct":
            return _reconstruct
        allowed = {
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            (f"{_NUMPY_CORE}.multiarray", "scalar"),
            (f"{_NUMPY_CORE}.numeric", "_frombuffer"),
            ("collections", "OrderedDict"),
            ("_codecs", "encode"),
        }
        if (module, name) in allowed or (module == "builtins" and name in _SAFE_BUILTINS):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a data pickle")


def _resolve(value: Any) -> Any:
    if isinstance(value, _PendingArray):
        return value.array
    if isinstance(value, dict):
        return {key: _resolve(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_resolve(item) for item in value)
    return value


def load_array_pickle(path: str | os.PathLike[str]) -> Any:
    """Unpickle ``path``, allowing only numpy arrays, numpy scalars and builtin containers."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            return _resolve(_ArrayOnlyUnpickler(handle).load())
    except pickle.UnpicklingError as error:
        raise DataError(
            path,
            None,
            f"refused to unpickle it: {error}",
            "use the movie file published on the open-retina mirror; this file holds more than numpy "
            "arrays, so it was not loaded",
        ) from error
    except (EOFError, ValueError, TypeError, AttributeError) as error:
        raise DataError(path, None, f"not a readable pickle ({error})", "download the file again") from error
