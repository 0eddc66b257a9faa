"""Fetch a whole folder of the Hugging Face mirror (datasets published as one file per session).

The file names of such a folder are not fixed in our configs, so the folder's listing is asked of
the Hugging Face API once and cached beside the files (``.openretina-listing.json``). Every listed
file then goes through :func:`~openretina_data.datasets.fetching.download.fetch` (atomic, resumable, size
and sha256 checked, zips extracted). A warm cache (listing and files present) makes no network call.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from openretina_data.datasets.fetching.cache import relative_cache_path, resolve_cache_dir
from openretina_data.datasets.fetching.download import Opener, ProgressCallback, download_file, fetch
from openretina_data.errors import DataError

LISTING_NAME = ".openretina-listing.json"
_HF_PREFIX = "https://huggingface.co/datasets/"


def listing_url(folder_url: str) -> str:
    """The Hugging Face API address that lists every file under ``folder_url`` (recursively)."""
    if not folder_url.startswith(_HF_PREFIX):
        raise DataError(
            folder_url,
            "url",
            "only a folder of a Hugging Face dataset can be listed for download",
            "use a https://huggingface.co/datasets/<owner>/<repo>/tree/main/<folder> address, "
            "or set paths.data_dir to a folder holding the files",
        )
    return f"https://huggingface.co/api/datasets/{_repo(folder_url)}/tree/main/{relative_cache_path(folder_url)}?recursive=true"


def _repo(folder_url: str) -> str:
    """``owner/name`` of the Hugging Face dataset that ``folder_url`` belongs to."""
    return "/".join(folder_url.removeprefix(_HF_PREFIX).split("/", 2)[:2])


def fetch_folder(
    folder_url: str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    wanted: Callable[[str], bool] = lambda name: True,
    progress: ProgressCallback | None = None,
    opener: Opener | None = None,
) -> Path:
    """The cached copy of the mirror folder at ``folder_url``, with every file whose path inside the
    folder passes ``wanted`` downloaded (zips extracted to folders of the same name)."""
    relative = relative_cache_path(folder_url)
    folder = resolve_cache_dir(cache_dir) / relative
    listing = folder / LISTING_NAME
    download_file(listing_url(folder_url), listing, progress=progress or _silent, opener=opener)
    try:
        entries = json.loads(listing.read_text())
        files = [
            (e["path"], int(e["size"]), (e.get("lfs") or {}).get("oid"))
            for e in entries
            if e["type"] == "file"
        ]
    except (ValueError, KeyError, TypeError) as error:
        listing.unlink(missing_ok=True)
        raise DataError(
            listing, None, f"the folder listing is unreadable ({error}) and was deleted", "run again"
        ) from error
    for path, size, sha256 in files:
        if wanted(path.removeprefix(relative).lstrip("/")):
            fetch(
                f"{_HF_PREFIX}{_repo(folder_url)}/resolve/main/{path}",
                cache_dir=cache_dir,
                expected_size=size,
                sha256=sha256,
                progress=progress,
                opener=opener,
            )
    return folder


def _silent(label: str, done: int, total: int | None) -> None:
    """The listing is a few kilobytes: no progress line for it."""
