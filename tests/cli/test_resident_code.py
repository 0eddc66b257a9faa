"""`resident_code`: start-up's library code leaves the resident set before training (issue 24's peak
memory), only pages whose contents cannot change are released, and a run computes the same."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import TINY_RUN, read_results, run_cli, run_dirs
from openretina_cli import resident_code
from openretina_cli.resident_code import Mapping, parse_smaps, releasable, release_start_up_code
from openretina_cli.training import run as training_run

SMAPS_TEXT = """\
55d0c0000000-55d0c0021000 rw-p 00000000 00:00 0                          [heap]
Size:                132 kB
Rss:                  64 kB
Anonymous:            64 kB
VmFlags: rd wr mr mw me ac
7f0000000000-7f0000400000 r-xp 00010000 08:01 1234                       /venv/lib/libtorch cpu.so
Size:               4096 kB
Rss:                2048 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me
7f0000400000-7f0000410000 r--p 00410000 08:01 1234                       /venv/lib/libtorch cpu.so
Size:                 64 kB
Rss:                  64 kB
Anonymous:            16 kB
7f0000410000-7f0000420000 rw-p 00420000 08:01 1234                       /venv/lib/libtorch cpu.so
Size:                 64 kB
Rss:                  64 kB
Anonymous:             0 kB
7f0000420000-7f0000430000 r--s 00000000 08:01 99                         /data/frames.npy
Size:                 64 kB
Rss:                  32 kB
Anonymous:             0 kB
7f0000430000-7f0000440000 r-xp 00000000 08:01 5                          /usr/lib/libunused.so
Size:                 64 kB
Rss:                   0 kB
Anonymous:             0 kB
7ffc00000000-7ffc00002000 r-xp 00000000 00:00 0                          [vdso]
Size:                  8 kB
Rss:                   8 kB
Anonymous:             0 kB
7f0000440000-7f0000450000 r--p 00000000 00:00 0
Size:                 64 kB
Rss:                   4 kB
Anonymous:             4 kB
"""


def test_smaps_are_parsed_region_by_region() -> None:
    mappings = parse_smaps(SMAPS_TEXT)
    assert [m.path for m in mappings] == [
        "[heap]",
        "/venv/lib/libtorch cpu.so",
        "/venv/lib/libtorch cpu.so",
        "/venv/lib/libtorch cpu.so",
        "/data/frames.npy",
        "/usr/lib/libunused.so",
        "[vdso]",
        "",
    ]
    assert mappings[1] == Mapping(
        0x7F0000000000, 0x7F0000400000, "r-xp", "/venv/lib/libtorch cpu.so", 2048, 0
    )
    assert (mappings[2].rss_kib, mappings[2].anonymous_kib) == (64, 16)


def test_only_unwritable_file_pages_without_private_copies_are_released() -> None:
    chosen = [(m.permissions, m.path) for m in parse_smaps(SMAPS_TEXT) if releasable(m)]
    # Not: the heap, a relocated (privately copied) read-only segment, a writable segment, an
    # empty mapping, the kernel's vdso, anonymous memory.
    assert chosen == [("r-xp", "/venv/lib/libtorch cpu.so"), ("r--s", "/data/frames.npy")]


def test_nothing_happens_without_smaps(tmp_path: Path) -> None:
    assert release_start_up_code(tmp_path / "no-such-smaps") == 0.0


_RELEASE_SCRIPT = """
import json, numpy as np
from openretina_cli.resident_code import release_start_up_code

def rss_kib():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:"))

a = np.random.default_rng(0).standard_normal((300, 300))
before_values = np.linalg.svd(a, compute_uv=False)
before = rss_kib()
released = release_start_up_code()
after = rss_kib()
same = bool(np.array_equal(np.linalg.svd(a, compute_uv=False), before_values))
print(json.dumps({"released_mib": released, "drop_mib": (before - after) / 1024, "same": same}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/smaps is Linux's")
def test_release_shrinks_the_resident_set_and_code_runs_as_before() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _RELEASE_SCRIPT], capture_output=True, text=True, check=True, timeout=120
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["released_mib"] > 1.0  # numpy, libpython and libc code at least
    assert result["drop_mib"] > 0.5 * result["released_mib"]
    assert result["same"]


@pytest.mark.slow
def test_a_run_releases_start_up_code_once_and_trains_the_same(
    tutorial_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = [
        "train",
        "--config-name",
        "hdf5_core_readout",
        f"paths.data_dir={tutorial_dir}",
        "data_io.test_names=[random_noise_2]",
        *TINY_RUN,
        "trainer.max_epochs=2",
    ]
    calls: list[float] = []

    def counted() -> float:
        calls.append(resident_code.release_start_up_code())
        return calls[-1]

    monkeypatch.setattr(training_run, "release_start_up_code", counted)
    assert run_cli([*args, f"paths.log_dir={tmp_path / 'released'}"], capsys).code == 0
    assert len(calls) == 1
    monkeypatch.setattr(training_run, "release_start_up_code", lambda: 0.0)
    assert run_cli([*args, f"paths.log_dir={tmp_path / 'kept'}"], capsys).code == 0
    (released,) = run_dirs(tmp_path / "released")
    (kept,) = run_dirs(tmp_path / "kept")
    assert read_results(released)["metrics"] == read_results(kept)["metrics"]
