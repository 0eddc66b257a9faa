"""Readouts: one per recording session, mapping shared features to that session's neurons."""

from openretina_models.readouts.base import MultiReadout, Readout
from openretina_models.readouts.gaussian_mask_1x import GaussianMask1xReadout
from openretina_models.readouts.linear_filter import LinearFilterReadout
from openretina_models.readouts.spatial import FactorisedReadout, GaussianMaskReadout, PointGaussianReadout

READOUT_KINDS = {
    "gaussian_mask": GaussianMaskReadout,
    "factorised": FactorisedReadout,
    "point_gaussian": PointGaussianReadout,
    "gaussian_mask_1x": GaussianMask1xReadout,
}

__all__ = [
    "READOUT_KINDS",
    "FactorisedReadout",
    "GaussianMask1xReadout",
    "GaussianMaskReadout",
    "LinearFilterReadout",
    "MultiReadout",
    "PointGaussianReadout",
    "Readout",
]
