"""Named architectures: build a model from plain values, and record how it was built.

A checkpoint stores only the architecture *name* and its JSON arguments; loading goes back
through this registry, never through a dotted import path read from a file. The built-in
architectures register themselves when `openretina_models` is imported (its `__init__` imports
`architectures` once), so this module imports nothing above it.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
from torch import nn

from openretina_models.errors import NameLookupError

__all__ = [
    "DATA_ARGUMENTS",
    "NameLookupError",
    "create_model",
    "list_models",
    "model_hyperparameters",
    "model_signature",
    "register_model",
]

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
# Arguments every builder receives from `create_model` itself rather than from hyperparameters.
DATA_ARGUMENTS = ("in_shape", "n_neurons", "mean_activity")

BuilderT = TypeVar("BuilderT", bound=Callable[..., nn.Module])


def register_model(name: str) -> Callable[[BuilderT], BuilderT]:
    """Register a class or function `builder(*, in_shape, n_neurons, mean_activity, **hyper)` under `name`."""

    def decorator(builder: BuilderT) -> BuilderT:
        if name in _BUILDERS and _BUILDERS[name] is not builder:
            raise ValueError(f"Model name {name!r} is already registered (by {_BUILDERS[name]!r}).")
        parameters = inspect.signature(builder).parameters
        missing = [arg for arg in DATA_ARGUMENTS if arg not in parameters]
        if missing:
            raise TypeError(f"Model builder {name!r} must accept the keyword arguments {missing}.")
        _BUILDERS[name] = builder
        return builder

    return decorator


def list_models() -> list[str]:
    """Names of all registered architectures, sorted."""
    return sorted(_BUILDERS)


def model_signature(name: str) -> inspect.Signature:
    """The builder signature of `name` (its hyperparameters and their defaults)."""
    return inspect.signature(_lookup(name))


def model_hyperparameters(name: str) -> dict[str, inspect.Parameter]:
    """The hyperparameters of `name`, in builder order: every argument but the data arguments.

    Each value is an `inspect.Parameter`; its `.default` is the value `create_model` fills in when
    the argument is left out (`inspect.Parameter.empty` where there is none). A config checker
    reads the accepted names from here instead of keeping its own copy of the argument list.
    """
    return {
        key: parameter
        for key, parameter in model_signature(name).parameters.items()
        if key not in DATA_ARGUMENTS
    }


def create_model(
    name: str,
    *,
    in_shape: Sequence[int],
    n_neurons: Mapping[str, int],
    mean_activity: Mapping[str, Any] | None = None,
    **hyperparameters: Any,
) -> nn.Module:
    """Build the architecture `name` and store `{"name", "kwargs"}` on it as `model.architecture`.

    `in_shape` is `(channels, height, width)` of the stimulus; `n_neurons` maps session name to neuron
    count; `mean_activity` (optional) maps session name to an `(N,)` array used to initialise readout
    biases. The stored kwargs hold every argument with defaults filled in, so a checkpoint rebuilds the
    same model even if a later version changes a default.
    """
    builder = _lookup(name)
    signature = inspect.signature(builder)
    accepted = [p for p in signature.parameters if p not in DATA_ARGUMENTS]
    unknown = [key for key in hyperparameters if key not in signature.parameters or key in DATA_ARGUMENTS]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, accepted, n=3)
            hints.append(f"{key!r}" + (f" (did you mean {', '.join(map(repr, close))}?)" if close else ""))
        raise TypeError(
            f"Model {name!r} got unknown hyperparameter(s) {', '.join(hints)}. "
            f"Valid hyperparameters: {', '.join(accepted)}."
        )
    in_shape = _as_in_shape(in_shape)
    n_neurons = _as_n_neurons(n_neurons)
    bound = signature.bind(
        in_shape=in_shape, n_neurons=n_neurons, mean_activity=mean_activity, **hyperparameters
    )
    bound.apply_defaults()
    model = builder(**bound.arguments)
    kwargs = {key: value for key, value in bound.arguments.items() if key != "mean_activity"}
    model.architecture = {"name": name, "kwargs": to_json(kwargs, where=f"model {name!r}")}
    return model


def to_json(value: Any, *, where: str = "value") -> Any:
    """Convert tuples, numpy scalars and mappings to plain JSON values, or say which key cannot be."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): to_json(v, where=f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Sequence):
        return [to_json(v, where=f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(
        f"{where} is a {type(value).__name__}, which cannot be stored in a checkpoint's JSON; "
        "pass plain numbers, strings, lists or dicts."
    )


def _lookup(name: str) -> Callable[..., nn.Module]:
    try:
        return _BUILDERS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_BUILDERS), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise NameLookupError(
            f"Unknown model {name!r}.{hint} Registered models: {', '.join(sorted(_BUILDERS))}."
        ) from None


def _as_in_shape(in_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in in_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"in_shape must be (channels, height, width) with positive sizes, got {in_shape!r}.")
    return shape  # type: ignore[return-value]


def _as_n_neurons(n_neurons: Mapping[str, int]) -> dict[str, int]:
    if not isinstance(n_neurons, Mapping) or not n_neurons:
        raise ValueError(f"n_neurons must be a non-empty mapping session -> neuron count, got {n_neurons!r}.")
    result = {str(k): int(v) for k, v in n_neurons.items()}
    bad = {k: v for k, v in result.items() if v < 1}
    if bad:
        raise ValueError(f"n_neurons must be positive; got {bad}.")
    return result
