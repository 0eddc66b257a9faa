"""openretina 1.x checkpoints: converted models predict 1.x's numbers; reading never runs stored code.

The fixtures in `fixtures/openretina1/` are real 1.1.1 checkpoints and 1.1.1's own predictions on a seeded
input (made by `tools/openretina1_fixtures.py`), so these tests need no 1.x.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import openretina_models as om
import pytest
import torch
from openretina_models.openretina1 import convert_checkpoint, published
from openretina_models.openretina1.safe_pickle import load_checkpoint_dict, plain

FIXTURES = Path(__file__).parent / "fixtures" / "openretina1"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
NAMES = sorted(MANIFEST)


def seeded_input(name: str) -> torch.Tensor:
    entry = MANIFEST[name]
    rng = np.random.default_rng(entry["input_seed"])
    return torch.from_numpy(rng.standard_normal(entry["input_shape"]).astype(np.float32))


def assert_matches_1x(model: torch.nn.Module, name: str) -> None:
    expected = np.load(FIXTURES / f"{name}.npz")
    x = seeded_input(name)
    with torch.no_grad():
        for session in expected.files:
            ours, theirs = model(x, session).numpy(), expected[session]
            assert ours.shape == theirs.shape, f"{name}/{session}: frames or neurons differ"
            scale = np.abs(theirs).max()
            # the check can fail: the outputs vary with the input far more than the tolerance
            assert theirs.std(axis=1).mean() > 1e-2 * scale
            assert np.abs(ours - theirs).max() <= 1e-5 * scale, f"{name}/{session}"


@pytest.mark.parametrize("name", NAMES)
def test_converted_model_predicts_what_1x_predicts(name: str) -> None:
    model = om.load_model(FIXTURES / f"{name}.ckpt")
    assert not model.training
    assert_matches_1x(model, name)


def test_converted_folder_round_trips_with_data_info(tmp_path: Path) -> None:
    out = convert_checkpoint(FIXTURES / "default_c2.ckpt", tmp_path / "model")
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.safetensors"]
    model = om.load_model(out)
    assert_matches_1x(model, "default_c2")
    info = model.data_info
    assert info["input_shape"] == [2, 16, 12]
    assert info["frame_rate_hz"] == 30.0
    assert info["pixel_size_um"] == 12.5
    assert info["stimulus_normalisation"] == {"mean": [0.0], "std": [1.0]}
    session = info["sessions"]["session_0"]
    assert session["n_neurons"] == 7
    assert session["neuron_ids"] == [10, 20, 30, 40, 50, 60, 70]  # the roi_ids
    assert len(session["metadata"]["celltypes"]) == 7
    assert len(session["mean_activity"]) == 7
    assert len(session["pretrained_performance"]) == 7
    assert info["openretina1"]["pretrained_performance_metric"] == "test CorrelationLoss3d"
    assert info["openretina1"]["model_cut_frames"] == model.warmup_frames
    raw = np.random.default_rng(0).standard_normal((2, 30, 16, 12))
    assert om.predict(model, raw, "session_1").shape == (30 - model.warmup_frames, 5)


def test_converted_model_fine_tunes_on_new_sessions() -> None:
    model = om.load_model(FIXTURES / "klindt_c2.ckpt").train()
    model.readout.add_sessions({"new": 3})
    x = seeded_input("klindt_c2")
    loss = model(x, "new").mean() + model.regularisation("new")
    loss.backward()
    assert model.readout["new"].weights.grad is not None


def _torch_zip(tmp_path: Path, payload: object, name: str = "trap.ckpt") -> Path:
    """A file laid out like torch.save's zip, whose data.pkl pickles `payload` as given."""
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("trap/data.pkl", pickle.dumps(payload, protocol=2))
        archive.writestr("trap/version", "3\n")
    return path


class _Trap:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _WriteTrap(_Trap):
    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('x')",))


@pytest.mark.parametrize("trap", [_Trap, _WriteTrap])
def test_booby_trapped_checkpoint_never_runs_and_is_refused(tmp_path: Path, trap: type) -> None:
    marker = tmp_path / "pwned"
    path = _torch_zip(tmp_path, {"state_dict": {}, "hyper_parameters": {"core": trap(marker)}})
    with pytest.raises(om.CheckpointError, match=r"refused to read `(posix\.system|builtins\.exec)`"):
        om.load_model(path)
    with pytest.raises(om.CheckpointError):
        convert_checkpoint(path, tmp_path / "out")
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_trap_saved_by_torch_itself_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "torch_trap.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "hyper_parameters": {"loss": _Trap(marker)}}, path)
    with pytest.raises(om.CheckpointError, match=r"posix\.system"):
        om.load_model(path)
    assert not marker.exists()


