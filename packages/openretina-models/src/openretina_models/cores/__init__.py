"""Cores: shared feature extractors mapping a stimulus movie to feature maps."""

from openretina_models.cores.convolutional import SpatioTemporalCore

__all__ = ["SpatioTemporalCore"]
