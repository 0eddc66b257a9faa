"""Multi-device training: DDP gradients equal one process's, validation statistics are gathered."""

from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from openretina_cli.training.lightning_module import RetinaModule
from openretina_cli.training.scoring import SplitScorer
from openretina_data.torch_loader import TorchBatch
from openretina_models import create_model
from robust_support import retina_args, retina_dir, run_dir, train
from torch import nn
from torch.nn.parallel import DistributedDataParallel

__all__ = ["retina_dir"]  # the fixture, used by name

SESSIONS = {"a": 3, "b": 2}


def _module() -> RetinaModule:
    torch.manual_seed(0)
    model = create_model(
        "core_readout",
        in_shape=(1, 6, 6),
        n_neurons=SESSIONS,
        hidden_channels=[3],
        temporal_kernel_sizes=[3],
        spatial_kernel_sizes=[3],
        batch_norm=False,  # per-process statistics would differ from the combined batch's on CPU
        gamma_input=0.1,
        readout_gamma=0.1,
    )
    return RetinaModule(model, optimizer=partial(torch.optim.SGD, lr=0.1))


def _batches() -> dict[str, TorchBatch]:
    generator = torch.Generator().manual_seed(1)
    return {
        session: TorchBatch(
            session, torch.randn(4, 1, 8, 6, 6, generator=generator), torch.rand(4, 8, n, generator=generator)
        )
        for session, n in SESSIONS.items()
    }


def _half(batch: TorchBatch, rank: int) -> TorchBatch:
    rows = slice(2 * rank, 2 * rank + 2)
    return TorchBatch(batch.session, batch.stimulus[rows], batch.responses[rows])


class _Step(nn.Module):
    """What Lightning's DDP wrapper does: forward is the module's training step."""

    def __init__(self, module: RetinaModule) -> None:
        super().__init__()
        self.module = module

    def forward(self, batch: TorchBatch) -> torch.Tensor:
        return self.module.training_step(batch, 0)


class _Strategy:
    """The part of a Lightning strategy that SplitScorer.all_reduce uses."""

    world_size = 2
    root_device = torch.device("cpu")

    def reduce(self, tensor: torch.Tensor, reduce_op: str) -> torch.Tensor:
        assert reduce_op == "sum"
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor


def _gradients(model: nn.Module) -> dict[str, torch.Tensor]:
    return {
        name: (torch.zeros_like(p) if p.grad is None else p.grad.detach().clone())
        for name, p in model.named_parameters()
    }


def _rank(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        batches = _batches()
        module = _module()
        ddp = DistributedDataParallel(_Step(module), find_unused_parameters=True)
        # Same session on both ranks, one half of the batch each.
        ddp(_half(batches["a"], rank)).backward()
        same_session = _gradients(module.model)
        module.model.zero_grad(set_to_none=True)
        # A different session per rank: each rank leaves the other session's readout unused.
        ddp(batches["a" if rank == 0 else "b"]).backward()
        two_sessions = _gradients(module.model)
        # Validation: rank 0 saw session a and part of b, rank 1 only the rest of b.
        scorer = SplitScorer()
        _score_rank(scorer, rank)
        scorer.all_reduce(_Strategy())
        torch.save(
            {"same": same_session, "two": two_sessions, "scores": scorer.summary("val")},
            f"{out}/rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def _single_process() -> dict[str, Any]:
    batches = _batches()
    module = _module()
    module.training_step(batches["a"], 0).backward()
    same_session = _gradients(module.model)
    module.model.zero_grad(set_to_none=True)
    ((module.training_step(batches["a"], 0) + module.training_step(batches["b"], 0)) / 2).backward()
    two_sessions = _gradients(module.model)
    scorer = SplitScorer()
    for rank in (0, 1):
        _score_rank(scorer, rank)
    return {"same": same_session, "two": two_sessions, "scores": scorer.summary("val")}


def _score_rank(scorer: SplitScorer, rank: int) -> None:
    """The validation batches `rank` scores: session a and part of b on rank 0, the rest of b on 1."""
    prediction = torch.rand(2, 8, 3, generator=torch.Generator().manual_seed(10 + rank))
    if rank == 0:
        scorer.update(
            "a", prediction, prediction + torch.rand(2, 8, 3, generator=torch.Generator().manual_seed(20))
        )
    b = torch.rand(2, 8, 2, generator=torch.Generator().manual_seed(30 + rank))
    scorer.update("b", b, b.flip(0))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_two_gloo_processes_match_one_process(tmp_path: Path) -> None:
    from lightning.fabric.plugins.environments.lightning import find_free_network_port

    mp.spawn(_rank, args=(find_free_network_port(), str(tmp_path)), nprocs=2, join=True)
    expected = _single_process()
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for kind in ("same", "two"):
            for name, gradient in expected[kind].items():
                torch.testing.assert_close(
                    got[kind][name], gradient, rtol=1e-5, atol=1e-7, msg=f"{kind} {name}"
                )
        assert got["scores"].keys() == expected["scores"].keys()
        for name, value in expected["scores"].items():
            assert got["scores"][name] == pytest.approx(value, abs=1e-12), name
    assert any(g.abs().sum() > 0 for g in expected["two"].values())


def test_scorer_all_reduce_is_a_no_op_in_one_process() -> None:
    scorer = SplitScorer()
    scorer.update("a", torch.arange(6.0).reshape(1, 6, 1), torch.arange(6.0).reshape(1, 6, 1))
    before = scorer.summary("val")
    scorer.all_reduce(type("One", (), {"world_size": 1})())
    assert scorer.summary("val") == before


@pytest.mark.slow
def test_ddp_run_with_two_cpu_processes(retina_dir: Path, tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    args = retina_args(
        retina_dir, log_dir, "trainer=ddp", "trainer.devices=2", "trainer.max_epochs=1", "exp_name=ddp"
    )
    train(args, cwd=tmp_path)
    directory = run_dir(log_dir, "ddp")
    results = json.loads((directory / "results.json").read_text())
    assert results["metrics"]["test/correlation"] is not None
    assert (directory / "train_rank1.log").is_file()  # the second process ran in this run's directory
    assert not (directory / ".hydra" / "train_rank1").exists()
