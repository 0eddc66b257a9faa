"""Peak memory of the published-dataset readers stays within 1.5x the data's float32 size.

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
from fixtures_published import write_hoefling_fixture, write_maheswaranathan_fixture

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
