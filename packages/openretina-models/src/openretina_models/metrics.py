"""Evaluation metrics, computed honestly over whole splits.

- `CorrelationAccumulator`: per-neuron Pearson correlation over every sample of a split, from
  float64 sufficient statistics (not an average of per-batch correlations). Its state is one
  `(6, N)` tensor that can be summed across processes (`torch.distributed.all_reduce`).
- Repeated trials, in the data layout `(trials R, neurons N, time T)`: `oracle_correlation`
  (leave-one-out), `jackknife_oracle` (1.x's pooled leave-one-out oracle), `trial_correlation`
  (a prediction against single trials), `fraction_of_oracle`, `explainable_variance_fraction`
  (FEV), `feve` (fraction of explainable variance explained), and `max_correlation` /
  `normalised_correlation` (Schoppe et al. 2016's CC_max and CC_norm, from the signal power).
- Per neuron against a target `(N, T)`: `correlation`, `mse`, `poisson_loss`; `neuron_scores`
  computes every metric that applies at once (what `openretina eval` writes per neuron).

A neuron whose prediction or target is constant (e.g. silent) has no correlation: it is NaN, never
0 and never an error, and `summarise` reports how many there are.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = [
    "CorrelationAccumulator",
    "correlation",
    "explainable_variance_fraction",
    "feve",
    "fraction_of_oracle",
    "jackknife_oracle",
    "max_correlation",
    "mse",
    "neuron_scores",
    "normalised_correlation",
    "oracle_correlation",
    "poisson_loss",
    "summarise",
    "trial_correlation",
    "trial_correlations",
]

# Variance below this fraction of the mean square counts as constant: float64 round-off in the sums
# is ~1e-15 relative, so offsets up to ~1e5 standard deviations are still resolved.
_RELATIVE_VARIANCE_FLOOR = 1e-12


class CorrelationAccumulator:
    """Accumulate `update(prediction, target)` over a split, then `compute()` per-neuron correlations.

    Inputs are `(..., T, N)` (e.g. `(batch, time, neurons)`); non-finite pairs are skipped per neuron.
    For `torch.distributed.all_reduce(acc.state)` build it with `n_neurons` (and the device), so
    every process has a state even if it saw no batch of this session.
    """

    FIELDS = ("count", "sum_p", "sum_t", "sum_pp", "sum_tt", "sum_pt")

    def __init__(self, n_neurons: int | None = None, device: torch.device | str | None = None) -> None:
        self.state: torch.Tensor | None = None
        if n_neurons is not None:
            self.state = torch.zeros(len(self.FIELDS), int(n_neurons), dtype=torch.float64, device=device)

    @property
    def n_neurons(self) -> int | None:
        return None if self.state is None else int(self.state.shape[1])

    def reset(self) -> None:
        if self.state is not None:
            self.state.zero_()

    @torch.no_grad()
    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        if prediction.shape != target.shape:
            raise ValueError(
                f"Prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape."
            )
        n = prediction.shape[-1]
        p = prediction.detach().reshape(-1, n).to(torch.float64)
        t = target.detach().reshape(-1, n).to(device=p.device, dtype=torch.float64)
        if self.state is None:
            self.state = torch.zeros(len(self.FIELDS), n, dtype=torch.float64, device=p.device)
        if n != self.state.shape[1]:
            raise ValueError(f"This accumulator holds {self.state.shape[1]} neurons; got a batch with {n}.")
        valid = torch.isfinite(p) & torch.isfinite(t)
        p = torch.where(valid, p, 0.0)
        t = torch.where(valid, t, 0.0)
        update = torch.stack(
            [
                valid.sum(0).to(torch.float64),
                p.sum(0),
                t.sum(0),
                (p * p).sum(0),
                (t * t).sum(0),
                (p * t).sum(0),
            ]
        )
        self.state += update.to(self.state.device)

    def merge(self, other: CorrelationAccumulator) -> CorrelationAccumulator:
        """Add another accumulator's statistics (e.g. from another process) into this one."""
        if other.state is None:
            return self
        if self.state is None:
            self.state = other.state.clone()
        elif self.state.shape != other.state.shape:
            raise ValueError(f"Cannot merge accumulators of {self.n_neurons} and {other.n_neurons} neurons.")
        else:
            self.state += other.state.to(self.state.device)
        return self

    def compute(self) -> torch.Tensor:
        """Per-neuron correlation `(N,)` (float64); NaN where either side is constant or unseen."""
        if self.state is None:
            raise ValueError("No data: call update() at least once before compute().")
        count, sp, st, spp, stt, spt = self.state
        safe = count.clamp(min=1)
        cov = spt - sp * st / safe
        var_p = spp - sp * sp / safe
        var_t = stt - st * st / safe
        defined = (
            (count >= 2)
            & (var_p > _RELATIVE_VARIANCE_FLOOR * spp.abs())
            & (var_t > _RELATIVE_VARIANCE_FLOOR * stt.abs())
        )
        corr = cov / torch.sqrt(torch.where(defined, var_p * var_t, 1.0))
        return torch.where(defined, corr.clamp(-1.0, 1.0), torch.nan)

    def n_undefined(self) -> int:
        """How many neurons `compute()` reports as NaN."""
        return int(torch.isnan(self.compute()).sum())


