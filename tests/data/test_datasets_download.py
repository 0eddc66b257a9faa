"""Downloads and the cache, with the network replaced by an in-memory server."""

from __future__ import annotations

import hashlib
import io
import socket
import threading
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
from openretina_data.datasets.fetching import cache, download
from openretina_data.datasets.fetching.cache import cache_path, default_cache_dir, hugging_face_url
from openretina_data.datasets.fetching.download import StderrProgress, download_file, extract_archive, fetch
from openretina_data.errors import DataError

URL = hugging_face_url("lab/set/responses/data.h5")
ZIP_URL = hugging_face_url("lab/set/responses/bundle.zip")


class _Response(io.BytesIO):
    def __init__(self, body: bytes, status: int, headers: dict[str, str], fail_after: int | None) -> None:
        super().__init__(body)
        self.status = status
        self.headers = headers
        self._fail_after = fail_after

    def read(self, size: int = -1) -> bytes:
        if self._fail_after is not None and self.tell() >= self._fail_after:
            raise ConnectionResetError("connection reset by peer")
        if self._fail_after is not None:
            size = min(size if size > 0 else 1 << 30, self._fail_after - self.tell())
        return super().read(size)


class FakeServer:
    """Serves ``files`` by URL like urlopen, honouring Range; can drop connections or fail."""

    def __init__(self, files: dict[str, bytes], *, honour_range: bool = True) -> None:
        self.files = files
        self.honour_range = honour_range
        self.requests: list[urllib.request.Request] = []
        self.failures: list[BaseException] = []  # raised by the next calls, in order
        self.drop_after: list[int | None] = []  # bytes sent before the connection drops, per call

    def __call__(self, request: urllib.request.Request, timeout: float | None = None) -> _Response:
        self.requests.append(request)
        if self.failures:
            raise self.failures.pop(0)
        body = self.files[request.full_url]
        fail_after = self.drop_after.pop(0) if self.drop_after else None
        ranged = request.get_header("Range")
        if ranged and self.honour_range:
            start = int(ranged.split("=")[1].rstrip("-"))
            if start >= len(body):
                raise urllib.error.HTTPError(request.full_url, 416, "Range Not Satisfiable", {}, None)  # type: ignore[arg-type]
            headers = {
                "Content-Length": str(len(body) - start),
                "Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}",
            }
            return _Response(body[start:], 206, headers, fail_after)
        return _Response(body, 200, {"Content-Length": str(len(body))}, fail_after)


def _no_network(request: urllib.request.Request, timeout: float | None = None) -> None:
    raise AssertionError(f"unexpected network call to {request.full_url}")


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, content in members.items():
            bundle.writestr(name, content)
    return buffer.getvalue()


def _quiet(label: str, done: int, total: int | None) -> None:
    return None


PAYLOAD = bytes(range(256)) * 4096  # 1 MiB, so a transfer spans more than one chunk


def test_cache_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENRETINA_CACHE_DIRECTORY", str(tmp_path / "explicit"))
    assert default_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("OPENRETINA_CACHE_DIRECTORY")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "openretina"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "openretina"


def test_cache_paths_mirror_the_hugging_face_layout(tmp_path: Path) -> None:
    assert cache_path(URL, tmp_path) == tmp_path / "lab/set/responses/data.h5"
    blob = "https://huggingface.co/datasets/open-retina/open-retina/blob/main/a/b.zip"
    assert cache.relative_cache_path(blob) == "a/b.zip"
    assert cache.relative_cache_path("https://example.org/x/y.h5") == "example.org/x/y.h5"


def test_download_succeeds_verifies_and_reports_progress(tmp_path: Path) -> None:
    server = FakeServer({URL: PAYLOAD})
    seen: list[tuple[int, int | None]] = []
    path = fetch(
        URL,
        cache_dir=tmp_path,
        opener=server,
        sha256=hashlib.sha256(PAYLOAD).hexdigest(),
        progress=lambda label, done, total: seen.append((done, total)),
    )
    assert path == tmp_path / "lab/set/responses/data.h5"
    assert path.read_bytes() == PAYLOAD
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert not list(path.parent.glob("*.part"))


