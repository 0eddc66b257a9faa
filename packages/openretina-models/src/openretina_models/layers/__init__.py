"""Small building blocks shared by cores, readouts and models."""

from openretina_models.layers.activations import inverse_output_nonlinearity, make_activation
from openretina_models.layers.conv import (
    FullConv3d,
    SpaceTimeSeparableConv3d,
    recomputed_in_backward,
    saved_tensor_hooks_active,
    spatial_padding_amount,
)
from openretina_models.layers.regularisers import group_sparsity, laplace_smoothness, temporal_smoothness

__all__ = [
    "FullConv3d",
    "SpaceTimeSeparableConv3d",
    "group_sparsity",
    "inverse_output_nonlinearity",
    "laplace_smoothness",
    "make_activation",
    "recomputed_in_backward",
    "saved_tensor_hooks_active",
    "spatial_padding_amount",
    "temporal_smoothness",
]
