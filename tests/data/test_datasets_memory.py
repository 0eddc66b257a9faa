"""Peak memory of the published-dataset readers stays within 1.5x the data's float32 size (1.3x for
Goldin 2022 and Karamanlis 2024).

Medium-size files of the real layout (full-size numbers are in docs/datasets.md); each load runs in
a fresh process so its peak resident set is its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fixtures_published import (
    write_goldin_fixture,
    write_hoefling_fixture,
    write_karamanlis_fixture,
    write_maheswaranathan_fixture,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path("/proc/self/status").exists(), reason="reads the peak RSS from /proc (Linux)"
    ),
]

# The peak resident set of the new process (VmHWM starts afresh at exec; ru_maxrss would not).
_MEASURE = textwrap.dedent(
    """
    import json, sys
    def high_water_mark():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    sys.path.insert(0, {fixtures!r})
    from fixtures_published import float32_bytes
    from openretina_data.datasets import read_hoefling_2024, read_maheswaranathan_2023
    from openretina_data.datasets import read_goldin_2022, read_karamanlis_2024
    before = high_water_mark()
    dataset = {call}
    peak = high_water_mark()
    print(json.dumps({{"before": before, "peak": peak, "float32": float32_bytes(dataset)}}))
    """
)


def _measure(call: str) -> dict[str, int]:
    code = _MEASURE.format(fixtures=str(Path(__file__).parent), call=call)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_hoefling_peak_memory(tmp_path: Path) -> None:
    paths = write_hoefling_fixture(
        tmp_path,
        n_sessions=10,
        rois_per_session=117,
        height=36,
        width=32,
        n_sequences=20,
        all_trace_types=False,
    )
    numbers = _measure(f"read_hoefling_2024({str(paths['responses'])!r}, {str(paths['movies'])!r})")
    assert numbers["peak"] - numbers["before"] <= 1.5 * numbers["float32"], numbers


def test_maheswaranathan_peak_memory(tmp_path: Path) -> None:
    root = write_maheswaranathan_fixture(
        tmp_path, sessions=["15-10-07", "15-11-21a", "15-11-21b"], n_train=40000
    )
    numbers = _measure(f"read_maheswaranathan_2023({str(root)!r})")
    assert numbers["peak"] - numbers["before"] <= 0.5 * numbers["float32"], numbers  # frames stay uint8


def test_goldin_peak_memory(tmp_path: Path) -> None:
    root = write_goldin_fixture(tmp_path, n_cells=100, n_train=3000, n_test=30, n_repeats=10, size=108)
    numbers = _measure(f"read_goldin_2022({str(root)!r})")
    assert numbers["peak"] - numbers["before"] <= 1.3 * numbers["float32"], numbers


def test_karamanlis_peak_memory_building_and_from_the_cache(tmp_path: Path) -> None:
    root = write_karamanlis_fixture(
        tmp_path,
        n_cells=60,
        n_blocks=20,
        block_frames=500,
        test_frames=600,
        n_images=8,
        image_height=600,
        image_width=800,
    )
    call = f"read_karamanlis_2024({str(root)!r}, species=None, cache_dir={str(tmp_path / 'cache')!r})"
    for _ in ("build", "cached"):
        numbers = _measure(call)
        assert numbers["peak"] - numbers["before"] <= 1.3 * numbers["float32"], numbers