def test_warm_cache_makes_no_network_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fetch(URL, cache_dir=tmp_path, opener=FakeServer({URL: PAYLOAD}), progress=_quiet)
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    assert fetch(URL, cache_dir=tmp_path, progress=_quiet).read_bytes() == PAYLOAD


def test_default_opener_is_urllib_urlopen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = FakeServer({URL: PAYLOAD})
    monkeypatch.setattr(urllib.request, "urlopen", server)
    fetch(URL, cache_dir=tmp_path, progress=_quiet)
    assert len(server.requests) == 1


def test_interrupted_download_is_resumed_with_a_range_request(tmp_path: Path) -> None:
    server = FakeServer({URL: PAYLOAD})
    server.drop_after = [300_000, None]
    sleeps: list[float] = []
    destination = tmp_path / "data.h5"
    download_file(URL, destination, opener=server, progress=_quiet, sleep=sleeps.append, backoff_s=0.5)
    assert destination.read_bytes() == PAYLOAD
    assert [r.get_header("Range") for r in server.requests] == [None, "bytes=300000-"]
    assert sleeps == [0.5]


def test_partial_file_from_an_earlier_run_is_resumed(tmp_path: Path) -> None:
    destination = tmp_path / "data.h5"
    destination.with_name("data.h5.part").write_bytes(PAYLOAD[:1000])
    server = FakeServer({URL: PAYLOAD})
    download_file(URL, destination, opener=server, progress=_quiet)
    assert destination.read_bytes() == PAYLOAD
    assert server.requests[0].get_header("Range") == "bytes=1000-"


def test_server_ignoring_range_restarts_cleanly(tmp_path: Path) -> None:
    destination = tmp_path / "data.h5"
    destination.with_name("data.h5.part").write_bytes(b"stale bytes")
    download_file(URL, destination, opener=FakeServer({URL: PAYLOAD}, honour_range=False), progress=_quiet)
    assert destination.read_bytes() == PAYLOAD


def test_transient_http_errors_are_retried(tmp_path: Path) -> None:
    server = FakeServer({URL: PAYLOAD})
    server.failures = [urllib.error.HTTPError(URL, 503, "Service Unavailable", {}, None)]  # type: ignore[arg-type]
    download_file(URL, tmp_path / "data.h5", opener=server, progress=_quiet, sleep=lambda s: None)
    assert len(server.requests) == 2


def test_missing_file_fails_at_once(tmp_path: Path) -> None:
    server = FakeServer({URL: PAYLOAD})
    server.failures = [urllib.error.HTTPError(URL, 404, "Not Found", {}, None)]  # type: ignore[arg-type]
    with pytest.raises(DataError, match="HTTP 404"):
        download_file(URL, tmp_path / "data.h5", opener=server, progress=_quiet, sleep=lambda s: None)
    assert len(server.requests) == 1


def test_offline_cold_cache_says_what_to_download_and_where(tmp_path: Path) -> None:
    server = FakeServer({})
    server.failures = [urllib.error.URLError("Temporary failure in name resolution")] * 3
    with pytest.raises(DataError) as error:
        fetch(URL, cache_dir=tmp_path, opener=server, progress=_quiet, retries=2, backoff_s=0)
    message = str(error.value)
    assert URL in message
    assert str(tmp_path / "lab/set/responses/data.h5") in message
    assert "name resolution" in message
    assert len(server.requests) == 3


def test_no_name_resolution_fails_fast(tmp_path: Path) -> None:
    server = FakeServer({})
    server.failures = [urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))]
    with pytest.raises(DataError, match="cannot resolve the host name") as error:
        fetch(URL, cache_dir=tmp_path, opener=server, progress=_quiet, backoff_s=60)
    assert str(tmp_path / "lab/set/responses/data.h5") in str(error.value)
    assert len(server.requests) == 1