def _rewritten(tmp_path: Path, edit, name: str = "default_c2") -> Path:
    """Fixture `name` with its hyper-parameters and state dict as plain data, changed by `edit`."""
    content = load_checkpoint_dict(FIXTURES / f"{name}.ckpt")
    hyper, state = plain(content["hyper_parameters"]), dict(content["state_dict"])
    edit(hyper, state)
    path = tmp_path / "edited.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": hyper}, path)
    return path


def test_rewritten_plain_checkpoint_still_matches(tmp_path: Path) -> None:
    path = _rewritten(tmp_path, lambda hyper, state: None)
    assert_matches_1x(om.load_model(path), "default_c2")


def test_legacy_readout_bias_name_is_renamed_as_1x_does(tmp_path: Path) -> None:
    def edit(hyper: dict, state: dict) -> None:
        del hyper["core"], hyper["readout"]  # the pickled modules; the flat arguments describe the model
        for key in [k for k in state if k.startswith("readout.") and k.endswith(".bias")]:
            state[key.removesuffix(".bias") + ".bias_param"] = state.pop(key)

    path = _rewritten(tmp_path, edit, "example_core_readout_c2")
    assert_matches_1x(om.load_model(path), "example_core_readout_c2")


def test_unknown_core_names_class_and_what_is_supported(tmp_path: Path) -> None:
    def edit(hyper: dict, state: dict) -> None:
        hyper["core"]["_target_"] = "openretina.modules.core.gru_core.ConvGRUCore"

    with pytest.raises(om.CheckpointError, match=r"ConvGRUCore.*supported: .*SimpleCoreWrapper"):
        om.load_model(_rewritten(tmp_path, edit))


def test_unknown_readout_names_class_and_what_is_supported(tmp_path: Path) -> None:
    def edit(hyper: dict, state: dict) -> None:
        hyper["readout"]["_target_"] = "openretina.modules.readout.multi_readout.MultiSpatialContrastReadout"

    with pytest.raises(om.CheckpointError, match=r"MultiSpatialContrastReadout.*MultiGaussianMaskReadout"):
        om.load_model(_rewritten(tmp_path, edit))


