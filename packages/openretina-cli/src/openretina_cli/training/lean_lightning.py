"""Train without importing the parts of torch and torchmetrics that a run never uses.

A training run without ``torch.compile`` imported two large stacks it never ran:

- ``torch._dynamo`` with sympy (~73 MiB of resident memory, ~2 s on a 2-core machine; torch 2.13
  CPU, Lightning 2.6). Lightning imports it for one class (``from torch._dynamo import
  OptimizedModule``, to recognise compiled models) and one decorator (``torch.compiler.disable``
  on two logging methods); torch's optimizers import it on their first call, to mark their
  methods as not to be compiled (``torch._disable_dynamo``) and to break compiled graphs
  (``torch._dynamo.graph_break()``); ``torch.use_deterministic_algorithms``, which the trainer
  calls, imports inductor's config (and with it ``torch._dynamo``) to copy the flag there.
- ``matplotlib.pyplot``: torchmetrics imports it whenever matplotlib is installed, for
  ``Metric.plot``, which nothing in a run calls (~28 MiB). The report imports matplotlib after
  training, once training's memory has been freed.

``import_lightning`` therefore installs, until something needs the real one, a small stand-in for
``torch._dynamo`` that answers those few questions as torch does outside ``torch.compile``:
``OptimizedModule`` (``isinstance`` is torch's own check once torch has defined the class, and
false before: a compiled module cannot exist without it), ``disable`` and ``graph_break`` (no-ops
outside compilation), ``is_compiling`` (false). Anything else asked of it (``torch.compile``, a
submodule such as ``torch._dynamo.config``) imports torch's real module in its place, and the
stand-in's answers then come from the real module. torchmetrics is told that matplotlib is
missing (its state where matplotlib is not installed), so ``Metric.plot`` says it needs matplotlib.
``deterministic_flag_without_inductor`` sets torch's deterministic flag while the trainer is built
and copies it into inductor's config when inductor is imported.

Nothing a run computes depends on any of this; ``tests/cli/test_lean_lightning.py`` checks that a
run's outputs are the same with and without it, and that ``torch.compile`` still works after it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.abc
import importlib.machinery
import sys
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from openretina_cli.training.lean_torchmetrics import install_lazy_torchmetrics

_DYNAMO = "torch._dynamo"
_lightning_importing = threading.Event()  # Lightning's `from torch._dynamo import ...` is running


def import_lightning() -> types.ModuleType:
    """``lightning.pytorch``, imported without ``torch._dynamo`` and torchmetrics' matplotlib."""
    if "lightning" in sys.modules:  # imported already (by a caller, or another thread of ours)
        import lightning.pytorch

        return lightning.pytorch
    import torch  # noqa: F401 - torch itself first: the stand-in replaces only its _dynamo

    install_dynamo_stand_in()
    _lightning_importing.set()
    try:
        with _torchmetrics_without_matplotlib():
            install_lazy_torchmetrics()  # its metric base classes only (lean_torchmetrics.py)
            import lightning.pytorch
    finally:
        _lightning_importing.clear()
    return lightning.pytorch


def real_dynamo() -> types.ModuleType | None:
    """torch's own ``torch._dynamo`` once it has been imported (None before)."""
    module = sys.modules.get(_DYNAMO)
    return None if module is None or isinstance(module, _DynamoStandIn) else module


class _CompiledModuleType(type):
    """isinstance/issubclass against torch's ``OptimizedModule``, once torch has defined it."""

    def __instancecheck__(cls, obj: Any) -> bool:
        real = _real_optimized_module()
        return real is not None and isinstance(obj, real)

    def __subclasscheck__(cls, subclass: type) -> bool:
        real = _real_optimized_module()
        return real is not None and issubclass(subclass, real)


class OptimizedModule(metaclass=_CompiledModuleType):
    """Stands in for ``torch._dynamo.OptimizedModule`` in Lightning's type checks."""


def _real_optimized_module() -> type | None:
    eval_frame = sys.modules.get(f"{_DYNAMO}.eval_frame")
    return getattr(eval_frame, "OptimizedModule", None)


def disable(
    fn: Callable[..., Any] | None = None,
    recursive: bool = True,
    *,
    reason: str | None = None,
    wrapping: bool = True,
) -> Any:
    """``torch._dynamo.disable``: outside ``torch.compile`` the function is just called; once the
    real ``torch._dynamo`` is imported, calls go through torch's own ``disable``."""
    if fn is None:
        return functools.partial(disable, recursive=recursive, reason=reason, wrapping=wrapping)
    disabled: list[Callable[..., Any]] = []

    def call(*args: Any, **kwargs: Any) -> Any:
        dynamo = real_dynamo()
        if dynamo is None:
            return fn(*args, **kwargs)
        if not disabled:
            disabled.append(dynamo.disable(fn, recursive, reason=reason))
        return disabled[0](*args, **kwargs)

    return functools.wraps(fn)(call) if wrapping else call


def graph_break(msg: str = "") -> None:
    """``torch._dynamo.graph_break``: nothing outside ``torch.compile``."""
    dynamo = real_dynamo()
    if dynamo is not None:
        dynamo.graph_break(msg)


