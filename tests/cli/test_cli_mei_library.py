"""A notebook that calls `openretina_models.insilico` gets bit for bit the MEIs `openretina mei` writes."""

from __future__ import annotations

import math
from pathlib import Path

import openretina_models as om
import pytest
import torch
from cli_helpers import run_cli
from openretina_models import insilico
from safetensors.torch import load_file
from test_cli_mei import DATA_INFO, _run_dir


@pytest.mark.parametrize("batch_size", [2, 64])
def test_the_library_call_gives_the_commands_meis_bit_for_bit(
    tmp_path: Path, capsys, batch_size: int
) -> None:
    run = _run_dir(tmp_path, DATA_INFO)
    out = tmp_path / "meis"
    args = ["mei", str(run), "--iterations", "4", "--frames", "6", "--seed", "3", "--jitter", "1"]
    result = run_cli([*args, "--batch-size", str(batch_size), "--out", str(out), "--no-figures"], capsys)
    assert result.code == 0, result.err
    written = load_file(out / "meis.safetensors")

    model = om.load_model(run / "model")  # what a notebook does, with the command's defaults
    channels, height, width = (int(v) for v in model.in_shape)
    shape = (channels, 6, height, width)
    lows, highs, _ = insilico.default_ranges(model.data_info, channels)
    norm = 0.25 * math.sqrt(math.prod(shape))
    for session, count in DATA_INFO_COUNTS.items():
        mine = insilico.optimise_targets(
            insilico.ResponseObjective(model, session, range(count)),
            model,
            shape,
            seeds=[3 + neuron for neuron in range(count)],
            batch_size=batch_size,
            constraints=[insilico.ValueRange(lows, highs), insilico.L2Norm(norm)],
            stopper=insilico.FixedIterations(4),
            lr=10.0,
            jitter=insilico.Jitter(1),
        )
        assert torch.equal(mine.stimuli, written[session]), session


DATA_INFO_COUNTS = {name: info["n_neurons"] for name, info in DATA_INFO["sessions"].items()}
