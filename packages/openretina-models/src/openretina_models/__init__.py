"""openretina_models: plain-PyTorch retina models, honest losses and metrics, safe checkpoints.

Typical use::

    import openretina_models as om
    model = om.create_model("core_readout", in_shape=(2, 18, 16), n_neurons={"s0": 30})
    responses = model(stimulus, "s0")            # (B, C, T, H, W) -> (B, T - model.warmup_frames, N)
    om.save_model(model, "run/model", data_info=...)
    model = om.load_model("run/model")           # eval mode, weights loaded strictly
    rates = om.predict(model, raw_movie, "s0")   # (C, T, H, W) raw units -> (T_out, N)
"""

# The built-in architectures register themselves on import; this is the one place that imports them
# for that, so the registry (below them) never has to import upwards.
from openretina_models import architectures, losses, metrics
from openretina_models._version import __version__
from openretina_models.checkpoint import save_model
from openretina_models.errors import CheckpointError
from openretina_models.loading import load_model
from openretina_models.losses import get_loss
from openretina_models.metrics import CorrelationAccumulator
from openretina_models.prediction import predict, predict_sessions
from openretina_models.registry import (
    create_model,
    list_models,
    model_hyperparameters,
    model_signature,
    register_model,
)

__all__ = [
    "CheckpointError",
    "CorrelationAccumulator",
    "__version__",
    "architectures",
    "create_model",
    "get_loss",
    "list_models",
    "load_model",
    "losses",
    "metrics",
    "model_hyperparameters",
    "model_signature",
    "predict",
    "predict_sessions",
    "register_model",
    "save_model",
]
