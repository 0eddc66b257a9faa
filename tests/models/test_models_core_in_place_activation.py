"""The core's nonlinearity runs in place on batch norm's fresh output (issue 24's peak memory).

An in-place ELU keeps its result for the backward pass instead of its input, so training holds one
activation tensor per layer fewer (the last one too in a model, whose readout keeps it). These
tests pin that the core's outputs are the out-of-place ones bit for bit, that its gradients differ
only by float rounding (the backward pass computes ELU's slope from the result, `y + alpha`,
instead of `alpha * exp(x)`), and that it keeps less.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from openretina_models.cores.convolutional import SpatioTemporalCore
from torch import nn


def _storages_kept(compute: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, set[int]]:
    """`compute()` and the storages of the tensors autograd keeps for its backward pass."""
    kept: set[int] = set()

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        kept.add(tensor.untyped_storage().data_ptr())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        result = compute()
    return result, kept


def _out_of_place(core: SpatioTemporalCore) -> SpatioTemporalCore:
    twin = copy.deepcopy(core)
    for module in twin.modules():
        if isinstance(module, nn.ELU):
            module.inplace = False
    return twin


def test_core_nonlinearity_in_place_same_outputs_close_gradients_less_kept() -> None:
    torch.manual_seed(0)
    core = SpatioTemporalCore(
        3, hidden_channels=(4, 5), temporal_kernel_sizes=(3, 3), spatial_kernel_sizes=(3, 3)
    )
    assert all(m.inplace for m in core.modules() if isinstance(m, nn.ELU))
    twin = _out_of_place(core)
    x = torch.randn(2, 3, 10, 6, 5)

    out, kept = _storages_kept(lambda: core(x))
    expected, kept_out_of_place = _storages_kept(lambda: twin(x))
    assert torch.equal(out, expected)
    # Out of place, a layer keeps batch norm's output (for ELU) and ELU's output (for the next
    # layer's convolution); in place, both are one tensor. The last layer's output feeds no layer here.
    assert len(kept) == len(kept_out_of_place) - (len(core.convs) - 1)

    out.square().sum().backward()
    expected.square().sum().backward()
    for (name, p), q in zip(core.named_parameters(), twin.parameters(), strict=True):
        assert p.grad is not None, name
        assert q.grad is not None, name
        # float rounding: measured up to 2.2e-7 of the largest entry (not bit for bit)
        assert (p.grad - q.grad).abs().max() <= 1e-5 * q.grad.abs().max(), name
    for a, b in zip(core.buffers(), twin.buffers(), strict=True):  # batch norm's running statistics
        assert torch.equal(a, b)
