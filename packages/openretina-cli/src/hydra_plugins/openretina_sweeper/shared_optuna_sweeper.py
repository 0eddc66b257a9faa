"""The Hydra sweeper behind ``hparams_search=optuna``: one Optuna study shared by many workers.

Hydra imports every module under ``hydra_plugins`` at start-up, so this one stays tiny and imports
optuna only when a sweep starts; the work is in ``openretina_cli.sweeps.shared_sweep``.
"""

from __future__ import annotations

import os
from typing import Any

from hydra.plugins.sweeper import Sweeper


class SharedOptunaSweeper(Sweeper):
    """Hydra's sweeper interface around ``SharedStudySweep``."""

    def __init__(self, **options: Any) -> None:
        # optuna 2 needs SQLAlchemy 1.4, which warns about 2.0 on import: noise for users.
        os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
        from openretina_cli.sweeps.shared_sweep import SharedStudySweep

        self.sweep_impl = SharedStudySweep(**options)

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        self.sweep_impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        return self.sweep_impl.sweep(arguments)
