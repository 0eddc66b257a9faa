"""Checkpoints: exact round trips (also in a fresh process), clear errors, and `predict`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import openretina_models as om
import pytest
import torch
from models_testkit import IN_SHAPE, N_NEURONS, VARIANTS, build, variant_id
from safetensors.torch import load_file, save_file

DATA_INFO = {
    "input_shape": list(IN_SHAPE),
    "frame_rate_hz": 30.0,
    "stimulus_normalisation": {"mean": [0.5, 0.25], "std": [2.0, 4.0]},
    "sessions": {name: {"n_neurons": n} for name, n in N_NEURONS.items()},
}


def trained(name: str, kwargs: dict) -> torch.nn.Module:
    """A model whose batch-norm running statistics have moved away from their initial values."""
    model = build(name, kwargs).train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(model.stimulus_shape(20, batch=2)) * 3 + 1, "session_a")
    return model.eval()


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_round_trip_in_process(variant: tuple[str, dict], tmp_path: Path) -> None:
    model = trained(*variant)
    model.readout.add_sessions({"late": 2})
    x = torch.randn(model.stimulus_shape(20, batch=2))
    om.save_model(model, tmp_path / "ckpt", data_info=DATA_INFO, extra={"epoch": 3})
    loaded = om.load_model(tmp_path / "ckpt")
    assert not loaded.training
    assert loaded.n_neurons == {**N_NEURONS, "late": 2}
    for session in [*N_NEURONS, "late"]:
        with torch.no_grad():
            assert torch.equal(loaded(x, session), model(x, session))
    metadata = json.loads((tmp_path / "ckpt" / "model.json").read_text())
    assert metadata["extra"] == {"epoch": 3}
    assert metadata["data_info"] == DATA_INFO
    assert set(metadata["versions"]) >= {"openretina_models", "torch", "numpy", "safetensors"}


@pytest.mark.slow
def test_round_trip_in_a_fresh_process_without_the_training_stack(tmp_path: Path) -> None:
    expected = {}
    for i, variant in enumerate(VARIANTS):
        model = trained(*variant)
        x = torch.randn(model.stimulus_shape(20, batch=2), generator=torch.Generator().manual_seed(i))
        om.save_model(model, tmp_path / f"m{i}", data_info=DATA_INFO)
        torch.save({"x": x}, tmp_path / f"m{i}" / "input.pt")
        with torch.no_grad():
            expected[i] = model(x, "session_b").numpy()
        np.save(tmp_path / f"m{i}" / "expected.npy", expected[i])
    script = textwrap.dedent(
        f"""
        import sys
        class Block:  # pretend the training stack and the data package are not installed
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {{"lightning", "pytorch_lightning", "hydra", "omegaconf", "h5py",
                                          "openretina_data", "openretina_cli"}}:
                    raise ImportError(f"{{name}} is blocked in this test")
        sys.meta_path.insert(0, Block())
        import numpy as np, torch
        import openretina_models as om
        for i in range({len(VARIANTS)}):
            d = {str(tmp_path)!r} + f"/m{{i}}"
            model = om.load_model(d + "/model.json")
            x = torch.load(d + "/input.pt", weights_only=True)["x"]
            with torch.no_grad():
                out = model(x, "session_b").numpy()
            assert np.array_equal(out, np.load(d + "/expected.npy")), i
        print("ok", {len(VARIANTS)})
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ok {len(VARIANTS)}"


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    model = trained("core_readout", {})
    return om.save_model(model, tmp_path / "ckpt", data_info=DATA_INFO)