def is_compiling() -> bool:
    dynamo = real_dynamo()
    return bool(dynamo is not None and dynamo.is_compiling())


class _DynamoStandIn(types.ModuleType):
    """``sys.modules["torch._dynamo"]`` until something needs more than its four answers."""

    OptimizedModule = OptimizedModule
    disable = staticmethod(disable)
    graph_break = staticmethod(graph_break)
    is_compiling = staticmethod(is_compiling)

    def __getattr__(self, name: str) -> Any:
        if name == "__path__" and _lightning_importing.is_set():
            raise AttributeError(name)  # `from torch._dynamo import OptimizedModule` while Lightning imports
        if name.startswith("__") and name != "__path__":
            raise AttributeError(name)
        return getattr(_import_real_dynamo(), name)


_stand_in_lock = threading.RLock()


def install_dynamo_stand_in() -> None:
    """Put the stand-in in ``sys.modules`` unless torch's own ``torch._dynamo`` is there already."""
    with _stand_in_lock:
        if _DYNAMO in sys.modules:
            return
        sys.modules[_DYNAMO] = _DynamoStandIn(_DYNAMO, "torch._dynamo until a run needs it (lean_lightning).")
        _ReinstateSubmodule().install()


def _import_real_dynamo() -> types.ModuleType:
    with _stand_in_lock:
        real = real_dynamo()
        if real is not None:
            return real
        sys.modules.pop(_DYNAMO, None)
        return importlib.import_module(_DYNAMO)


class _Reinstate(importlib.abc.Loader):
    """Loads `module` by putting it back: it was imported while its name was being looked up."""

    def __init__(self, module: types.ModuleType) -> None:
        self.module = module

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        sys.modules[module.__name__] = self.module  # the import system returns what is there now


class _ReinstateSubmodule(importlib.abc.MetaPathFinder):
    """`import torch._dynamo.X` with the stand-in in place: asking the stand-in for its ``__path__``
    imports the real package, which imports X too; Python would then execute X a second time. This
    finder hands back the X already imported instead, and retires once the real package is in."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if not name.startswith(f"{_DYNAMO}.") or real_dynamo() is None:
            return None
        self.remove()
        module = sys.modules.get(name)
        return None if module is None else importlib.machinery.ModuleSpec(name, _Reinstate(module))

    def install(self) -> None:
        sys.meta_path.insert(0, self)

    def remove(self) -> None:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs `action` on module `name` right after it is first executed (it finds nothing itself)."""

    def __init__(self, name: str, action: Callable[[types.ModuleType], None]) -> None:
        self.name = name
        self.action = action

    def find_spec(self, name: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name != self.name:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        loader = None if spec is None else spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run_module = loader.exec_module
        action = self.action

        def exec_module(module: types.ModuleType) -> None:
            run_module(module)
            action(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        self.remove()
        return spec

    def install(self) -> None:
        sys.meta_path.insert(0, self)

    def remove(self) -> None:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)


_METRICS_FLAGS = "torchmetrics.utilities.imports"


@contextmanager
def _torchmetrics_without_matplotlib() -> Iterator[None]:
    """torchmetrics' table of optional packages says matplotlib is missing while Lightning imports."""
    if _METRICS_FLAGS in sys.modules:  # torchmetrics already imported: it has decided
        yield
        return
    hook = _AfterImport(_METRICS_FLAGS, lambda flags: setattr(flags, "_MATPLOTLIB_AVAILABLE", False))
    hook.install()
    try:
        yield
    finally:
        hook.remove()


_INDUCTOR = "torch._inductor"  # its package imports its config: the flag is copied after the package
_inductor_flag: _AfterImport | None = None  # copies the flag into inductor's config when imported


def _copy_flag_to_inductor(mode: bool) -> Callable[[types.ModuleType], None]:
    def copy(_: types.ModuleType) -> None:
        importlib.import_module(f"{_INDUCTOR}.config").deterministic = mode

    return copy


@contextmanager
def deterministic_flag_without_inductor() -> Iterator[None]:
    """While the trainer is built: ``torch.use_deterministic_algorithms`` without importing inductor.

    torch's version imports ``torch._inductor.config`` (and with it ``torch._dynamo`` and sympy)
    only to copy the flag into it. Here torch's
    global flag is set at once and inductor's copy when (if ever) inductor is imported, so a later
    ``torch.compile`` sees the same setting.
    """
    import torch

    original = torch.use_deterministic_algorithms
    set_flag = getattr(torch._C, "_set_deterministic_algorithms", None)
    if _INDUCTOR in sys.modules or set_flag is None:
        yield
        return

    def use_deterministic_algorithms(mode: bool, *, warn_only: bool = False) -> None:
        global _inductor_flag
        set_flag(mode, warn_only=warn_only)
        if _inductor_flag is not None:  # the last call wins, as with torch's own function
            _inductor_flag.remove()
        _inductor_flag = _AfterImport(_INDUCTOR, _copy_flag_to_inductor(mode))
        _inductor_flag.install()

    torch.use_deterministic_algorithms = use_deterministic_algorithms
    try:
        yield
    finally:
        torch.use_deterministic_algorithms = original
