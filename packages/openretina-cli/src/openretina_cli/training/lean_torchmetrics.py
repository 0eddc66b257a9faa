"""torchmetrics with only what Lightning asks of it, until something asks for more.

Lightning imports ``Metric`` and ``MetricCollection`` from torchmetrics (to recognise metric
objects a module logs); torchmetrics' package ``__init__`` imports every metric it has, 270
modules (~7 MiB of resident memory, 6 of them anonymous; torchmetrics 1.9, torch 2.13 CPU), none
of which a run uses. ``install_lazy_torchmetrics`` puts a ``torchmetrics`` module into
``sys.modules`` that imports only those two classes' modules (and the utilities they need); the
first time anything asks it for another name, it runs torchmetrics' own ``__init__`` in place, so
``torchmetrics.Accuracy`` and every submodule work as usual after that. Where this torchmetrics
is laid out differently, the usual import is left to happen instead.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import sys
import threading
import types
from typing import Any

_NAME = "torchmetrics"
_lock = threading.RLock()


class _LazyTorchmetrics(types.ModuleType):
    """``sys.modules["torchmetrics"]`` holding ``Metric`` and ``MetricCollection``; any other name
    runs torchmetrics' ``__init__`` into this module first."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or self.__dict__.get("_lean_loading"):
            raise AttributeError(name)  # while the real __init__ runs: submodules import as usual
        load_everything(self)
        return getattr(self, name)


def load_everything(module: types.ModuleType) -> None:
    """Run torchmetrics' own ``__init__`` in `module` (once)."""
    with _lock:
        if not isinstance(module, _LazyTorchmetrics):
            return
        module.__dict__["_lean_loading"] = True
        try:
            _remove_handlers(logging.getLogger(_NAME))  # its __init__ adds its handler again
            module.__spec__.loader.exec_module(module)  # type: ignore[union-attr]
        finally:
            del module.__dict__["_lean_loading"]
        module.__class__ = types.ModuleType


class _Handler(logging.StreamHandler):
    """torchmetrics' own stderr handler, as its ``__init__`` adds it (ours, to be taken out again)."""


def _remove_handlers(logger: logging.Logger) -> None:
    for handler in logger.handlers[:]:
        if isinstance(handler, _Handler):
            logger.removeHandler(handler)


def install_lazy_torchmetrics() -> bool:
    """Import torchmetrics' metric base classes without its metrics (False: nothing was changed,
    torchmetrics is imported already, missing, or laid out differently)."""
    with _lock:
        if _NAME in sys.modules:
            return False
        spec = importlib.util.find_spec(_NAME)
        if spec is None or spec.loader is None or spec.submodule_search_locations is None:
            return False
        module = _LazyTorchmetrics(_NAME)
        module.__spec__ = spec
        module.__loader__ = spec.loader
        module.__file__ = spec.origin
        module.__path__ = list(spec.submodule_search_locations)
        module.__package__ = _NAME
        logger = logging.getLogger(_NAME)
        handlers = list(logger.handlers)
        sys.modules[_NAME] = module
        try:
            _start(module)
        except Exception:  # another torchmetrics: forget the partial import, import it the usual way
            for name in [n for n in sys.modules if n == _NAME or n.startswith(f"{_NAME}.")]:
                del sys.modules[name]
            logger.handlers[:] = handlers  # the usual import adds its own
            return False
        return True


def _start(module: types.ModuleType) -> None:
    """What its ``__init__`` sets up before its submodules need it, then the two base classes."""
    about = importlib.import_module(f"{_NAME}.__about__")
    for name in getattr(about, "__all__", ()):  # its `from torchmetrics.__about__ import *`
        module.__dict__[name] = getattr(about, name)
    logger = logging.getLogger(_NAME)  # as torchmetrics' __init__ configures it
    logger.addHandler(_Handler())
    logger.setLevel(logging.INFO)
    module.__dict__["_logger"] = logger
    importlib.import_module(f"{_NAME}.utilities")  # before `metric`: the two import each other
    module.__dict__["Metric"] = importlib.import_module(f"{_NAME}.metric").Metric
    module.__dict__["MetricCollection"] = importlib.import_module(f"{_NAME}.collections").MetricCollection


def is_lazy() -> bool:
    """Whether ``sys.modules["torchmetrics"]`` is still the lazy module (for tests)."""
    with contextlib.suppress(KeyError):
        return isinstance(sys.modules[_NAME], _LazyTorchmetrics)
    return False
