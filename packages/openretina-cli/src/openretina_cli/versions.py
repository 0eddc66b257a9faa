"""Installed versions of the openretina packages, read from their metadata (nothing is imported)."""

from __future__ import annotations

from importlib import metadata

DISTRIBUTIONS = ("openretina-cli", "openretina-data", "openretina-models")


def versions() -> dict[str, str]:
    """``{distribution: version}`` for the three openretina packages ("not installed" if absent)."""
    found: dict[str, str] = {}
    for distribution in DISTRIBUTIONS:
        try:
            found[distribution] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            found[distribution] = "not installed"
    return found
