"""Where published datasets live on disk: the cache directory and the path each source URL maps to.

The cache layout mirrors the Hugging Face dataset repository, so a file published at
``.../resolve/main/euler_lab/hoefling_2024/responses/x.zip`` is cached under
``<cache>/euler_lab/hoefling_2024/responses/x.zip`` and a user who copies the mirror by hand can
point ``paths.data_dir`` at the copy without renaming anything.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

CACHE_ENV_VAR = "OPENRETINA_CACHE_DIRECTORY"
HUGGING_FACE_BASE = "https://huggingface.co/datasets/open-retina/open-retina/resolve/main"

_HF_MARKERS = ("/resolve/main/", "/blob/main/", "/tree/main/")


def default_cache_dir() -> Path:
    """``$OPENRETINA_CACHE_DIRECTORY``, else ``$XDG_CACHE_HOME/openretina``, else ``~/.cache/openretina``."""
    explicit = os.environ.get(CACHE_ENV_VAR)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "openretina"


def is_set(option: str | os.PathLike[str] | None) -> bool:
    """False for a path option left unset: None, or the empty string a config gives for ``''``."""
    return option is not None and str(option) != ""


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache directory to use: the given one, or the default when None/empty."""
    if not is_set(cache_dir):
        return default_cache_dir()
    return Path(cache_dir).expanduser()


def is_url(source: str | os.PathLike[str]) -> bool:
    """True for http(s) addresses; everything else is a local path."""
    return str(source).startswith(("http://", "https://"))


def hugging_face_url(relative_path: str) -> str:
    """The download address of a file of the open-retina Hugging Face dataset mirror."""
    return f"{HUGGING_FACE_BASE}/{relative_path.lstrip('/')}"


def relative_cache_path(url: str) -> str:
    """The path under the cache directory that ``url`` is stored at.

    Hugging Face mirror URLs keep the part after ``main/`` (so the cache mirrors the repository);
    any other address is stored under ``<host>/<path>``.
    """
    for marker in _HF_MARKERS:
        if marker in url and "huggingface.co" in url:
            return unquote(url.split(marker, 1)[1].split("?", 1)[0]).strip("/")
    parts = urlsplit(url)
    return f"{parts.netloc}/{unquote(parts.path).strip('/')}"


def cache_path(url: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The file path ``url`` is (or will be) cached at."""
    return resolve_cache_dir(cache_dir) / relative_cache_path(url)


def extracted_path(archive: Path) -> Path:
    """The folder a cached ``.zip`` is extracted into (the archive's name without ``.zip``)."""
    return archive.with_name(archive.name.removesuffix(".zip"))