def test_missing_state_key_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    def edit(hyper: dict, state: dict) -> None:
        del state["core.features.layer1.norm.running_var"]

    path = _rewritten(tmp_path, edit)
    with pytest.raises(om.CheckpointError, match=r"misses 'core\.features\.layer1\.norm\.running_var'"):
        convert_checkpoint(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["edited.ckpt"]  # no staging folder left


def test_truncated_and_foreign_files_get_one_clear_message(tmp_path: Path) -> None:
    data = (FIXTURES / "default_c2.ckpt").read_bytes()
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(om.CheckpointError, match="truncated"):
        om.load_model(truncated)
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint")
    with pytest.raises(om.CheckpointError, match="not a PyTorch/Lightning checkpoint"):
        om.load_model(text)
    pickled = tmp_path / "plain.ckpt"
    pickled.write_bytes(pickle.dumps({"state_dict": {}}))
    with pytest.raises(om.CheckpointError, match="not a PyTorch/Lightning checkpoint"):
        om.load_model(pickled)
    not_lightning = tmp_path / "weights.ckpt"
    torch.save({"w": torch.zeros(3)}, not_lightning)
    with pytest.raises(om.CheckpointError, match="not a Lightning checkpoint"):
        om.load_model(not_lightning)


def test_convert_refuses_a_non_empty_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        convert_checkpoint(FIXTURES / "default_c1.ckpt", out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


class _FakeHub:
    """`hf_hub_download` stand-in: copies a fixture to where the hub would put the file."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[str] = []
        self.fail = fail

    def __call__(self, *, repo_id: str, filename: str, repo_type: str, local_dir: str) -> str:
        self.calls.append(filename)
        assert (repo_id, repo_type) == ("open-retina/open-retina", "dataset")
        if self.fail:
            raise OSError("network is unreachable")
        target = Path(local_dir) / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FIXTURES / "hoefling_2layer_c2.ckpt", target)
        return str(target)


def test_published_name_downloads_once_converts_once_then_works_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENRETINA_CACHE_DIRECTORY", str(tmp_path))
    hub = _FakeHub()
    monkeypatch.setattr(published, "_hub_download", lambda: hub)
    model = om.load_model("hoefling_2024_high_res")
    assert hub.calls == ["model_checkpoints/2026-03-09/hoefling_2024_cnn_high_res.ckpt"]
    assert_matches_1x(model, "hoefling_2layer_c2")
    converted = tmp_path / "model_checkpoints/2026-03-09/hoefling_2024_cnn_high_res.openretina"
    assert (converted / "model.json").is_file()
    hub.fail = True  # offline from now on
    assert_matches_1x(om.load_model("hoefling_2024_high_res"), "hoefling_2layer_c2")
    assert len(hub.calls) == 1


def test_published_name_offline_says_where_to_put_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENRETINA_CACHE_DIRECTORY", str(tmp_path))
    monkeypatch.setattr(published, "_hub_download", lambda: _FakeHub(fail=True))
    expected = tmp_path / "model_checkpoints/2026-03-09/sridhar_2025.ckpt"
    with pytest.raises(om.CheckpointError, match=f"put it at {expected}"):
        om.load_model("sridhar_2025")
    assert not any(tmp_path.rglob("*.openretina"))


def test_published_name_without_the_hub_extra_names_the_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENRETINA_CACHE_DIRECTORY", str(tmp_path))
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(ImportError, match=r'pip install "openretina-models\[hub\]"'):
        om.load_model("goldin_2022_mouse")


@pytest.mark.slow  # a fresh interpreter: about 5 s
def test_reading_never_imports_lightning_hydra_or_omegaconf(tmp_path: Path) -> None:
    import subprocess

    code = (
        "import sys, openretina_models as om\n"
        f"om.load_model({str(FIXTURES / 'default_c2.ckpt')!r})\n"
        "bad = [m for m in ('lightning', 'hydra', 'omegaconf', 'openretina') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


def test_safe_reader_keeps_omegaconf_values_as_plain_data() -> None:
    content = load_checkpoint_dict(FIXTURES / "default_c2.ckpt")
    hyper = plain(content["hyper_parameters"])
    assert hyper["core"]["_target_"] == "openretina.modules.core.base_core.SimpleCoreWrapper"
    assert hyper["optimizer"]["lr"] == "${model.learning_rate}"  # interpolations stay unresolved text
    assert isinstance(hyper["readout"]["in_shape"], list)


@pytest.mark.parametrize("conv_type", ["separable", "full"])
def test_temporal_padding_even_same_padding_and_cut_set_the_output_length(conv_type: str) -> None:
    model = om.create_model(
        "core_readout",
        in_shape=(1, 9, 8),
        n_neurons={"s": 2},
        hidden_channels=[2, 2],
        temporal_kernel_sizes=[5, 4],
        spatial_kernel_sizes=[3, 4],
        conv_type=conv_type,
        temporal_padding=[0, "same"],
        cut_first_n_frames=2,
    ).eval()
    assert model.warmup_frames == 4 + 0 + 2
    assert model.core.output_shape(9, 8) == (2, 9, 8)  # even "same" keeps the size
    assert model(torch.randn(1, 1, 20, 9, 8), "s").shape == (1, 20 - 6, 2)
    with pytest.raises(ValueError, match="pads more than a kernel"):
        om.create_model("core_readout", in_shape=(1, 9, 8), n_neurons={"s": 2}, temporal_padding=8)


def test_predict_runs_a_model_that_sees_ahead_in_one_pass() -> None:
    model = om.load_model(FIXTURES / "default_c1.ckpt")  # hidden layers pad time ("same")
    movie = np.random.default_rng(1).standard_normal((1, 90, 16, 12)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(movie)[None], "session_0")[0].numpy()
    chunked = om.predict_sessions(model, movie, ["session_0"], chunk_frames=model.warmup_frames + 10)
    np.testing.assert_allclose(chunked["session_0"], expected, rtol=0, atol=1e-6)


def test_gaussian_mask_1x_readout_trains_from_scratch() -> None:
    model = om.create_model(
        "core_readout",
        in_shape=(2, 10, 14),
        n_neurons={"s": 4},
        readout="gaussian_mask_1x",
        readout_options={"variance_scale": 4.0, "learn_scale": False},
        readout_gamma=0.1,
    )
    readout = model.readout["s"]
    masks = readout.masks()
    torch.testing.assert_close(masks.sum(dim=(1, 2)), torch.ones(4))
    assert "scale" not in dict(readout.named_parameters())  # learn_scale=False keeps it fixed
    loss = model(torch.randn(2, 2, 20, 10, 14), "s").mean() + model.regularisation("s")
    loss.backward()
    for name in ("mask_mean", "mask_log_var", "weights", "bias"):
        assert getattr(readout, name).grad is not None, name
