"""Batch norm's input is recomputed in the backward pass, not kept (issue 24's peak memory).

A separable layer's output feeds batch norm, which keeps it for its backward pass: one
activation-sized tensor per layer. The core keeps the temporal pass's input instead (which that
pass keeps anyway) and recomputes the output when batch norm's backward pass needs it. These tests
pin that training computes the same numbers bit for bit, that the outputs are no longer kept, and
that a caller's own saved-tensor hooks switch the recomputation off.
"""

from __future__ import annotations

import copy
import weakref

import pytest
import torch
from openretina_models.cores.convolutional import SpatioTemporalCore
from openretina_models.layers import conv as conv_module
from torch import nn

FRAMES = {"small frames (matrix product)": (6, 5), "large frames (convolution)": (24, 22)}


def _core(**options: object) -> SpatioTemporalCore:
    torch.manual_seed(0)
    return SpatioTemporalCore(
        3, hidden_channels=(4, 5), temporal_kernel_sizes=(3, 4), spatial_kernel_sizes=(3, 5), **options
    )


def _train_step(core: SpatioTemporalCore, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    out = core(x)
    (out * torch.linspace(-1.0, 1.0, out.numel()).reshape(out.shape)).sum().backward()
    return out.detach(), [p.grad.clone() for p in core.parameters()]


@pytest.mark.parametrize("frame", FRAMES.values(), ids=FRAMES.keys())
def test_recomputed_norm_inputs_give_the_same_outputs_gradients_and_statistics(
    frame: tuple[int, int],
) -> None:
    core = _core(dropout=0.0)
    kept = copy.deepcopy(core)
    kept.recompute_norm_inputs = False
    x = torch.randn(2, 3, 12, *frame)

    for _ in range(2):  # the second step also starts from updated running statistics
        out, grads = _train_step(core, x)
        out_kept, grads_kept = _train_step(kept, x)
        assert torch.equal(out, out_kept)
        assert all(torch.equal(a, b) for a, b in zip(grads, grads_kept, strict=True))
    norms = [m for m in core.modules() if isinstance(m, nn.BatchNorm3d)]
    norms_kept = [m for m in kept.modules() if isinstance(m, nn.BatchNorm3d)]
    for norm, norm_kept in zip(norms, norms_kept, strict=True):
        assert torch.equal(norm.running_mean, norm_kept.running_mean)
        assert torch.equal(norm.running_var, norm_kept.running_var)


@pytest.fixture
def layer_outputs(monkeypatch: pytest.MonkeyPatch) -> list[weakref.ref]:
    """Weak references to every separable layer's output as the core computes it."""
    outputs: list[weakref.ref] = []
    original = conv_module.SpaceTimeSeparableConv3d.forward_with_recipe

    def recording(self: conv_module.SpaceTimeSeparableConv3d, x: torch.Tensor) -> tuple:
        output, again = original(self, x)
        outputs.append(weakref.ref(output))
        return output, again

    monkeypatch.setattr(conv_module.SpaceTimeSeparableConv3d, "forward_with_recipe", recording)
    return outputs


def _alive(outputs: list[weakref.ref]) -> int:
    return sum(ref() is not None for ref in outputs)


def test_layer_outputs_are_not_kept_for_the_backward_pass(layer_outputs: list[weakref.ref]) -> None:
    core = _core()
    x = torch.randn(2, 3, 12, 6, 5)

    out = core(x)  # the graph for the backward pass is alive here
    assert len(layer_outputs) == 2
    assert _alive(layer_outputs) == 0
    out.sum().backward()

    layer_outputs.clear()
    core.recompute_norm_inputs = False
    out = core(x)
    assert _alive(layer_outputs) == 2  # batch norm keeps them
    del out


def test_a_callers_saved_tensor_hooks_see_every_tensor(layer_outputs: list[weakref.ref]) -> None:
    core = _core()
    x = torch.randn(2, 3, 12, 6, 5)
    seen: list[torch.Tensor] = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        seen.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = core(x)
    assert _alive(layer_outputs) == 2  # nothing swapped behind the caller's hooks
    assert conv_module.saved_tensor_hooks_active() is False
    out.sum().backward()


def test_no_recomputation_without_gradients_norm_or_training(layer_outputs: list[weakref.ref]) -> None:
    x = torch.randn(1, 3, 12, 6, 5)
    with torch.no_grad():
        _core()(x)
    _core(batch_norm=False)(x)  # the nonlinearity then runs in place on the layer's output
    assert len(layer_outputs) == 4  # none of these went through the recomputing path
    layer_outputs.clear()
    evaluated = _core().eval()  # gradients of inputs (MEIs, characterisation): speed first
    out = evaluated(x.requires_grad_())
    assert _alive(layer_outputs) == 2
    del out
