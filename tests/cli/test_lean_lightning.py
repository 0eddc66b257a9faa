"""`training.lean_lightning`: a run imports neither torch._dynamo/sympy nor matplotlib before its
report, and computes exactly what it computes with them (issue 24's peak memory)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning.pytorch
import pytest
from cli_helpers import TINY_RUN, read_results, run_cli, run_dirs

HEAVY = ("sympy", "torch._dynamo.eval_frame", "matplotlib", "torch._inductor", "torchmetrics.classification")

# Run in a fresh interpreter: Lightning fits a tiny model (Adam, deterministic trainer, checkpoint,
# CSV log) without the heavy modules, then torch.compile and inductor's config work as usual.
_LIBRARY_SCRIPT = """
import json, sys

def _raises(f, *args):
    try:
        f(*args)
    except ValueError:
        return True
    return False

from pathlib import Path
from openretina_cli.training.lean_lightning import deterministic_flag_without_inductor, import_lightning

pl = import_lightning()
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

class Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(3, 1)
    def training_step(self, batch, _):
        loss = (self.layer(batch[0]) - batch[1]).pow(2).mean()
        self.log("loss", loss)
        return loss
    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.1)

out = Path(sys.argv[1])
torch.manual_seed(0)
data = torch.utils.data.TensorDataset(torch.randn(32, 3), torch.randn(32, 1))
with deterministic_flag_without_inductor():
    trainer = pl.Trainer(max_epochs=2, deterministic=True, logger=CSVLogger(out), default_root_dir=out,
                         callbacks=[ModelCheckpoint(dirpath=out / "ckpt")], enable_progress_bar=False,
                         enable_model_summary=False)
model = Tiny()
trainer.fit(model, torch.utils.data.DataLoader(data, batch_size=8))
heavy = [m for m in %(heavy)r if m in sys.modules]
deterministic = torch.are_deterministic_algorithms_enabled()

import torch._dynamo.config as dynamo_config  # a submodule, asked of the stand-in
import torch._dynamo
import torch._inductor.config as inductor_config
from lightning.fabric.wrappers import _unwrap_compiled
from lightning.pytorch.utilities.compile import from_compiled

compiled = torch.compile(torch.nn.Linear(2, 2), backend="eager")
compiled(torch.ones(1, 2))
print(json.dumps({
    "heavy_after_fit": heavy,
    "deterministic": deterministic,
    "weights": model.layer.weight.detach().tolist(),
    "checkpoints": sorted(p.name for p in (out / "ckpt").iterdir()),
    "dynamo_config_once": dynamo_config is torch._dynamo.config,
    "inductor_deterministic": inductor_config.deterministic,
    "unwraps_compiled": _unwrap_compiled(compiled)[0] is compiled._orig_mod,
    "recognises_compiled": isinstance(compiled, torch._dynamo.OptimizedModule),
    "from_compiled_refuses_plain": "ValueError" if _raises(from_compiled, model) else "no",
}))
"""


def _fresh_python(script: str, *args: str, cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-c", script, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


def test_lightning_trains_checkpoints_and_compiles_without_the_heavy_imports(tmp_path: Path) -> None:
    script = _LIBRARY_SCRIPT % {"heavy": HEAVY}
    out = json.loads(_fresh_python(script, str(tmp_path), cwd=tmp_path).splitlines()[-1])
    assert out["heavy_after_fit"] == []
    assert out["deterministic"] is True
    assert out["checkpoints"]
    assert all(name.endswith(".ckpt") for name in out["checkpoints"])
    assert out["dynamo_config_once"] is True  # the submodule was not executed twice
    assert out["inductor_deterministic"] is True  # the trainer's flag reached inductor when it came
    assert out["unwraps_compiled"] is True
    assert out["recognises_compiled"] is True
    assert out["from_compiled_refuses_plain"] == "ValueError"


def test_stand_in_isinstance_is_false_for_plain_modules() -> None:
    import torch
    from openretina_cli.training.lean_lightning import OptimizedModule

    assert not isinstance(torch.nn.Linear(1, 1), OptimizedModule)
    assert not issubclass(torch.nn.Linear, OptimizedModule)


class ModulesAtFitEnd(lightning.pytorch.Callback):
    """Writes which heavy modules a run had imported when training ended (to `$LEAN_PROBE_OUT`)."""

    def on_fit_end(
        self, trainer: lightning.pytorch.Trainer, pl_module: lightning.pytorch.LightningModule
    ) -> None:
        loaded = [name for name in HEAVY if name in sys.modules]
        Path(os.environ["LEAN_PROBE_OUT"]).write_text(json.dumps(loaded))


def _run_files(run_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file())


@pytest.mark.slow
def test_a_run_trains_without_the_heavy_imports_and_writes_the_same_outputs(
    tutorial_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command in a fresh process (lean) against the same run in this process, where Lightning was
    imported the ordinary way: the same files and the same metrics."""
    args = [
        "train",
        "--config-name",
        "hdf5_core_readout",
        f"paths.data_dir={tutorial_dir}",
        "data_io.test_names=[random_noise_2]",
        *TINY_RUN,
        "trainer.max_epochs=2",
        "+training_callbacks.lean_probe._target_=test_lean_lightning.ModulesAtFitEnd",
    ]
    probe = tmp_path / "modules.json"
    os.environ["LEAN_PROBE_OUT"] = str(probe)
    try:
        lean_logs = tmp_path / "lean"
        script = "import sys\nfrom openretina_cli.main import main\nmain(sys.argv[1:])\n"
        _fresh_python(script, *args, f"paths.log_dir={lean_logs}", cwd=tmp_path)
        assert json.loads(probe.read_text()) == []  # nothing heavy before the report

        usual_logs = tmp_path / "usual"
        assert run_cli([*args, f"paths.log_dir={usual_logs}"], capsys).code == 0
    finally:
        del os.environ["LEAN_PROBE_OUT"]
    (lean_run,) = run_dirs(lean_logs)
    (usual_run,) = run_dirs(usual_logs)
    assert _run_files(lean_run) == _run_files(usual_run)
    assert read_results(lean_run)["metrics"] == read_results(usual_run)["metrics"]
