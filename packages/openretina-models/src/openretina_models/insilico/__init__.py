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
"""

from openretina_models.insilico.analyses import ChromaticTuning, chromatic_tuning, local_sta
from openretina_models.insilico.constraints import (
    Constraint,
    L2Norm,
    SpatialBlur,
    TemporalSmoothing,
    ValueRange,
    apply_constraints,
)
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
    "chromatic_tuning",
    "default_ranges",
    "local_sta",
    "optimise_stimuli",
    "random_start",
]
