"""Datasets written from a known recipe: the 1.x tutorial data and a simulated retina."""

from openretina_data.synthetic.cell_models import true_rates
from openretina_data.synthetic.retina import (
    TEST_STIMULUS,
    GroundTruth,
    read_ground_truth,
    write_retina_dataset,
)
from openretina_data.synthetic.tutorial import write_tutorial_dataset

__all__ = [
    "TEST_STIMULUS",
    "GroundTruth",
    "read_ground_truth",
    "true_rates",
    "write_retina_dataset",
    "write_tutorial_dataset",
]
