"""Issue 24: an outer config learns on a small file in its own format, beyond the linear baseline.

Slow (about a minute on a quiet CPU): `tools/bench/baseline_formats.py` writes a small Sridhar 2025
white-noise file with a simulated linear-nonlinear retina, trains the single-cell LNP config on it
and reads the model's and the baseline's correlations from the run. The other configs' numbers are
on docs/benchmarks.md ("Outer configs on a small file in their own format").
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "tools" / "bench"


@pytest.mark.slow
def test_the_single_cell_lnp_config_beats_its_baseline_on_a_small_white_noise_file(tmp_path: Path) -> None:
    sys.path.insert(0, str(TOOLS))
    try:
        from baseline_formats import run_config
    finally:
        sys.path.remove(str(TOOLS))
    row = run_config("vystrcilova_2024_wn_ln", tmp_path, epochs=20)
    assert "error" not in row, row
    assert row["val/correlation"] > row["val/baseline_correlation"] > 0.1
    assert row["test/correlation"] > row["test/baseline_correlation"] > 0.1