def test_load_accepts_directory_json_or_safetensors_path(checkpoint: Path) -> None:
    for path in (checkpoint, checkpoint / "model.json", checkpoint / "model.safetensors"):
        assert isinstance(om.load_model(path), torch.nn.Module)


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda d: (d / "model.json").write_text("{not json"), "not valid JSON"),
        (lambda d: (d / "model.json").unlink(), "model.json: file not found"),
        (lambda d: (d / "model.safetensors").unlink(), "model.safetensors: file not found"),
        (
            lambda d: _edit_json(d, lambda m: m["architecture"].update(name="mystery")),
            "unknown architecture 'mystery'",
        ),
        (lambda d: _edit_json(d, lambda m: m.update(format_version=99)), "format_version 99"),
        (lambda d: _edit_json(d, lambda m: m.pop("format")), "not an openretina model file"),
        (lambda d: _edit_json(d, lambda m: m["architecture"]["kwargs"].update(bogus=1)), "bogus"),
        (
            lambda d: _edit_weights(d, lambda s: s.pop("core.convs.0.spatial.weight")),
            "missing tensors core.convs.0",
        ),
        (lambda d: _edit_weights(d, lambda s: s.update(extra=torch.zeros(2))), "unexpected tensors extra"),
        (
            lambda d: _edit_weights(d, lambda s: s.update({"readout.session_a.bias": torch.zeros(9)})),
            r"mis-shaped tensors readout.session_a.bias \(9,\)",
        ),
        (lambda d: _truncate(d / "model.safetensors"), "unreadable safetensors"),
    ],
    ids=[
        "bad-json",
        "no-json",
        "no-weights",
        "unknown-arch",
        "future-format",
        "not-ours",
        "bad-kwarg",
        "missing-tensor",
        "extra-tensor",
        "misshaped-tensor",
        "truncated",
    ],
)
def test_corrupt_checkpoints_raise_checkpoint_error(checkpoint: Path, corrupt, message: str) -> None:
    corrupt(checkpoint)
    with pytest.raises(om.CheckpointError, match=message) as error:
        om.load_model(checkpoint)
    assert str(checkpoint) in str(error.value)  # the message names the file


def test_missing_directory_is_a_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(om.CheckpointError, match="no such checkpoint"):
        om.load_model(tmp_path / "nowhere")


def _edit_json(directory: Path, edit) -> None:
    metadata = json.loads((directory / "model.json").read_text())
    edit(metadata)
    (directory / "model.json").write_text(json.dumps(metadata))


def _edit_weights(directory: Path, edit) -> None:
    state = load_file(str(directory / "model.safetensors"))
    edit(state)
    save_file(state, str(directory / "model.safetensors"))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_predict_applies_stored_normalisation_and_matches_forward(checkpoint: Path) -> None:
    model = om.load_model(checkpoint)
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(2, 40, *IN_SHAPE[1:])).astype(np.float32) * 3 + 1
    mean = np.array([0.5, 0.25], dtype=np.float32).reshape(-1, 1, 1, 1)
    std = np.array([2.0, 4.0], dtype=np.float32).reshape(-1, 1, 1, 1)
    with torch.no_grad():
        expected = model(torch.from_numpy((raw - mean) / std)[None], "session_a")[0].numpy()
    result = om.predict(model, raw, "session_a")
    assert result.shape == (40 - model.warmup_frames, N_NEURONS["session_a"])
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)
    # Chunked processing gives the same answer (the model is causal).
    np.testing.assert_allclose(
        om.predict(model, raw, "session_a", chunk_frames=model.warmup_frames + 3),
        expected,
        rtol=1e-5,
        atol=1e-6,
    )


def test_predict_checks_the_movie_and_needs_data_info(checkpoint: Path) -> None:
    model = om.load_model(checkpoint)
    with pytest.raises(ValueError, match=r"\(2, T, 10, 8\)"):
        om.predict(model, np.zeros((3, 40, 10, 8)), "session_a")
    fresh = build("core_readout", {})
    with pytest.raises(ValueError, match="data_info"):
        om.predict(fresh, np.zeros((2, 40, 10, 8)), "session_a")
    assert om.predict(fresh, np.zeros((2, 40, 10, 8)), "session_a", data_info={}).shape[1] == 5


def test_save_needs_a_registered_model(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="create_model"):
        om.save_model(torch.nn.Linear(2, 2), tmp_path)
