"""Training: data and model from config, a Lightning loop, evaluation and the run directory."""
