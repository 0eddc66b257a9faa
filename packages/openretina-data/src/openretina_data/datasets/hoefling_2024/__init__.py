"""Höfling et al. 2024: mouse retinal ganglion cells (two-photon Ca²⁺ imaging) to green/UV movies.

- `reader`: fetch the responses HDF5 and the movie pickle, and read them into a `Dataset`;
- `quality`: the published ROI selection, applied to a loaded `Dataset`.
"""

from openretina_data.datasets.hoefling_2024.quality import (
    hoefling_quality_checks,
    select_neurons,
    settings_from_config,
)
from openretina_data.datasets.hoefling_2024.reader import (
    load_hoefling_2024,
    read_hoefling_2024,
    read_movie_pickle,
)

__all__ = [
    "hoefling_quality_checks",
    "load_hoefling_2024",
    "read_hoefling_2024",
    "read_movie_pickle",
    "select_neurons",
    "settings_from_config",
]
