"""openretina_models."""

from openretina_models._version import __version__

__all__ = ["__version__"]
