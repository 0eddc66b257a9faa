"""Fine-tuning: start from a trained model, add readouts for new sessions, optionally freeze the core."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch
from openretina_cli.errors import ConfigError
from openretina_cli.training.finetune import start_from
from openretina_cli.training.lightning_module import RetinaModule
from openretina_data.torch_loader import TorchBatch
from openretina_models import create_model, load_model, save_model
from robust_support import metrics, retina_args, retina_dir, run_dir, train

__all__ = ["retina_dir"]  # the fixture, used by name

SMALL = {
    "hidden_channels": [4],
    "temporal_kernel_sizes": [5],
    "spatial_kernel_sizes": [3],
    "batch_norm": True,
}


def _trained(in_shape: tuple[int, int, int], sessions: dict[str, int]) -> torch.nn.Module:
    """A 'trained' model: random weights and batch-norm statistics far from their initial values."""
    torch.manual_seed(0)
    model = create_model("core_readout", in_shape=in_shape, n_neurons=sessions, **SMALL)
    for name, buffer in model.core.named_buffers():
        if "running_mean" in name:
            buffer.copy_(torch.randn_like(buffer))
        elif "running_var" in name:
            buffer.copy_(torch.rand_like(buffer) + 0.5)
    return model


class _Data:
    """The parts of an openretina_data.Dataset that fine-tuning reads."""

    def __init__(self, in_shape: tuple[int, int, int], sessions: dict[str, int]) -> None:
        self.data_info = type("Info", (), {"input_shape": list(in_shape)})()
        self.n_neurons = sessions

    def mean_activity(self) -> dict[str, object]:
        import numpy as np

        return {name: np.full(n, 0.5, dtype=np.float32) for name, n in self.n_neurons.items()}


def _core_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.core.state_dict().items()}


def test_start_from_adds_readouts_for_new_sessions_only(tmp_path: Path) -> None:
    save_model(_trained((1, 8, 8), {"old": 3}), tmp_path / "model")
    model = start_from(tmp_path / "model", _Data((1, 8, 8), {"old": 3, "new": 5}))
    assert model.n_neurons == {"old": 3, "new": 5}
    assert model.training
    reference = load_model(tmp_path / "model")
    for name, tensor in reference.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name


def test_start_from_refuses_other_frames_or_neurons(tmp_path: Path) -> None:
    save_model(_trained((1, 8, 8), {"old": 3}), tmp_path / "model")
    with pytest.raises(ConfigError, match=r"\(1, 8, 8\).*\(2, 8, 8\)"):
        start_from(tmp_path / "model", _Data((2, 8, 8), {"new": 5}))
    with pytest.raises(ConfigError, match="old \\(3 in the model, 4 in the data\\)"):
        start_from(tmp_path / "model", _Data((1, 8, 8), {"old": 4}))
    with pytest.raises(ConfigError, match=r"paths\.load_model_path="):
        start_from(tmp_path / "missing", _Data((1, 8, 8), {"new": 5}))


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_only_train_readout_keeps_the_core_and_its_statistics(tmp_path: Path) -> None:
    model = _trained((1, 8, 8), {"old": 3})
    model.readout.add_sessions({"new": 5})
    module = RetinaModule(model, optimizer=partial(torch.optim.Adam, lr=0.1), only_train_readout=True)
    core_before = _core_state(model)
    old_before = {k: v.clone() for k, v in model.readout["old"].state_dict().items()}
    new_before = {k: v.clone() for k, v in model.readout["new"].state_dict().items()}
    optimizer = module.configure_optimizers()
    module.train()  # what Lightning does at the start of fitting
    module.on_train_epoch_start()
    torch.manual_seed(1)
    for _ in range(3):
        batch = TorchBatch("new", torch.randn(4, 1, 12, 8, 8), torch.rand(4, 12, 5))
        loss = module.training_step(batch, 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for name, tensor in model.core.state_dict().items():
        assert torch.equal(tensor, core_before[name]), name  # weights and running statistics
    for name, tensor in model.readout["old"].state_dict().items():
        assert torch.equal(tensor, old_before[name]), name
    assert any(not torch.equal(t, new_before[k]) for k, t in model.readout["new"].state_dict().items())


@pytest.mark.slow
def test_finetune_run_trains_new_readouts_on_a_frozen_core(retina_dir: Path, tmp_path: Path) -> None:
    trained = _trained((1, 8, 8), {"old": 3})
    save_model(trained, tmp_path / "trained")
    stimulus = torch.randn(1, 1, 20, 8, 8)
    old_output = load_model(tmp_path / "trained")(stimulus, "old")

    log_dir = tmp_path / "logs"
    args = retina_args(
        retina_dir, log_dir, "trainer.max_epochs=2", "exp_name=finetune", "only_train_readout=true"
    )
    train([*args, f"paths.load_model_path={tmp_path / 'trained'}"], cwd=tmp_path)

    directory = run_dir(log_dir, "finetune")
    tuned = load_model(directory / "model")
    assert set(tuned.n_neurons) == {"old", "session_0", "session_1"}
    for name, tensor in trained.core.state_dict().items():
        assert torch.equal(tuned.core.state_dict()[name], tensor), name  # incl. batch-norm statistics
    assert torch.equal(tuned(stimulus, "old"), old_output)
    assert metrics(directory)["test/correlation"] is not None
