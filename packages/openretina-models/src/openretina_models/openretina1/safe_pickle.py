"""Read a torch/Lightning checkpoint file without running any code from it.

A `.ckpt` is a zip archive holding `data.pkl` (a pickle) and one raw file per tensor storage.
`pickle` rebuilds objects by calling whatever function the file names, which is how a booby-trapped
checkpoint runs code. This reader allows only a closed list of constructors: tensors (rebuilt here
from the raw storage bytes), numbers, strings, containers, numpy arrays of plain dtypes, and
OmegaConf containers, which become `ConfigNode` stand-ins read as plain data (omegaconf is never
imported). Objects of openretina 1.x's own classes and of PyTorch modules (which code-only 1.x
models pickle into their hyper-parameters) become inert `UnreadObject` records: their attributes
are kept as data, their classes are never imported and nothing of them is ever called. Anything
else stops the read with a `CheckpointError` naming the class.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from openretina_models.errors import CheckpointError

__all__ = ["ConfigNode", "UnreadObject", "load_checkpoint_dict", "plain"]

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
    "UntypedStorage": torch.uint8,
}
# Classes and functions that 1.x hyper-parameters may hold (1.x's own, and the PyTorch modules and
# functions inside its pickled modules); they are recorded by name, never imported or called.
_INERT_PACKAGES = ("openretina.", "torch.nn.modules.", "torch.nn.functional", "torch._C._nn")


class _StorageType:
    """What `find_class("torch", "FloatStorage")` returns: only its dtype is used."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


class ConfigNode:
    """Stand-in for an OmegaConf DictConfig, ListConfig or value node: keeps the pickled state only."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def to_plain(self) -> Any:
        state = self.state if isinstance(self.state, dict) else {}
        if self.kind in ("DictConfig", "ListConfig"):
            return plain(state.get("_content"))
        return plain(state.get("_val"))


class UnreadObject:
    """An object of a 1.x class recorded by name; its state is kept as data and never executed."""

    def __init__(self, qualname: str, *args: Any) -> None:
        self.qualname = qualname
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<unread {self.qualname}>"


class _Metadata:
    """Stand-in for OmegaConf's Metadata / ContainerMetadata dataclasses."""

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _config_class(kind: str) -> type:
    """A class whose instances are `ConfigNode(kind)` (pickle calls `cls.__new__(cls)` on it)."""

    def new(cls: type, *args: Any, **kwargs: Any) -> ConfigNode:
        return ConfigNode(kind)

    return type(f"Stand-in {kind}", (), {"__new__": new})


def _inert_class(qualname: str) -> type:
    def new(cls: type, *args: Any, **kwargs: Any) -> UnreadObject:
        return UnreadObject(qualname, *args)

    return type(f"Unread {qualname}", (), {"__new__": new, "_inert": True})


def plain(value: Any) -> Any:
    """OmegaConf stand-ins replaced by dicts/lists/values, recursively; other values unchanged."""
    if isinstance(value, ConfigNode):
        return value.to_plain()
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, tuple):
        return tuple(plain(item) for item in value)
    return value


