"""Evaluating a trained model: per-neuron metrics, their tables, figures and the HTML report."""
