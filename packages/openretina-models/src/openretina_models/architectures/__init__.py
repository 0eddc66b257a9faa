"""Registered architectures (importing this module registers them)."""

from openretina_models.architectures.base import RetinaModel
from openretina_models.architectures.core_readout import CoreReadout, conv3d_core_readout
from openretina_models.architectures.ensemble import Ensemble, ensemble_of
from openretina_models.architectures.lnp import LinearNonlinearPoisson, lnp_full
from openretina_models.architectures.single_cell import SingleCellLNP, SingleCellSpatialContrast

__all__ = [
    "CoreReadout",
    "Ensemble",
    "LinearNonlinearPoisson",
    "RetinaModel",
    "SingleCellLNP",
    "SingleCellSpatialContrast",
    "conv3d_core_readout",
    "ensemble_of",
    "lnp_full",
]
