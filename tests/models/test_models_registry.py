"""`model_hyperparameters(name)`: what a config may set for an architecture, with its defaults."""

from __future__ import annotations

import inspect

import openretina_models as om
import pytest
from openretina_models.errors import NameLookupError
from openretina_models.registry import DATA_ARGUMENTS


@pytest.mark.parametrize("name", om.list_models())
def test_hyperparameters_are_the_builder_arguments_but_the_data(name: str) -> None:
    hyper = om.model_hyperparameters(name)
    signature = om.model_signature(name).parameters
    assert list(hyper) == [key for key in signature if key not in DATA_ARGUMENTS]
    assert all(hyper[key] == signature[key] for key in hyper)


def test_defaults_are_what_create_model_fills_in() -> None:
    hyper = om.model_hyperparameters("core_readout")
    model = om.create_model("core_readout", in_shape=(2, 8, 8), n_neurons={"s": 3})
    stored = model.architecture["kwargs"]
    for key, parameter in hyper.items():
        if parameter.default is not inspect.Parameter.empty and not isinstance(parameter.default, tuple):
            assert stored[key] == parameter.default, key


def test_unknown_name_lists_the_registered_ones() -> None:
    with pytest.raises(NameLookupError, match=r"Registered models: .*core_readout"):
        om.model_hyperparameters("core_redout")
