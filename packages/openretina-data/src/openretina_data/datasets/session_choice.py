"""Picking the sessions a user asked for among the session files a published dataset has."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from openretina_data.errors import DataError


def choose_sessions(
    files: Mapping[str, Path], wanted: Sequence[str] | None, where: Path, what: str
) -> dict[str, Path]:
    """``files`` restricted to ``wanted`` (all of them when None), in the order asked for.

    A requested session without a file is one `DataError` on the ``sessions`` key that names the
    missing ones (``no {what} for [...]``) and the sessions there are.
    """
    if wanted is None:
        return dict(files)
    missing = [name for name in wanted if name not in files]
    if missing:
        raise DataError(where, "sessions", f"no {what} for {missing}", f"choose among {sorted(files)}")
    return {name: files[name] for name in wanted}
