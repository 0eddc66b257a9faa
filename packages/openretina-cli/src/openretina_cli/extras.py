"""Optional extras of openretina-cli: Hydra plugins that are installed separately.

The Optuna sweeper (``hparams_search=optuna``) and the SLURM launcher (``hydra/launcher=slurm``)
are Hydra plugins. Without them Hydra only says a config is missing; `missing_plugin_message`
turns that into the pip command that installs the extra.
"""

from __future__ import annotations

import importlib.util

# Config group path prefix -> (extra name, the plugin's module, what it is for).
PLUGIN_CONFIGS = {
    "hydra/sweeper/optuna": ("optuna", "hydra_plugins.hydra_optuna_sweeper", "hyperparameter search"),
    "hydra/sweeper/sampler/": ("optuna", "hydra_plugins.hydra_optuna_sweeper", "hyperparameter search"),
    "hydra/launcher/submitit_": ("submitit", "hydra_plugins.hydra_submitit_launcher", "SLURM jobs"),
}


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_plugin_message(missing_config: str) -> str | None:
    """The install command when ``missing_config`` (e.g. hydra/sweeper/optuna) comes from a plugin
    that is not installed; None otherwise."""
    for prefix, (extra, module, purpose) in PLUGIN_CONFIGS.items():
        if missing_config.startswith(prefix) and not installed(module):
            return (
                f"'{missing_config}' comes from a Hydra plugin for {purpose} that is not installed. "
                f'Install it with: pip install "openretina-cli[{extra}]"'
            )
    return None
