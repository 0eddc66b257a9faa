"""tests/conftest.py, run for real: pytest in a subprocess on small test files in tmp_path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).resolve().parent / "conftest.py"
PYTEST_INI = """\
[pytest]
addopts = -p no:cacheprovider --strict-markers -rs
markers =
    cuda: needs a CUDA device
"""


def run_pytest(
    tmp_path: Path, test_source: str, device: str | None = None
) -> subprocess.CompletedProcess[str]:
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text(PYTEST_INI)
    (tmp_path / "test_sample.py").write_text(test_source)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "OPENRETINA_"))}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only our conftest matters; plugins cost seconds
    if device is not None:
        env["OPENRETINA_TEST_DEVICE"] = device
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_device_defaults_to_cpu_without_importing_torch(tmp_path: Path) -> None:
    result = run_pytest(
        tmp_path,
        "import sys\n\n"
        "def test_device(device):\n"
        "    assert device == 'cpu'\n"
        "    assert 'torch' not in sys.modules\n",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_mistyped_device_stops_the_run_with_a_clear_message(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, "def test_nothing():\n    pass\n", device="cdua")
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    assert "OPENRETINA_TEST_DEVICE='cdua' is not a device" in result.stderr


@pytest.mark.slow
def test_cuda_tests_skip_without_a_gpu_and_run_with_one(tmp_path: Path) -> None:
    result = run_pytest(
        tmp_path,
        "import pytest\n\n"
        "@pytest.mark.cuda\n"
        "def test_gpu():\n"
        "    import torch\n"
        "    assert torch.cuda.is_available()\n",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout or "needs a CUDA device" in result.stdout
