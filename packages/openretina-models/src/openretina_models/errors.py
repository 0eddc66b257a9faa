"""The exceptions openretina_models raises, in one module that imports nothing else of the package.

Every layer (readouts, the registry, the checkpoint format, the 1.x importer, the kernels) raises
these, so they live at the bottom of the import graph: no module has to import a higher layer
just to name an error.
"""

from __future__ import annotations

__all__ = ["CheckpointError", "KernelUnavailableError", "NameLookupError", "PublishedModelUnavailable"]


class NameLookupError(KeyError):
    """An unknown model or session name; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0]) if self.args else ""


class CheckpointError(ValueError):
    """A checkpoint cannot be read: the message names the file and what is wrong with it."""


class PublishedModelUnavailable(CheckpointError):
    """A published model is neither in the cache nor downloadable now; the message says where to put it."""


class KernelUnavailableError(RuntimeError):
    """An explicitly requested kernel backend cannot run here."""
