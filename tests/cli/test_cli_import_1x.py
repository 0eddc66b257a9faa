"""``openretina import-1x``: a 1.x checkpoint becomes a model folder every command takes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import run_cli
from openretina_cli.config import model_source
from openretina_cli.training.finetune import start_from

FIXTURES = Path(__file__).parents[1] / "models" / "fixtures" / "openretina1"
CKPT = FIXTURES / "hoefling_2layer_c2.ckpt"


def _expected_and_input() -> tuple[np.ndarray, torch.Tensor]:
    import json

    entry = json.loads((FIXTURES / "manifest.json").read_text())["hoefling_2layer_c2"]
    x = np.random.default_rng(entry["input_seed"]).standard_normal(entry["input_shape"]).astype(np.float32)
    return np.load(FIXTURES / "hoefling_2layer_c2.npz")["session_1"], torch.from_numpy(x)


def test_import_writes_a_model_folder_that_model_source_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "imported"
    result = run_cli(["import-1x", str(CKPT), str(out)], capsys)
    assert result.code == 0, result.err
    assert f"-> {out}" in result.out
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.safetensors"]
    model = model_source.load(model_source.resolve(str(out)))
    expected, x = _expected_and_input()
    with torch.no_grad():
        ours = model(x, "session_1").numpy()
    assert np.abs(ours - expected).max() <= 1e-5 * np.abs(expected).max()


def test_model_source_takes_the_ckpt_itself() -> None:
    model = model_source.load(model_source.resolve(str(CKPT)))
    assert model.n_neurons == {"session_0": 7, "session_1": 5}


class _Data:
    """What fine-tuning reads of a dataset: its frame shape, neurons per session, mean activity."""

    def __init__(self, sessions: dict[str, int]) -> None:
        self.data_info = type("Info", (), {"input_shape": [2, 16, 12]})()
        self.n_neurons = sessions

    def mean_activity(self) -> dict[str, np.ndarray]:
        return {name: np.full(n, 0.5, dtype=np.float32) for name, n in self.n_neurons.items()}


def test_imported_model_is_a_fine_tuning_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "imported"
    assert run_cli(["import-1x", str(CKPT), str(out)], capsys).code == 0
    model = start_from(out, _Data({"session_0": 7, "new": 4}))
    assert model.n_neurons == {"session_0": 7, "session_1": 5, "new": 4}
    assert model.training


@pytest.mark.parametrize("kind", ["truncated", "missing"])
def test_bad_input_exits_1_with_one_message_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    source = tmp_path / "bad.ckpt"
    if kind == "truncated":
        source.write_bytes(CKPT.read_bytes()[:5000])
    out = tmp_path / "out"
    result = run_cli(["import-1x", str(source), str(out)], capsys)
    assert result.code == 1
    assert result.err.count("error:") == 1
    assert ("truncated" if kind == "truncated" else "no such file") in result.err
    assert "Traceback" not in result.err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == (["bad.ckpt"] if kind == "truncated" else [])


@pytest.mark.slow  # a real `openretina train` run (about 15 s)
def test_training_run_fine_tunes_an_imported_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from openretina_data import write_retina_dataset
    from openretina_models import load_model
    from robust_support import run_dir, train

    imported = tmp_path / "imported"
    assert run_cli(["import-1x", str(CKPT), str(imported)], capsys).code == 0
    data = tmp_path / "data"  # one session named like the model's session_0, with its 7 neurons
    write_retina_dataset(
        data, num_sessions=1, neurons_per_session=7, num_colors=2, height=16, width=12,
        train_frames=400, num_stimuli=2, clip_length=50, test_frames=100, test_trials=2,
    )  # fmt: skip
    args = [
        f"paths.data_dir={data}",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"paths.load_model_path={imported}",
        "only_train_readout=true",
        "exp_name=finetune_1x",
        "dataloader.batch_size=4",
        "dataloader.train_chunk_size=40",
        "dataloader.clip_length=50",
        "dataloader.num_val_clips=2",
        "trainer.max_epochs=1",
        "trainer.accelerator=cpu",
        "++trainer.enable_progress_bar=false",
    ]
    train(args, cwd=tmp_path)
    before, tuned = load_model(imported), load_model(run_dir(tmp_path / "logs", "finetune_1x") / "model")
    assert tuned.n_neurons == {"session_0": 7, "session_1": 5}
    for name, tensor in before.core.state_dict().items():
        assert torch.equal(tuned.core.state_dict()[name], tensor), name  # frozen core, statistics too
    changed = [k for k, t in before.readout["session_0"].state_dict().items()
               if not torch.equal(tuned.readout["session_0"].state_dict()[k], t)]  # fmt: skip
    assert changed, "the readout of the fine-tuned session did not train"


def test_import_takes_a_published_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from openretina_models.openretina1 import published

    def fake_download(*, repo_id: str, filename: str, repo_type: str, local_dir: str) -> str:
        target = Path(local_dir) / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(CKPT, target)
        return str(target)

    monkeypatch.setenv("OPENRETINA_CACHE_DIRECTORY", str(tmp_path / "cache"))
    monkeypatch.setattr(published, "_hub_download", lambda: fake_download)
    result = run_cli(["import-1x", "maheswaranathan_2023", str(tmp_path / "out")], capsys)
    assert result.code == 0, result.err
    assert (tmp_path / "cache/model_checkpoints/2026-03-09/maheswaranathan_2023.ckpt").is_file()
    assert (tmp_path / "out" / "model.json").is_file()
