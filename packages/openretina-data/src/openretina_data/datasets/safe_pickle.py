"""Load a pickle of numpy arrays without running arbitrary code, and without copying the arrays.

The Höfling 2024 movies are distributed as a pickled dict of numpy arrays. A pickle can call any
importable function while it loads, so even a file from a known source (the open-retina mirror) is
read with an unpickler that only resolves what numpy arrays and plain containers need: array
reconstruction, dtypes, numpy scalars and builtin containers/scalars. Anything else is refused with
an error that names the file and the offending global.

Large arrays are not read into a bytes object first: the unpickler notes where their bytes are in
the file, skips them, and reads them in blocks straight into the final array (converted to float32
on the way when asked), so a 0.6 GB movie costs 0.6 GB while it loads, and a float64 movie never
exists in memory as float64. Small arrays are read-only views on the bytes read.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import struct
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import numpy as np

from openretina_data.errors import DataError

_NUMPY_CORE = "numpy._core" if importlib.util.find_spec("numpy._core") is not None else "numpy.core"

_LAZY_MIN_BYTES = 1 << 20  # payloads at least this large are read straight into their array
_BLOCK_BYTES = 32 << 20


class _LazyBytes:
    """Where a large bytes payload lies in the pickle file (read later, in blocks)."""

    __slots__ = ("file", "length", "offset")

    def __init__(self, file: BinaryIO, offset: int, length: int) -> None:
        self.file, self.offset, self.length = file, offset, length

    def read_into(self, out: np.ndarray, dtype: np.dtype, order: str) -> np.ndarray:
        """Fill ``out`` (any dtype) with the payload read as ``dtype``, in blocks; keeps the file position."""
        flat = out.reshape(-1, order=order)  # a view: out is contiguous in that order
        if flat.size * dtype.itemsize != self.length:
            raise pickle.UnpicklingError(f"array of {flat.size} {dtype} values stored in {self.length} bytes")
        step = max(1, _BLOCK_BYTES // dtype.itemsize)
        resume = self.file.tell()
        try:
            self.file.seek(self.offset)
            for start in range(0, flat.size, step):
                count = min(step, flat.size - start)
                block = self.file.read(count * dtype.itemsize)
                flat[start : start + count] = np.frombuffer(block, dtype=dtype)
        finally:
            self.file.seek(resume)
        return out


def _target_dtype(dtype: np.dtype, float_dtype: np.dtype | None) -> np.dtype:
    return float_dtype if float_dtype is not None and dtype.kind == "f" else dtype


_SAFE_BUILTINS = frozenset(
    {"dict", "list", "tuple", "set", "frozenset", "bytes", "bytearray", "str", "int", "float", "complex"}
    | {"bool", "slice", "range"}
)


class _PendingArray:
    """Stands in for an ndarray between ``_reconstruct`` and ``__setstate__`` (pickle's BUILD)."""

    __slots__ = ("array", "float_dtype")

    def __init__(self, float_dtype: np.dtype | None) -> None:
        self.float_dtype = float_dtype
        self.array: np.ndarray | None = None

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        _version, shape, dtype, fortran, raw = state if len(state) == 5 else (None, *state)
        dtype = np.dtype(dtype)
        order = "F" if fortran else "C"
        if isinstance(raw, _LazyBytes):
            out = np.empty(shape, dtype=_target_dtype(dtype, self.float_dtype), order=order)
            self.array = raw.read_into(out, dtype, order)
            return
        if isinstance(raw, bytes | bytearray) and not dtype.hasobject:
            flat = np.frombuffer(raw, dtype=dtype)
            self.array = flat.reshape(shape, order="F" if fortran else "C")
            return
        array = np.ndarray.__new__(np.ndarray, (0,), np.uint8)
        array.__setstate__(state)  # object arrays (lists of values): numpy's own, safe, path
        self.array = array


class _ArrayOnlyUnpickler(pickle._Unpickler):  # the Python implementation, to intercept large payloads
    dispatch: ClassVar[dict[int, Any]] = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: BinaryIO, float_dtype: np.dtype | None) -> None:
        super().__init__(file)
        self._source = file
        self._float_dtype = float_dtype

    def _payload(self, length: int) -> bytes | _LazyBytes:
        """The next ``length`` bytes, or (when large and outside a frame) where they are in the file."""
        if length < _LAZY_MIN_BYTES or self._unframer.current_frame is not None:
            return self.read(length)
        offset = self._source.tell()
        self._source.seek(length, os.SEEK_CUR)
        return _LazyBytes(self._source, offset, length)

    def _load_binbytes(self) -> None:
        (length,) = struct.unpack("<I", self.read(4))
        self.append(self._payload(length))

    def _load_binbytes8(self) -> None:
        (length,) = struct.unpack("<Q", self.read(8))
        self.append(self._payload(length))

    def _load_bytearray8(self) -> None:
        (length,) = struct.unpack("<Q", self.read(8))
        payload = self._payload(length)
        self.append(payload if isinstance(payload, _LazyBytes) else bytearray(payload))

    dispatch[pickle.BINBYTES[0]] = _load_binbytes
    dispatch[pickle.BINBYTES8[0]] = _load_binbytes8
    dispatch[pickle.BYTEARRAY8[0]] = _load_bytearray8

    def _reconstruct(self, subtype: Any, shape: Any, dtype: Any) -> _PendingArray:
        if subtype is not np.ndarray:
            raise pickle.UnpicklingError(f"only plain numpy arrays are allowed, not {subtype!r}")
        return _PendingArray(self._float_dtype)

    def _frombuffer(self, buffer: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
        dtype = np.dtype(dtype)
        if isinstance(buffer, _LazyBytes):
            out = np.empty(shape, dtype=_target_dtype(dtype, self._float_dtype), order=order)
            return buffer.read_into(out, dtype, order)
        return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order)

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith(("numpy.core", "numpy._core")):
            module = _NUMPY_CORE + module.split("core", 1)[1]
        if module == f"{_NUMPY_CORE}.multiarray" and name == "_reconstruct":
            return self._reconstruct
        if module == f"{_NUMPY_CORE}.numeric" and name == "_frombuffer":
            return self._frombuffer
        allowed = {
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            (f"{_NUMPY_CORE}.multiarray", "scalar"),
            ("collections", "OrderedDict"),
            ("_codecs", "encode"),
        }
        if (module, name) in allowed or (module == "builtins" and name in _SAFE_BUILTINS):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a data pickle")


