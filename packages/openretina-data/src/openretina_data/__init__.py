"""openretina_data."""

from openretina_data._version import __version__

__all__ = ["__version__"]
