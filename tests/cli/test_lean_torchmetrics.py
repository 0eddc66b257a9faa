"""`training.lean_torchmetrics`: Lightning gets torchmetrics' metric base classes without its 270
metric modules (issue 24's peak memory), and torchmetrics works in full the moment anything asks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

_SCRIPT = """
import json, logging, sys
from openretina_cli.training import lean_torchmetrics
from openretina_cli.training.lean_lightning import import_lightning

def loaded():
    return sorted(m for m in sys.modules if m.startswith("torchmetrics."))

pl = import_lightning()
import torch
import torchmetrics
from torchmetrics.metric import Metric
lazy = lean_torchmetrics.is_lazy()
before = loaded()

class Logs(pl.LightningModule):  # logs a torchmetrics object, as a user's module may
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.mean = torchmetrics.MeanMetric()  # the first other name: torchmetrics loads in full
    def training_step(self, batch, _):
        loss = self.layer(batch[0]).pow(2).mean()
        self.mean(loss.detach())
        self.log("mean_loss", self.mean)
        return loss
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

module = Logs()
data = torch.utils.data.TensorDataset(torch.randn(16, 2))
trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, default_root_dir=sys.argv[1])
trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=4))
import torchmetrics.functional
print(json.dumps({
    "lazy_after_lightning": lazy,
    "classification_before": "torchmetrics.classification" in before,
    "metric_is_torchmetrics_own": torchmetrics.Metric is Metric and pl.LightningModule is not None,
    "lazy_after_use": lean_torchmetrics.is_lazy(),
    "modules_after": len(loaded()),
    "version": torchmetrics.__version__,
    "handlers": len(logging.getLogger("torchmetrics").handlers),
    "logged": float(trainer.callback_metrics["mean_loss"]),
    "reinstall": lean_torchmetrics.install_lazy_torchmetrics(),
}))
"""

_BROKEN_LAYOUT = """
import json, logging, sys
from openretina_cli.training import lean_torchmetrics

def fail(module):
    import torchmetrics.utilities  # partly imported, then this torchmetrics turns out different
    raise ImportError("another layout")

lean_torchmetrics._start = fail
installed = lean_torchmetrics.install_lazy_torchmetrics()
left = sorted(m for m in sys.modules if m == "torchmetrics" or m.startswith("torchmetrics."))
import torchmetrics
print(json.dumps({"installed": installed, "left": left, "has_accuracy": hasattr(torchmetrics, "Accuracy"),
                  "handlers": len(logging.getLogger("torchmetrics").handlers)}))
"""


def _fresh_python(script: str, *args: str, cwd: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", script, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_lightning_gets_the_base_classes_and_torchmetrics_loads_in_full_when_used(tmp_path: Path) -> None:
    out = _fresh_python(_SCRIPT, str(tmp_path), cwd=tmp_path)
    assert out["lazy_after_lightning"] is True
    assert out["classification_before"] is False
    assert out["metric_is_torchmetrics_own"] is True
    assert out["lazy_after_use"] is False
    assert out["modules_after"] > 200  # every metric, as a plain `import torchmetrics` gives
    assert out["version"]
    assert out["handlers"] == 1  # its own stderr handler, not twice
    assert out["logged"] >= 0.0
    assert out["reinstall"] is False  # imported already: left alone


def test_another_layout_falls_back_to_the_usual_import(tmp_path: Path) -> None:
    out = _fresh_python(_BROKEN_LAYOUT, cwd=tmp_path)
    assert out["installed"] is False
    assert out["left"] == []  # the partial import was forgotten
    assert out["has_accuracy"] is True
    assert out["handlers"] == 1
