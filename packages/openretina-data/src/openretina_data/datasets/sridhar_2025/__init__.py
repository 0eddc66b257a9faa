"""Sridhar et al. 2025: marmoset ganglion cells (MEA, 85 Hz) to natural movies seen through simulated
fixational eye movements, and to white noise, from the same four retinas.

- `reader`: fetch the mirror folders, build the movies once into the cache and read a `Dataset`;
- `responses`: the response pickles and the trial-wise validation split;
- `stimuli`: fixations, crops and the frames of the natural movie and the white noise.
"""

from openretina_data.datasets.sridhar_2025.reader import load_sridhar_2025, read_sridhar_2025

__all__ = ["load_sridhar_2025", "read_sridhar_2025"]