def _rebuild_tensor(
    storage: torch.Tensor,
    offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    requires_grad: bool = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> torch.Tensor:
    if not isinstance(storage, torch.Tensor):
        raise CheckpointError("a tensor in the checkpoint does not point at a storage; the file is corrupt.")
    needed = offset + sum((s - 1) * st for s, st in zip(size, stride, strict=True)) + 1 if all(size) else 0
    if needed > storage.numel():
        raise CheckpointError("a tensor in the checkpoint reaches past its storage; the file is corrupt.")
    return torch.as_strided(storage, tuple(size), tuple(stride), int(offset))


def _rebuild_parameter(data: torch.Tensor, requires_grad: bool = True, backward_hooks: Any = None, *_: Any):
    return data


def _rebuild_from_type(func: Callable, new_type: type, args: tuple, state: Any) -> Any:
    if func not in (_rebuild_tensor, _rebuild_parameter) or new_type not in (
        torch.Tensor,
        torch.nn.Parameter,
    ):
        raise CheckpointError("the checkpoint rebuilds a tensor subclass, which is not read.")
    return func(*args)


def _reconstructor(cls: Any, base: Any, state: Any = None) -> Any:
    # Protocol 0/1 pickles of plain objects; only the inert stand-ins may be built this way.
    if not getattr(cls, "_inert", False):
        name = getattr(cls, "__name__", cls)
        raise CheckpointError(f"the checkpoint rebuilds a {name!r}, which is not read.")
    return cls.__new__(cls)


def _numpy_reconstruct(cls: type, shape: Any, dtype: Any) -> np.ndarray:
    if cls is not np.ndarray:
        raise CheckpointError(
            f"the checkpoint builds a numpy {getattr(cls, '__name__', cls)!r}, which is not read."
        )
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _numpy_scalar(dtype: np.dtype, data: bytes | None = None) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.kind == "O" or not isinstance(data, bytes):
        raise CheckpointError("the checkpoint holds a numpy object scalar, which is not read.")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _numpy_dtype(spec: str, align: bool = False, copy: bool = False) -> np.dtype:
    dtype = np.dtype(spec)
    if dtype.kind == "O":
        raise CheckpointError("the checkpoint holds numpy object arrays, which are not read.")
    return dtype


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    # Protocol-2 pickles store bytes as `_codecs.encode(text, "latin1")`.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise CheckpointError("the checkpoint encodes bytes in an unexpected way; the file is corrupt.")
    return text.encode("latin1")


_NOT_SET = object()
# Module names of Python 2 that protocol-2 pickles (torch's default) still write.
_OLD_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}
_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("collections", "defaultdict"): defaultdict,
    ("_codecs", "encode"): _latin1_bytes,
    ("builtins", "long"): int,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "str"): str,
    ("builtins", "int"): int,
    ("builtins", "float"): float,
    ("builtins", "bool"): bool,
    ("builtins", "complex"): complex,
    ("builtins", "bytes"): bytes,
    ("builtins", "object"): object,
    ("builtins", "slice"): slice,
    ("typing", "Any"): _NOT_SET,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("torch", "Tensor"): torch.Tensor,
    ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _numpy_dtype,
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
}
_OMEGACONF_CONTAINERS = {"DictConfig", "ListConfig"}
_OMEGACONF_NODES = {
    "AnyNode",
    "StringNode",
    "IntegerNode",
    "FloatNode",
    "BooleanNode",
    "BytesNode",
    "PathNode",
}
_OMEGACONF_METADATA = {"Metadata", "ContainerMetadata"}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(
        self, data: bytes, storage: Callable[[str, torch.dtype, int], torch.Tensor], where: str
    ) -> None:
        super().__init__(io.BytesIO(data))
        self._storage = storage
        self._where = where

    def find_class(self, module: str, name: str) -> Any:
        module = _OLD_MODULES.get(module, module)
        allowed = _ALLOWED.get((module, name))
        if allowed is not None:
            return allowed
        if (module == "torch" and name in _STORAGE_DTYPES) or (module, name) == (
            "torch.storage",
            "UntypedStorage",
        ):
            return _StorageType(_STORAGE_DTYPES[name])
        if module.startswith("numpy") and name.endswith("DType") and module.endswith("dtypes"):
            return _numpy_dtype_class(name)
        if module.startswith("omegaconf"):
            if name in _OMEGACONF_CONTAINERS or name in _OMEGACONF_NODES:
                return _config_class(name if name in _OMEGACONF_CONTAINERS else "ValueNode")
            if name in _OMEGACONF_METADATA:
                return _Metadata
        if any(module.startswith(prefix) for prefix in _INERT_PACKAGES):
            return _inert_class(f"{module}.{name}")
        raise CheckpointError(
            f"{self._where}: refused to read `{module}.{name}` from the checkpoint. openretina reads only "
            "tensors, numbers, strings, containers and OmegaConf configs from a checkpoint and never runs "
            "code stored in it; this file asks for something else, so it is either not an openretina 1.x "
            "checkpoint or it has been tampered with."
        )

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != "storage":
            raise CheckpointError(
                f"{self._where}: unknown persistent record {pid!r:.80}; the file is corrupt."
            )
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType):
            raise CheckpointError(f"{self._where}: a storage of an unknown type; the file is corrupt.")
        return self._storage(str(key), storage_type.dtype, int(numel))


def _numpy_dtype_class(name: str) -> Callable[..., Any]:
    # numpy >= 1.25 may pickle dtypes through their DType classes (e.g. `numpy.dtypes.Float64DType`).
    def make(*args: Any) -> np.dtype:
        kind = name[: -len("DType")].lower()
        return _numpy_dtype(kind)

    return make


def load_checkpoint_dict(path: str | Path) -> dict[str, Any]:
    """The top-level dict of a torch zip checkpoint, read without executing code (see module doc)."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file.")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise CheckpointError(
            f"{path}: not a PyTorch/Lightning checkpoint (not a zip archive); it may be truncated, "
            "or saved in the legacy torch format (re-save it with torch >= 1.6)."
        ) from None
    with archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise CheckpointError(f"{path}: not a PyTorch checkpoint (no single data.pkl in the archive).")
        prefix = pickles[0][: -len("data.pkl")]
        order = prefix + "byteorder"
        if order in names and archive.read(order).strip() not in (b"little", b""):
            raise CheckpointError(f"{path}: a big-endian checkpoint; re-save it on a little-endian machine.")

        cache: dict[str, torch.Tensor] = {}

        def storage(key: str, dtype: torch.dtype, numel: int) -> torch.Tensor:
            if key not in cache:
                entry = f"{prefix}data/{key}"
                try:
                    raw = archive.read(entry)
                except KeyError:
                    raise CheckpointError(
                        f"{path}: storage {entry} is missing; the file is truncated."
                    ) from None
                itemsize = torch.empty((), dtype=dtype).element_size()
                if len(raw) < numel * itemsize:
                    raise CheckpointError(f"{path}: storage {entry} is short; the file is truncated.")
                cache[key] = (
                    torch.frombuffer(bytearray(raw), dtype=dtype, count=numel)
                    if numel
                    else torch.empty(0, dtype=dtype)
                )
            return cache[key]

        try:
            data = archive.read(pickles[0])
            result = _RestrictedUnpickler(data, storage, where).load()
        except CheckpointError:
            raise
        except (
            zipfile.BadZipFile,
            EOFError,
            pickle.UnpicklingError,
            ValueError,
            TypeError,
            OSError,
        ) as error:
            raise CheckpointError(f"{path}: unreadable checkpoint ({error}); it may be truncated.") from None
    if not isinstance(result, dict):
        raise CheckpointError(
            f"{path}: the checkpoint holds a {type(result).__name__}, not a Lightning checkpoint dict."
        )
    return result
