"""`import openretina_models` stays cheap and free of the training stack."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import json, sys, time
import torch
before = set(sys.modules)
start = time.perf_counter()
import openretina_models as om
om.list_models()  # registers the architectures
elapsed = time.perf_counter() - start
model = om.create_model("core_readout", in_shape=(2, 8, 8), n_neurons={"s": 3})
model(torch.zeros(model.stimulus_shape(model.warmup_frames + 1)), "s")
new = sorted(set(sys.modules) - before)
print(json.dumps({"elapsed": elapsed, "modules": new}))
"""

FORBIDDEN = (
    "lightning",
    "pytorch_lightning",
    "hydra",
    "omegaconf",
    "h5py",
    "openretina_data",
    "openretina_cli",
)


@pytest.mark.slow
def test_import_is_cheap_and_loads_no_training_stack() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    roots = {name.split(".")[0] for name in report["modules"]}
    assert not roots & set(FORBIDDEN), sorted(roots & set(FORBIDDEN))
    assert "triton" not in roots  # kernels import triton lazily, only for CUDA tensors
    # Import and registration on top of `import torch` (building and running a model is not counted).
    assert report["elapsed"] < 0.3, f"openretina_models took {report['elapsed']:.3f} s on top of torch"
