"""Model variants and builders shared by the openretina_models tests."""

from __future__ import annotations

import numpy as np
import openretina_models as om
import torch

IN_SHAPE = (2, 10, 8)
N_NEURONS = {"session_a": 5, "session_b": 7}

# Every registered architecture, plus readout kinds and core options that are kwargs of core_readout.
VARIANTS: list[tuple[str, dict]] = [(name, {}) for name in om.list_models()] + [
    ("core_readout", {"readout": "factorised", "readout_gamma_masks": 0.1}),
    ("core_readout", {"readout": "point_gaussian"}),
    ("core_readout", {"spatial_padding": "valid", "spatial_kernel_sizes": [3, 3], "pooling": [2, 1]}),
    ("core_readout", {"conv_type": ["full", "separable"], "dropout": 0.1, "readout_positive": True}),
    ("lnp", {"output_nonlinearity": "exp"}),
    ("single_cell_lnp", {"rf_locations": {"session_a": [[0, 0], [9, 7], [5, 4], [2, 6], [8, 1]]}}),
    ("single_cell_sc", {"temporal_filter": [0.0, 0.1, -0.2, 0.5, 1.0, 0.3]}),
]


def variant_id(variant: tuple[str, dict]) -> str:
    name, kwargs = variant
    return name + "".join(f"-{k}={v}" for k, v in kwargs.items())


def build(name: str, kwargs: dict, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    mean = {s: np.linspace(0.2, 2.0, n) for s, n in N_NEURONS.items()}
    regularised = {"core_readout", "conv3d_core_readout"}
    extra = {"gamma_input": 0.1, "gamma_hidden": 0.1, "gamma_in_sparse": 0.1, "gamma_temporal": 0.1}
    if name in regularised:
        kwargs = {
            "hidden_channels": [4, 6],
            "temporal_kernel_sizes": [5, 3],
            "spatial_kernel_sizes": 3,
            **extra,
            **kwargs,
        }
    elif name == "ensemble":  # two members with different warm-ups (the ensemble crops to the shorter)
        members = [
            {"name": "core_readout", "kwargs": {"hidden_channels": [4], "temporal_kernel_sizes": 5, **extra}},
            {"name": "lnp", "kwargs": {"temporal_kernel_size": 6, "gamma_spatial": 0.1}},
        ]
        kwargs = {"members": members, **kwargs}
    elif name == "single_cell_sc":  # four learned scalars per neuron: no penalties to set
        kwargs = {"temporal_kernel_size": 6, "crop_size": [5, 4], **kwargs}
    else:
        if name == "single_cell_lnp":
            kwargs = {"crop_size": [5, 4], **kwargs}
        kwargs = {
            "temporal_kernel_size": 6,
            "gamma_spatial": 0.1,
            "gamma_temporal": 0.1,
            "gamma_l1": 0.1,
            **kwargs,
        }
    return om.create_model(name, in_shape=IN_SHAPE, n_neurons=N_NEURONS, mean_activity=mean, **kwargs)
