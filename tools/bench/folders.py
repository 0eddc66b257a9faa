"""The bench tools replace only folders they made themselves (the project's write rule).

A folder the tools create gets a `MARK` file; a tool about to rebuild a folder removes it only when
it is missing, empty, or carries that mark or one of the tool's own completion markers. Anything
else (say a user's folder reached through `--work`) stops the tool with a message.
"""

from __future__ import annotations

import shutil
from pathlib import Path

MARK = ".openretina-bench"


def remove_own_folder(path: Path, *markers: str) -> None:
    """Remove `path` if a bench tool made it; refuse (SystemExit with a message) otherwise."""
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_dir() or path.is_symlink():
        raise SystemExit(f"bench: {path} is not a folder the bench tools made; move it away or pick --work.")
    if any(path.iterdir()) and not any((path / name).exists() for name in (MARK, *markers)):
        raise SystemExit(
            f"bench: {path} exists and was not made by the bench tools (no {MARK} in it), so it is left "
            "as it is. Choose another --work folder, or remove it yourself."
        )
    shutil.rmtree(path)


def make_own_folder(path: Path) -> Path:
    """Create `path` (parents too) and mark it as the bench tools' own."""
    path.mkdir(parents=True, exist_ok=True)
    (path / MARK).touch()
    return path
