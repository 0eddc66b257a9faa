"""Where a command writes its outputs: checked before any work, and never at the cost of a user's file.

The rule for every command: it deletes or replaces only what it itself created. A command names the
entries it writes (``report.html``, ``figures/``...), checks the folder before it starts (`plan`),
writes everything into a hidden staging folder inside it, and moves its files into place at the end
(`write`). A file already there is replaced only when an earlier run of the same command wrote it
(the folder's manifest, `MANIFEST`, lists those) or when the folder is the command's own default
place in a run (``<run>/eval``). Anything else there stays untouched: a name that collides with a
user's file stops the command before any work, with a message.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from openretina_cli.errors import ConfigError

MANIFEST = ".openretina-outputs.json"


@dataclass(frozen=True)
class OutputFolder:
    """A checked output location for one command."""

    path: Path
    command: str  # e.g. "eval": names the command in messages and in the manifest
    entries: tuple[str, ...]  # top-level files and folders the command writes
    owned: bool  # the command's own default folder: everything in it is the command's

    def owns(self, relative: str) -> bool:
        """Whether the command may replace ``path/relative`` if it exists."""
        if self.owned:
            return True
        written = _manifest(self.path).get(self.command, [])
        return relative in written or any(name.startswith(relative.rstrip("/") + "/") for name in written)


def plan(
    out: str | os.PathLike[str] | None,
    default: Path | None,
    command: str,
    entries: Sequence[str],
    inputs: Sequence[tuple[str, Path | None]] = (),
    option: str = "--out",
) -> OutputFolder:
    """Check an output location before any work; `ConfigError` names what is wrong and what to do.

    ``out`` is what the user asked for (None: ``default``, the command's own folder in a run);
    ``inputs`` are the (what, path) pairs the command reads, e.g. ("run", RUN): the output may not
    be or contain any of them, nor sit inside a model folder.
    """
    if out is None or str(out) == "":
        if default is None:
            raise ConfigError(f"MODEL is not a run directory: pass {option} DIR for the outputs.")
        path, owned = default, True
    else:
        path, owned = Path(out).expanduser(), False
    where = f"{option} {out}" if out else f"The output folder {path}"
    absolute = Path(os.path.abspath(path))
    _check_not_a_file(absolute, where)
    for what, source in inputs:
        if source is None:
            continue
        source = Path(os.path.abspath(source.expanduser()))
        if absolute == source or source.is_relative_to(absolute):
            relation = "is" if absolute == source else "holds"
            instead = (
                f"Leave {option} out: the outputs then go to {default}."
                if default is not None and Path(os.path.abspath(default)) != absolute
                else "Name a new folder for the outputs."
            )
            raise ConfigError(
                f"{where} {relation} the {what} {source}, and openretina {command} never writes over its "
                f"input. {instead}"
            )
        if what == "model" and absolute.is_relative_to(source):
            raise ConfigError(
                f"{where} lies inside the {what} folder {source}: openretina {command} never writes into "
                f"its input. Name a folder outside it."
            )
    folder = OutputFolder(path, command, tuple(entries), owned)
    for name in entries:
        target = path / name
        if (target.exists() or target.is_symlink()) and not folder.owns(name):
            raise ConfigError(
                f"{target} already exists and was not written by openretina {command}: it is left as it "
                f"is. Name another {option} folder, or move {target.name} away."
            )
    _check_writable(absolute, where)
    return folder


def _check_not_a_file(path: Path, where: str) -> None:
    for candidate in (path, *path.parents):
        if candidate.exists() and not candidate.is_dir():
            if candidate == path:
                raise ConfigError(f"{where} is a file, not a folder. Name a folder for the outputs.")
            raise ConfigError(
                f"{where} lies inside {candidate}, which is a file. Name a folder for the outputs."
            )
        if candidate.exists():
            return


def _check_writable(path: Path, where: str) -> None:
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{where}: {existing} is not writable by you. Name a folder you can write to.")


def _manifest(path: Path) -> dict[str, list[str]]:
    try:
        data = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): [str(v) for v in vs] for k, vs in data.items() if isinstance(vs, list)}


@contextmanager
def write(folder: OutputFolder) -> Iterator[Path]:
    """Yield an empty staging folder; on success its files move into ``folder.path``.

    Files the command wrote there before and does not write now are removed (they were its own);
    nothing else in the folder is touched. On failure nothing is moved and the staging folder goes.
    """
    folder.path.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(prefix=f".openretina-{folder.command}-", suffix=".partial", dir=folder.path)
    )
    try:
        yield staging
        _commit(folder, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _commit(folder: OutputFolder, staging: Path) -> None:
    written = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if not p.is_dir())
    for relative in written:
        top = relative.split("/", 1)[0]
        target = folder.path / relative
        if top not in folder.entries:
            raise RuntimeError(f"openretina {folder.command} wrote {relative}, which it did not declare")
        if (target.exists() or target.is_symlink()) and not folder.owns(relative) and not folder.owns(top):
            raise ConfigError(
                f"{target} appeared while openretina {folder.command} ran and was not written by it: "
                "nothing was written. Run again with another --out folder."
            )
    manifest = _manifest(folder.path)
    earlier = set(manifest.get(folder.command, []))
    if folder.owned:  # the command's own folder: whatever its entries hold is an earlier run's output
        for name in folder.entries:
            entry = folder.path / name
            found = entry.rglob("*") if entry.is_dir() and not entry.is_symlink() else [entry]
            earlier.update(p.relative_to(folder.path).as_posix() for p in found if p.is_file())
    for relative in sorted(earlier):
        stale = folder.path / relative
        if relative not in written and stale.is_file() and not stale.is_symlink():
            stale.unlink()
    for relative in written:
        target = folder.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / relative, target)
    manifest[folder.command] = written
    temporary = staging / MANIFEST
    temporary.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    os.replace(temporary, folder.path / MANIFEST)
