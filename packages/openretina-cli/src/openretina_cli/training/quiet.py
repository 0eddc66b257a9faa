"""Keep the console for what matters: silence Lightning's tips and warnings that do not apply here."""

from __future__ import annotations

import logging
import warnings

# Warnings Lightning or torch raise for situations this cli handles on purpose.
_IGNORED_WARNINGS = (
    r".*LeafSpec.*is deprecated.*",  # lightning's own use of an old torch pytree API
    r".*smaller than the logging interval.*",  # tiny datasets: the epoch-level metrics are logged anyway
    r".*does not have many workers.*",  # batches are assembled by vectorised numpy, not workers
    r".*`isinstance\(treespec, LeafSpec\)`.*",
)


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


def quiet_lightning() -> None:
    """Route Lightning's messages through the run's logging once, without advertising tips."""
    for pattern in _IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    names = ("lightning", "lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero")
    for name in names:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):  # Lightning's own console handler duplicates Hydra's
            logger.removeHandler(handler)
        logger.propagate = True
        logger.addFilter(_DropTips())