def test_size_mismatch_is_rejected_and_not_left_in_cache(tmp_path: Path) -> None:
    destination = tmp_path / "data.h5"
    with pytest.raises(DataError, match="expected 5"):
        download_file(URL, destination, expected_size=5, opener=FakeServer({URL: PAYLOAD}), progress=_quiet)
    assert not destination.exists()
    assert not list(tmp_path.iterdir())


def test_checksum_mismatch_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="sha256"):
        download_file(
            URL, tmp_path / "x.h5", sha256="0" * 64, opener=FakeServer({URL: PAYLOAD}), progress=_quiet
        )
    assert not list(tmp_path.iterdir())


def test_single_file_archive_is_extracted_once_and_the_zip_removed(tmp_path: Path) -> None:
    server = FakeServer({ZIP_URL: _zip_bytes({"inner.h5": PAYLOAD})})
    path = fetch(ZIP_URL, cache_dir=tmp_path, opener=server, progress=_quiet)
    assert path == tmp_path / "lab/set/responses/bundle/inner.h5"
    assert path.read_bytes() == PAYLOAD
    assert not (tmp_path / "lab/set/responses/bundle.zip").exists()
    assert fetch(ZIP_URL, cache_dir=tmp_path, opener=_no_network, progress=_quiet) == path


def test_folder_archive_is_not_nested_twice(tmp_path: Path) -> None:
    members = {"bundle/a/x.h5": b"1", "bundle/b/y.h5": b"2", "__MACOSX/bundle/._x.h5": b"junk"}
    path = fetch(
        ZIP_URL, cache_dir=tmp_path, opener=FakeServer({ZIP_URL: _zip_bytes(members)}), progress=_quiet
    )
    assert path == tmp_path / "lab/set/responses/bundle"
    assert sorted(p.relative_to(path).as_posix() for p in path.rglob("*.h5")) == ["a/x.h5", "b/y.h5"]
    assert not (path / "__MACOSX").exists()


def test_corrupt_archive_is_rejected_and_not_left_in_cache(tmp_path: Path) -> None:
    server = FakeServer({ZIP_URL: b"this is not a zip archive" * 100})
    with pytest.raises(DataError, match="corrupt"):
        fetch(ZIP_URL, cache_dir=tmp_path, opener=server, progress=_quiet)
    folder = tmp_path / "lab/set/responses"
    assert sorted(p.name for p in folder.iterdir() if p.suffix != ".lock") == []


def test_archive_with_a_bad_crc_is_rejected(tmp_path: Path) -> None:
    good = bytearray(_zip_bytes({"inner.h5": PAYLOAD}))
    good[100] ^= 0xFF  # flip a byte of the member's data
    archive = tmp_path / "bundle.zip"
    archive.write_bytes(bytes(good))
    with pytest.raises(DataError, match="corrupt"):
        extract_archive(archive, tmp_path / "bundle")
    assert not archive.exists()
    assert not (tmp_path / "bundle").exists()
    assert list(tmp_path.iterdir()) == []


def test_zip_put_in_the_cache_by_hand_is_extracted_without_network(tmp_path: Path) -> None:
    archive = tmp_path / "lab/set/responses/bundle.zip"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(_zip_bytes({"inner.h5": PAYLOAD}))
    path = fetch(ZIP_URL, cache_dir=tmp_path, opener=_no_network, progress=_quiet)
    assert path.read_bytes() == PAYLOAD


