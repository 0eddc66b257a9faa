"""openretina's Hydra plugins (Hydra only instantiates plugins from the ``hydra_plugins`` package)."""