def _array(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def correlation(prediction: Any, target: Any) -> np.ndarray:
    """Per-neuron correlation of `(N, T)` arrays over time; NaN for constant neurons."""
    p, t = _array(prediction), _array(target)
    if p.shape != t.shape or p.ndim != 2:
        raise ValueError(
            f"correlation needs two (neurons, time) arrays of one shape, got {p.shape} and {t.shape}."
        )
    acc = CorrelationAccumulator()
    acc.update(torch.from_numpy(p.T.copy()), torch.from_numpy(t.T.copy()))
    return acc.compute().numpy()


def _check_trials(trials: Any) -> np.ndarray:
    y = _array(trials)
    if y.ndim != 3 or y.shape[0] < 2:
        raise ValueError(
            "Repeated trials must be an array (trials, neurons, time) with at least 2 trials, "
            f"got shape {y.shape}."
        )
    return y


def oracle_correlation(trials: Any) -> np.ndarray:
    """Leave-one-out oracle per neuron: the mean over trials of corr(trial r, mean of the other trials).

    It estimates how well the best possible model could predict a single trial. `trials` is `(R, N, T)`.
    """
    y = _check_trials(trials)
    r = y.shape[0]
    others = (y.sum(axis=0, keepdims=True) - y) / (r - 1)
    per_trial = np.stack([correlation(others[i], y[i]) for i in range(r)])
    return per_trial.mean(axis=0)  # NaN if the neuron is constant in any trial


def trial_correlations(prediction: Any, trials: Any) -> np.ndarray:
    """`(R, N)`: corr(prediction `(N, T)`, trial r) for every trial r of `trials` `(R, N, T)`."""
    y = _check_trials(trials)
    p = _array(prediction)
    if p.shape != y.shape[1:]:
        raise ValueError(
            f"The prediction {p.shape} must be (neurons, time) = {y.shape[1:]} to match trials {y.shape}."
        )
    return np.stack([correlation(p, y[i]) for i in range(y.shape[0])])


def trial_correlation(prediction: Any, trials: Any) -> np.ndarray:
    """Per neuron, the mean over trials of corr(prediction `(N, T)`, trial r `(R, N, T)`).

    This single-trial correlation is what `oracle_correlation` bounds; a correlation with the trial
    mean is higher (the mean is less noisy) and can exceed the oracle.
    """
    return trial_correlations(prediction, trials).mean(axis=0)


def jackknife_oracle(trials: Any) -> np.ndarray:
    """1.x's leave-one-out oracle: one correlation per neuron between every trial and the mean of the
    other trials, pooled over all (trial, time) samples (`oracle_correlation` averages per trial)."""
    y = _check_trials(trials)
    r, n, t = y.shape
    others = (y.sum(axis=0, keepdims=True) - y) / (r - 1)
    pooled = y.transpose(1, 0, 2).reshape(n, r * t)
    return correlation(others.transpose(1, 0, 2).reshape(n, r * t), pooled)


def fraction_of_oracle(test_correlation: Any, oracle: Any) -> np.ndarray:
    """Per neuron `test_correlation / oracle`; NaN where the oracle is not positive or either is NaN.

    Pass the single-trial `trial_correlation` as `test_correlation`, so both sides correlate with
    single trials (a correlation with the trial mean gives values above 1).
    """
    c, o = _array(test_correlation), _array(oracle)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(o > 0, c / np.where(o > 0, o, 1.0), np.nan)


def _variances(trials: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per neuron `(total, noise)`: the variance of all trial responses, and the across-trial
    variance averaged over time (both ddof 1, as in Cadena et al. 2019 and 1.x)."""
    noise = trials.var(axis=0, ddof=1).mean(axis=-1)
    total = trials.transpose(1, 0, 2).reshape(trials.shape[1], -1).var(axis=1, ddof=1)
    return total, noise


def _explainable(total: np.ndarray, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`(explainable, defined)`: explainable variance, and where it is resolvably positive."""
    explainable = total - noise
    defined = explainable > _RELATIVE_VARIANCE_FLOOR * np.maximum(total, np.finfo(np.float64).tiny)
    return explainable, defined


def explainable_variance_fraction(trials: Any) -> np.ndarray:
    """FEV per neuron: explainable variance / total variance of the trials `(R, N, T)`.

    It is 1.x's `var_ratio` (without its 1e-9 offsets): near 0 for neurons whose trials share
    little, near 1 for reliable ones. NaN for neurons with no variance at all; 0 when the
    across-trial noise is as large as the total variance.
    """
    y = _check_trials(trials)
    total, noise = _variances(y)
    explainable, defined = _explainable(total, noise)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(defined, explainable / np.where(total > 0, total, 1.0), 0.0)
    return np.where(total > 0, ratio, np.nan)


def feve(prediction: Any, trials: Any) -> np.ndarray:
    """Fraction of explainable variance explained per neuron (Cadena et al. 2019).

    `FEVE = 1 - (MSE - noise) / (total variance - noise)` with `MSE` the mean squared error of the
    prediction `(N, T)` against every trial `(R, N, T)`, `noise` the across-trial variance averaged
    over time, and `total variance` the variance of all trial responses. NaN where the explainable
    variance is not positive (silent or pure-noise neurons). Unlike 1.x it is not clipped: a
    prediction worse than a constant has a negative FEVE.
    """
    y = _check_trials(trials)
    p = _array(prediction)
    if p.shape != y.shape[1:]:
        raise ValueError(
            f"The prediction {p.shape} must be (neurons, time) = {y.shape[1:]} to match trials {y.shape}; "
            "cut the trials' first model.warmup_frames frames if the model has a warmup."
        )
    total, noise = _variances(y)
    explainable, defined = _explainable(total, noise)
    mse_ = ((y - p[None]) ** 2).mean(axis=(0, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(defined, 1.0 - (mse_ - noise) / np.where(defined, explainable, 1.0), np.nan)


def _signal_power(y: np.ndarray) -> np.ndarray:
    """Per neuron the signal power of trials `(R, N, T)` (Sahani & Linden 2003): the variance over
    time of the trial-averaged response with the noise's share removed, an unbiased estimate."""
    r = y.shape[0]
    summed = y.sum(axis=0).var(axis=-1, ddof=1)
    single = y.var(axis=-1, ddof=1).sum(axis=0)
    return (summed - single) / (r * (r - 1))


def max_correlation(trials: Any) -> np.ndarray:
    """CC_max per neuron (Schoppe et al. 2016): the correlation with the trial mean that a model
    predicting the true (noise-free) response would reach, estimated from the signal power of the
    trials `(R, N, T)`. An estimate, not a bound: a model can exceed it by chance. NaN where the
    signal power is not positive."""
    y = _check_trials(trials)
    power = _signal_power(y)
    mean_variance = y.mean(axis=0).var(axis=-1, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(
            (power > 0) & (mean_variance > 0), power / np.where(mean_variance > 0, mean_variance, 1.0), np.nan
        )
    return np.sqrt(np.minimum(ratio, 1.0))


def normalised_correlation(prediction: Any, trials: Any) -> np.ndarray:
    """CC_norm per neuron (Schoppe et al. 2016): the prediction's correlation with the trial mean
    divided by `max_correlation`, i.e. cov(prediction, mean) / sqrt(var(prediction) * signal power).
    Unbiased by the number of trials; about 1 for a model as good as the noise allows (it can
    exceed 1 by chance). NaN where the signal power is not positive or the prediction is constant."""
    y = _check_trials(trials)
    p = _array(prediction)
    if p.shape != y.shape[1:]:
        raise ValueError(
            f"The prediction {p.shape} must be (neurons, time) = {y.shape[1:]} to match trials {y.shape}."
        )
    power = _signal_power(y)
    mean = y.mean(axis=0)
    covariance = ((p - p.mean(axis=-1, keepdims=True)) * (mean - mean.mean(axis=-1, keepdims=True))).sum(
        axis=-1
    ) / (p.shape[-1] - 1)
    variance = p.var(axis=-1, ddof=1)
    defined = (power > 0) & (variance > _RELATIVE_VARIANCE_FLOOR * np.maximum((p**2).mean(axis=-1), 1e-300))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(defined, covariance / np.sqrt(np.where(defined, variance * power, 1.0)), np.nan)


def _pair(prediction: Any, target: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    p, t = _array(prediction), _array(target)
    if p.shape != t.shape or p.ndim != 2:
        raise ValueError(
            f"{name} needs two (neurons, time) arrays of one shape, got {p.shape} and {t.shape}."
        )
    return p, t


def mse(prediction: Any, target: Any) -> np.ndarray:
    """Per-neuron mean squared error over time of `(N, T)` arrays (NaN samples ignored)."""
    p, t = _pair(prediction, target, "mse")
    return _row_nanmean((p - t) ** 2)


def poisson_loss(prediction: Any, target: Any, eps: float = 1e-8) -> np.ndarray:
    """Per-neuron Poisson negative log-likelihood (without the `log y!` term), mean over time:
    `mean(prediction - target * log(prediction + eps))`, as in 1.x's evaluation."""
    p, t = _pair(prediction, target, "poisson_loss")
    with np.errstate(invalid="ignore", divide="ignore"):
        return _row_nanmean(p - t * np.log(np.clip(p, 0.0, None) + eps))


def _row_nanmean(values: np.ndarray) -> np.ndarray:
    """Mean over time of each neuron's defined values; NaN (without a warning) when it has none."""
    defined = ~np.isnan(values)
    counts = defined.sum(axis=1)
    totals = np.where(defined, values, 0.0).sum(axis=1)
    return np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)


def neuron_scores(prediction: Any, target: Any, trials: Any = None) -> dict[str, np.ndarray]:
    """Every per-neuron metric that applies: `(N,)` arrays keyed by metric name.

    Always `correlation`, `mse` and `poisson_loss` of the prediction `(N, T)` against `target`
    (the trial mean when trials exist). With repeated `trials` `(R >= 2, N, T)` also
    `trial_correlation` and `trial_correlation_std` (mean and std over trials of the single-trial
    correlation), `oracle` (leave-one-out, per trial), `jackknife_oracle` (1.x's pooled version),
    `fraction_oracle` (trial_correlation / oracle), `fev`, `feve`, `max_correlation` (CC_max) and
    `normalised_correlation` (CC_norm).
    """
    scores = {
        "correlation": correlation(prediction, target),
        "mse": mse(prediction, target),
        "poisson_loss": poisson_loss(prediction, target),
    }
    if trials is None or _array(trials).shape[0] < 2:
        return scores
    per_trial = trial_correlations(prediction, trials)
    oracle = oracle_correlation(trials)
    scores["trial_correlation"] = per_trial.mean(axis=0)
    scores["trial_correlation_std"] = per_trial.std(axis=0)
    scores["oracle"] = oracle
    scores["jackknife_oracle"] = jackknife_oracle(trials)
    scores["fraction_oracle"] = fraction_of_oracle(scores["trial_correlation"], oracle)
    scores["fev"] = explainable_variance_fraction(trials)
    scores["feve"] = feve(prediction, trials)
    scores["max_correlation"] = max_correlation(trials)
    scores["normalised_correlation"] = normalised_correlation(prediction, trials)
    return scores


def summarise(values: Any) -> dict[str, float | int]:
    """`{"mean", "median", "n_defined", "n_undefined"}` of per-neuron values, ignoring NaN."""
    v = _array(values).reshape(-1)
    defined = v[~np.isnan(v)]
    return {
        "mean": float(defined.mean()) if defined.size else float("nan"),
        "median": float(np.median(defined)) if defined.size else float("nan"),
        "n_defined": int(defined.size),
        "n_undefined": int(v.size - defined.size),
    }