def test_data_dir_copy_skips_downloading(tmp_path: Path) -> None:
    local = tmp_path / "copy"
    (local / "lab/set/responses").mkdir(parents=True)
    (local / "lab/set/responses/data.h5").write_bytes(b"mirror layout")
    (local / "bundle.zip").write_bytes(_zip_bytes({"inner.h5": b"flat zip"}))
    (local / "other.h5").write_bytes(b"bare file")
    cache_dir = tmp_path / "cache"
    assert (
        fetch(URL, cache_dir=cache_dir, data_dir=local, opener=_no_network).read_bytes() == b"mirror layout"
    )
    extracted = fetch(ZIP_URL, cache_dir=cache_dir, data_dir=local, opener=_no_network)
    assert extracted.read_bytes() == b"flat zip"
    assert (local / "bundle.zip").exists()  # the user's own copy is never touched
    other = hugging_face_url("lab/set/stimuli/other.zip")
    assert fetch(other, cache_dir=cache_dir, data_dir=local, opener=_no_network).read_bytes() == b"bare file"


def test_data_dir_without_the_file_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"paths\.data_dir.*data\.h5"):
        fetch(URL, cache_dir=tmp_path / "cache", data_dir=tmp_path, opener=_no_network)


def test_data_dir_url_replaces_the_mirror_address(tmp_path: Path) -> None:
    mirror = "https://mirror.example.org/open-retina"
    server = FakeServer({f"{mirror}/lab/set/responses/data.h5": PAYLOAD})
    path = fetch(URL, cache_dir=tmp_path, data_dir=mirror, opener=server, progress=_quiet)
    assert path.read_bytes() == PAYLOAD


def test_stderr_progress_is_throttled(capsys: pytest.CaptureFixture[str]) -> None:
    progress = StderrProgress(interval_s=3600)
    for done in range(0, 10 * 2**20, 2**20):
        progress("file.zip", done, 10 * 2**20)
    progress("file.zip", 10 * 2**20, 10 * 2**20)
    err = capsys.readouterr().err
    assert err.count("downloading file.zip") == 2  # the first line and the finished one
    assert err.endswith("(100%)\n")


def test_download_module_exposes_no_partial_on_success(tmp_path: Path) -> None:
    download.download_file(URL, tmp_path / "d.h5", opener=FakeServer({URL: PAYLOAD}), progress=_quiet)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.h5"]


def test_concurrent_fetches_download_once(tmp_path: Path) -> None:
    server = FakeServer({ZIP_URL: _zip_bytes({"inner.h5": PAYLOAD})})
    slow = threading.Event()

    def opener(request: urllib.request.Request, timeout: float | None = None) -> _Response:
        slow.wait(0.2)  # hold the first download open while the second caller arrives
        return server(request, timeout)

    results: list[Path] = []
    workers = [
        threading.Thread(
            target=lambda: results.append(fetch(ZIP_URL, cache_dir=tmp_path, opener=opener, progress=_quiet))
        )
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(server.requests) == 1
    assert results[0] == results[1]
    assert results[0].read_bytes() == PAYLOAD


def test_a_flaky_connection_that_keeps_making_progress_completes(tmp_path: Path) -> None:
    server = FakeServer({URL: PAYLOAD})
    server.drop_after = [100_000] * 8 + [None]  # more drops than retries, each after new bytes
    destination = tmp_path / "data.h5"
    download_file(URL, destination, opener=server, progress=_quiet, retries=2, sleep=lambda s: None)
    assert destination.read_bytes() == PAYLOAD
    assert len(server.requests) == 9


def test_a_mirror_folder_needs_a_hugging_face_address_and_a_readable_listing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from openretina_data.datasets.fetching.mirror_folder import LISTING_NAME, fetch_folder, listing_url

    with pytest.raises(DataError, match="Hugging Face"):
        listing_url("https://example.org/data/goldin_2022")
    folder = "https://huggingface.co/datasets/open-retina/open-retina/tree/main/marre_lab/goldin_2022"
    cached = tmp_path / "marre_lab" / "goldin_2022" / LISTING_NAME
    cached.parent.mkdir(parents=True)
    cached.write_text("<html>not json</html>")
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)  # the cached listing needs none
    with pytest.raises(DataError, match="listing is unreadable"):
        fetch_folder(folder, cache_dir=tmp_path)
    assert not cached.exists()  # the next run asks for it again
