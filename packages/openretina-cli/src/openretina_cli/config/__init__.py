"""What train, eval and mei share before any work starts: composing the Hydra config tree and
checking it, resolving a model argument, and building the model and the data a config names.

Nothing here runs a training loop or writes results; it turns configs and arguments into checked
objects (or one `ConfigError` that says what to fix).
"""
