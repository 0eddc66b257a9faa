"""Datasets written from a known recipe: the 1.x tutorial data and a simulated retina."""

from openretina_data.synthetic.tutorial import write_tutorial_dataset

__all__ = ["write_tutorial_dataset"]