def _resolve(value: Any, float_dtype: np.dtype | None) -> Any:
    if isinstance(value, _PendingArray | np.ndarray):
        array = value.array if isinstance(value, _PendingArray) else value
        target = _target_dtype(array.dtype, float_dtype)
        return array if array.dtype == target else array.astype(target)  # small or protocol-2 arrays
    if isinstance(value, dict):
        return {key: _resolve(item, float_dtype) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(item, float_dtype) for item in value]
    if isinstance(value, tuple):
        return tuple(_resolve(item, float_dtype) for item in value)
    return value


def load_array_pickle(path: str | os.PathLike[str], *, float_dtype: Any = None) -> Any:
    """Unpickle ``path``, allowing only numpy arrays, numpy scalars and builtin containers.

    ``float_dtype`` (e.g. ``np.float32``): large floating-point arrays are converted to it while they
    are read, block by block, so the stored precision never sits in memory whole.
    """
    path = Path(path)
    target = None if float_dtype is None else np.dtype(float_dtype)
    try:
        with path.open("rb") as handle:
            return _resolve(_ArrayOnlyUnpickler(handle, target).load(), target)
    except pickle.UnpicklingError as error:
        raise DataError(
            path,
            None,
            f"refused to unpickle it: {error}",
            "use the movie file published on the open-retina mirror; this file holds more than numpy "
            "arrays, so it was not loaded",
        ) from error
    except (EOFError, ValueError, TypeError, AttributeError, struct.error) as error:
        raise DataError(path, None, f"not a readable pickle ({error})", "download the file again") from error
