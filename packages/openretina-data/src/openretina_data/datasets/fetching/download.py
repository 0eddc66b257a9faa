"""Fetch published files into the cache: atomic, resumable, retried, verified, extracted once.

Rules (see docs/datasets.md):
- a warm cache makes no network call: the final path existing means it is complete, because every
  file and folder reaches its final name only by an atomic rename after it was verified;
- a download goes to ``<name>.part`` beside its final path; an interrupted one is resumed with an
  HTTP Range request from the partial file's size, by a retry within the run or by the next run;
- transient failures (connection errors, timeouts, HTTP 408/429/5xx) are retried with exponential
  backoff; anything else fails at once;
- size (from the server, or the caller) and, when known, sha256 are checked before the rename; a
  file that fails is deleted rather than left in the cache;
- zip archives are tested, extracted into a temporary folder and renamed into place; the archive is
  then deleted (the extracted folder is the cache entry);
- with no network and a cold cache the error names the URL and the exact path to put the file at.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from http.client import HTTPException
from pathlib import Path
from typing import Any, BinaryIO

from openretina_data.datasets.fetching.cache import (
    cache_path,
    extracted_path,
    is_set,
    is_url,
    relative_cache_path,
    resolve_cache_dir,
)
from openretina_data.errors import DataError

ProgressCallback = Callable[[str, int, int | None], None]
"""``progress(label, bytes_done, bytes_total_or_None)``, called as bytes arrive."""

Opener = Callable[..., Any]
"""Something called like ``urllib.request.urlopen(request, timeout=...)``."""

_TRANSIENT_HTTP_CODES = frozenset({408, 425, 429, 500, 502, 503, 504})
_CHUNK_BYTES = 1 << 20


class StderrProgress:
    """A plain progress line on stderr, redrawn at most every ``interval_s`` seconds."""

    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self._last: float | None = None

    def __call__(self, label: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        finished = total is not None and done >= total
        if not finished and self._last is not None and now - self._last < self.interval_s:
            return
        self._last = now
        mib = done / 2**20
        if total:
            text = f"\rdownloading {label}: {mib:,.1f} / {total / 2**20:,.1f} MiB ({100 * done / total:.0f}%)"
        else:
            text = f"\rdownloading {label}: {mib:,.1f} MiB"
        sys.stderr.write(text + ("\n" if finished else ""))
        sys.stderr.flush()


class _Transient(Exception):
    """A failure worth retrying; carries the reason for the final message."""


class _Offline(Exception):
    """No network at all (the host name does not resolve): retrying would only make people wait."""


def _offline_error(url: str, destination: Path, reason: str) -> DataError:
    return DataError(
        url,
        None,
        f"could not download it ({reason}) and it is not in the cache",
        f"if this machine has no network, download {url} elsewhere and put it at {destination} "
        "(a .zip is extracted there on the next run, with no network), or set paths.data_dir to a "
        "folder that already holds the dataset",
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def _total_from_headers(response: Any, offset: int, status: int) -> int | None:
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    content_range = headers.get("Content-Range")
    if status == 206 and content_range and "/" in content_range:
        tail = content_range.rsplit("/", 1)[1].strip()
        if tail.isdigit():
            return int(tail)
    length = headers.get("Content-Length")
    if length is not None and str(length).isdigit():
        return int(length) + (offset if status == 206 else 0)
    return None


def _copy_stream(
    source: BinaryIO, sink: BinaryIO, label: str, done: int, total: int | None, progress: ProgressCallback
) -> int:
    while True:
        block = source.read(_CHUNK_BYTES)
        if not block:
            return done
        sink.write(block)
        done += len(block)
        progress(label, done, total)


def _attempt(
    url: str, partial: Path, opener: Opener, timeout_s: float, label: str, progress: ProgressCallback
) -> int | None:
    """One request: append to ``partial`` (resuming from its size). Returns the total size if known."""
    offset = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "openretina-data"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = opener(request, timeout=timeout_s)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            return offset  # the partial file already holds everything the server has
        if error.code in _TRANSIENT_HTTP_CODES:
            raise _Transient(f"HTTP {error.code}") from error
        raise DataError(
            url,
            None,
            f"the server answered HTTP {error.code} ({error.reason})",
            "check the URL in the data_io config, or download the file yourself (docs/datasets.md)",
        ) from error
    except urllib.error.URLError as error:
        if isinstance(error.reason, socket.gaierror):
            raise _Offline(f"cannot resolve the host name: {error.reason}") from error
        raise _Transient(str(error.reason)) from error
    except (TimeoutError, ConnectionError, HTTPException, OSError) as error:
        raise _Transient(str(error)) from error
    try:
        status = getattr(response, "status", None) or response.getcode()
        if offset and status != 206:
            offset = 0  # the server ignored the Range header: start again
        total = _total_from_headers(response, offset, status)
        with partial.open("ab" if offset else "wb") as sink:
            _copy_stream(response, sink, label, offset, total, progress)
    except (TimeoutError, ConnectionError, HTTPException, urllib.error.URLError, OSError) as error:
        raise _Transient(f"connection dropped: {error}") from error
    finally:
        close = getattr(response, "close", None)
        if close is not None:
            close()
    return total


def download_file(
    url: str,
    destination: str | os.PathLike[str],
    *,
    expected_size: int | None = None,
    sha256: str | None = None,
    progress: ProgressCallback | None = None,
    opener: Opener | None = None,
    retries: int = 4,
    backoff_s: float = 2.0,
    timeout_s: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Path:
    """Download ``url`` to ``destination`` atomically; return ``destination``.

    Does nothing (and touches no network) when ``destination`` exists. A ``<name>.part`` file left
    by an interrupted download is resumed. ``opener`` defaults to ``urllib.request.urlopen``.
    """
    destination = Path(destination)
    if destination.exists():
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    open_url = opener if opener is not None else urllib.request.urlopen
    report = progress if progress is not None else StderrProgress()
    label = destination.name
    reason = "unknown error"
    failures = 0  # consecutive attempts that brought no new bytes; progress resets the count
    while failures <= retries:
        before = partial.stat().st_size if partial.exists() else 0
        try:
            total = _attempt(url, partial, open_url, timeout_s, label, report)
        except _Offline as error:
            raise _offline_error(url, destination, str(error)) from None
        except _Transient as error:
            reason, total = str(error), None
        else:
            size = partial.stat().st_size if partial.exists() else 0
            wanted = expected_size if expected_size is not None else total
            if wanted is None or size >= wanted or (total is not None and size >= total):
                _verify(partial, url, expected_size, total, sha256)
                os.replace(partial, destination)
                return destination
            reason = f"connection closed after {size} of {wanted} bytes"
        after = partial.stat().st_size if partial.exists() else 0
        failures = 1 if after > before else failures + 1
        if failures <= retries:
            sleep(backoff_s * 2 ** (failures - 1))  # then resume from the partial file
    raise _offline_error(url, destination, f"{reason}; {retries + 1} attempts without progress")


def _verify(
    partial: Path, url: str, expected_size: int | None, total: int | None, sha256: str | None
) -> None:
    size = partial.stat().st_size
    problems = []
    if expected_size is not None and size != expected_size:
        problems.append(f"size {size} bytes, expected {expected_size}")
    elif total is not None and size != total:
        problems.append(f"size {size} bytes, server announced {total}")
    if not problems and sha256 is not None:
        actual = _sha256(partial)
        if actual.lower() != sha256.lower():
            problems.append(f"sha256 {actual}, expected {sha256}")
    if problems:
        partial.unlink(missing_ok=True)
        raise DataError(
            url,
            None,
            f"the download is corrupt ({'; '.join(problems)}) and was deleted",
            "run again to download it afresh; if this repeats, check the size/sha256 in the data_io config",
        )


def extract_archive(
    archive: str | os.PathLike[str], target: str | os.PathLike[str], *, delete_archive: bool = False
) -> Path:
    """Extract a zip into ``target`` atomically and return ``target``.

    The archive is tested first (CRC of every member); a bad archive is deleted and reported. When
    every member sits under one top-level folder, that folder becomes ``target`` (no double nesting).
    macOS metadata (``__MACOSX``, ``._*``) is skipped. ``delete_archive`` removes the zip once the
    extracted folder is in place (the folder is then the cache entry).
    """
    archive, target = Path(archive), Path(target)
    if target.exists():
        return target
    try:
        with zipfile.ZipFile(archive) as bundle:
            bad = bundle.testzip()
            if bad is not None:
                raise zipfile.BadZipFile(f"member {bad!r} fails its CRC check")
            members = [m for m in bundle.namelist() if not _is_metadata(m)]
            if not members:
                raise zipfile.BadZipFile("it holds no files")
            scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.extracting-", dir=target.parent))
            try:
                for member in members:
                    _check_member_path(member, archive)
                    bundle.extract(member, scratch)
                tops = {m.split("/", 1)[0] for m in members}
                only = scratch / next(iter(tops))
                source = only if len(tops) == 1 and only.is_dir() else scratch
                os.replace(source, target)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as error:
        archive.unlink(missing_ok=True)
        raise DataError(
            archive,
            None,
            f"the zip archive is corrupt ({error}) and was deleted from the cache",
            "run again to download it afresh, or replace it with a good copy",
        ) from error
    if delete_archive:
        archive.unlink(missing_ok=True)
    return target


def _is_metadata(member: str) -> bool:
    name = member.rstrip("/").rsplit("/", 1)[-1]
    return member.startswith("__MACOSX/") or name.startswith("._") or name == ".DS_Store"


def _check_member_path(member: str, archive: Path) -> None:
    if member.startswith(("/", "\\")) or ".." in Path(member).parts:
        raise zipfile.BadZipFile(f"member {member!r} of {archive} points outside the archive")


def archive_result(folder: Path) -> Path:
    """What an extracted archive stands for: its only file, or else the folder itself."""
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_file():
        return entries[0]
    return folder


def fetch(
    url: str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    expected_size: int | None = None,
    sha256: str | None = None,
    progress: ProgressCallback | None = None,
    opener: Opener | None = None,
    retries: int = 4,
    backoff_s: float = 2.0,
) -> Path:
    """The local path of the published file at ``url``, downloading and extracting it if needed.

    - ``data_dir`` set to a local folder: the file is looked up there (as ``<data_dir>/<path in the
      mirror>`` or ``<data_dir>/<file name>``, extracted or as the zip) and nothing is downloaded;
    - ``data_dir`` set to a URL: it replaces the mirror's base address;
    - otherwise the cache (see :mod:`openretina_data.datasets.fetching.cache`) is used.
    For a zip the extracted file (single-file archive) or folder is returned.
    """
    relative = relative_cache_path(url)
    if is_set(data_dir):
        if is_url(data_dir):
            url = f"{str(data_dir).rstrip('/')}/{relative}"
        else:
            return _from_data_dir(Path(data_dir).expanduser(), relative, cache_dir)
    destination = cache_path(url, cache_dir)
    cached = _cached(destination)
    if cached is not None:
        return cached
    destination.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(destination):  # other processes (e.g. DDP ranks) wait, then find it cached
        cached = _cached(destination)
        if cached is not None:
            return cached
        return _download_and_extract(
            url, destination, expected_size, sha256, progress, opener, retries, backoff_s
        )


def _cached(destination: Path) -> Path | None:
    if destination.suffix == ".zip":
        folder = extracted_path(destination)
        return archive_result(folder) if folder.exists() else None
    return destination if destination.exists() else None


@contextlib.contextmanager
def exclusive_lock(destination: Path) -> Iterator[None]:
    """An inter-process lock beside ``destination`` (POSIX ``flock``; no-op where unavailable).

    Whoever fills a cache entry holds it, so concurrent processes (DDP ranks) wait and then find the
    entry complete instead of building it twice.
    """
    try:
        import fcntl
    except ImportError:  # Windows: one process at a time is the user's job
        yield
        return
    with destination.with_name(destination.name + ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _download_and_extract(
    url: str,
    destination: Path,
    expected_size: int | None,
    sha256: str | None,
    progress: ProgressCallback | None,
    opener: Opener | None,
    retries: int,
    backoff_s: float,
) -> Path:
    download_file(
        url,
        destination,
        expected_size=expected_size,
        sha256=sha256,
        progress=progress,
        opener=opener,
        retries=retries,
        backoff_s=backoff_s,
    )
    if destination.suffix == ".zip":
        folder = extract_archive(destination, extracted_path(destination), delete_archive=True)
        return archive_result(folder)
    return destination


def _from_data_dir(data_dir: Path, relative: str, cache_dir: str | os.PathLike[str] | None) -> Path:
    name = relative.rsplit("/", 1)[-1]
    for candidate in (data_dir / relative, data_dir / name):
        forms = [candidate]
        if candidate.suffix == ".zip":
            stem = extracted_path(candidate)
            # the extracted folder, or the bare file as an older mirror served it (x.zip -> x.h5)
            bare = sorted(
                p for p in stem.parent.glob(f"{stem.name}.*") if p.suffix not in (".zip", ".part", ".lock")
            )
            forms = [stem, *bare, candidate]
        for form in forms:
            if not form.exists():
                continue
            if form.suffix == ".zip":
                target = extracted_path(resolve_cache_dir(cache_dir) / relative)
                target.parent.mkdir(parents=True, exist_ok=True)
                copy = _copy_if_needed(form, target)
                return archive_result(extract_archive(copy, target, delete_archive=True))
            return archive_result(form) if form.is_dir() else form
    forms = f"{name}, its extracted folder or the bare file" if name.endswith(".zip") else name
    raise DataError(
        data_dir,
        "paths.data_dir",
        f"the folder holds no {forms}, neither directly nor under {relative.rsplit('/', 1)[0]}/",
        "put the file there, or set paths.data_dir to null to download it into the cache",
    )


def _copy_if_needed(archive: Path, target: Path) -> Path:
    """Extraction deletes a bad archive; never delete the user's own copy, so work on a cache copy."""
    copy = target.with_name(target.name + ".zip")
    if not copy.exists():
        partial = copy.with_name(copy.name + ".part")
        shutil.copyfile(archive, partial)
        os.replace(partial, copy)
    return copy
