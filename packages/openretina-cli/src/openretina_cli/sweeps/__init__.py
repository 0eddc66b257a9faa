"""Hyperparameter sweeps whose Optuna study lives in a database shared by many workers."""
