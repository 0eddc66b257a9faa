"""In-silico experiments on a trained model: most exciting inputs (MEIs), most discriminative
stimuli, inner units, chromatic tuning and local STAs (torch only).

Typical use::

    from openretina_models import insilico
    objective = insilico.ResponseObjective(model, "session_0", targets=range(32), window=(10, 20))
    start = insilico.random_start((2, 40, 18, 16), seeds=range(32))
    result = insilico.optimise_stimuli(
        objective, model, start,
        constraints=[insilico.L2Norm(10.0), insilico.ValueRange(-3.0, 3.0)],
        stopper=insilico.Plateau(patience=20, max_iterations=500),
    )
    result.stimuli  # (32, 2, 40, 18, 16): one MEI per neuron, in normalised stimulus units

Many targets at once, in chunks, each from its own seed (what ``openretina mei`` runs, so the same
settings give the same MEIs bit for bit)::

    result = insilico.optimise_targets(
        objective, model, (2, 40, 18, 16), seeds=[0 + n for n in range(32)], batch_size=8, ...
    )
"""

from openretina_models.insilico import (
    characterisation,
    functional_types,
    indices,
    receptive_fields,
    stimuli,
)
from openretina_models.insilico.analyses import ChromaticTuning, chromatic_tuning, local_sta
from openretina_models.insilico.batched import START_STD, BatchedResult, optimise_targets, stalled
from openretina_models.insilico.constraints import (
    Constraint,
    L2Norm,
    SpatialBlur,
    TemporalSmoothing,
    ValueRange,
    apply_constraints,
)
from openretina_models.insilico.linearised import grey_receptive_fields
from openretina_models.insilico.objectives import (
    ContrastiveObjective,
    InnerUnitObjective,
    Objective,
    ResponseObjective,
    TimeWindow,
)
from openretina_models.insilico.optimisation import (
    FixedIterations,
    Jitter,
    NonFiniteError,
    OptimisationResult,
    Plateau,
    Stopper,
    optimise_stimuli,
    random_start,
)
from openretina_models.insilico.ranges import DEFAULT_RANGE, default_ranges

__all__ = [
    "DEFAULT_RANGE",
    "START_STD",
    "BatchedResult",
    "ChromaticTuning",
    "Constraint",
    "ContrastiveObjective",
    "FixedIterations",
    "InnerUnitObjective",
    "Jitter",
    "L2Norm",
    "NonFiniteError",
    "Objective",
    "OptimisationResult",
    "Plateau",
    "ResponseObjective",
    "SpatialBlur",
    "Stopper",
    "TemporalSmoothing",
    "TimeWindow",
    "ValueRange",
    "apply_constraints",
    "characterisation",
    "chromatic_tuning",
    "default_ranges",
    "functional_types",
    "grey_receptive_fields",
    "indices",
    "local_sta",
    "optimise_stimuli",
    "optimise_targets",
    "random_start",
    "receptive_fields",
    "stalled",
    "stimuli",
]
