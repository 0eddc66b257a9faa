"""Functional types: a Gaussian mixture on response features, the number of types chosen by BIC.

This is the standard way retina labs sort cells into functional types (Baden et al. 2016):
features from the chirp and moving-bar responses, reduced by PCA, clustered by a Gaussian
mixture whose number of components minimises the Bayesian information criterion. Written in
numpy (EM with diagonal covariances, which few neurons can still estimate, a variance floor and
several seeded starts) so an inference install has it; with labelled cells,
`adjusted_rand_index` and `confusion_table` say how well the types agree with the labels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "FunctionalTypes",
    "adjusted_rand_index",
    "confusion_table",
    "functional_types",
    "pca_features",
]


@dataclass
class FunctionalTypes:
    labels: np.ndarray  # (N,) type per neuron, 0..K-1, sorted by type size (0 = largest)
    n_types: int
    bic: dict[int, float]  # BIC per number of types tried
    features: np.ndarray  # (N, F) the PCA features clustered


def pca_features(features: np.ndarray, components: int) -> np.ndarray:
    """The first `components` principal component scores of `features` `(N, F)` (centred)."""
    x = np.asarray(features, dtype=np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    k = max(1, min(components, int((s > 1e-9 * max(s.max(initial=0.0), 1e-300)).sum())))
    return u[:, :k] * s[:k]


# The starts of one mixture are fitted together, in groups whose largest temporary array
# (starts, neurons, components, features) holds at most this many numbers.
GROUP_ELEMENTS = 1 << 22


def _first_means(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """A k-means++-style start: the first means spread over the data `(K, D)`."""
    n = x.shape[0]
    means = [x[rng.integers(n)]]
    dist = np.full(n, np.inf)  # squared distance to the nearest mean so far, kept from step to step
    for _ in range(1, k):
        dist = np.minimum(dist, ((x - means[-1]) ** 2).sum(axis=1))
        total = dist.sum()
        p = dist / total if total > 0 else None
        means.append(x[rng.choice(n, p=p)])
    return np.array(means)


def _log_joint(x: np.ndarray, weights: np.ndarray, mu: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """log(weight) + log N(x | mean, diag(cov)) of every neuron under every component of every
    start: `(S, N, K)` from weights `(S, K)`, means and variances `(S, K, D)`."""
    d = x.shape[1]
    squared = (((x[None, :, None, :] - mu[:, None]) ** 2) / cov[:, None]).sum(axis=3)
    log_det = np.log(cov).sum(axis=2)[:, None]
    return np.log(weights)[:, None] + -0.5 * (squared + log_det + d * math.log(2 * math.pi))


def _fit_gmms(
    x: np.ndarray, k: int, rngs: list[np.random.Generator], iterations: int, ridge: float
) -> tuple[np.ndarray, np.ndarray]:
    """EM from one start per generator, all starts at once: (log-likelihood `(S,)`, labels `(S, N)`).
    Each start stops when its likelihood stops rising, and its result is the one it would get alone
    (every number is computed in the same order; a Python loop per start and per component cost
    most of the command's clustering time)."""
    n = x.shape[0]
    mu = np.stack([_first_means(x, k, rng) for rng in rngs])
    cov = np.repeat((x.var(axis=0) + ridge)[None, None], len(rngs) * k, axis=0).reshape(mu.shape)
    weights = np.full((len(rngs), k), 1.0 / k)
    log_likelihood = np.full(len(rngs), -np.inf)
    labels = np.zeros((len(rngs), n), dtype=np.int64)
    running = np.arange(len(rngs))
    for _ in range(iterations):
        log_p = _log_joint(x, weights[running], mu[running], cov[running])
        top = log_p.max(axis=2, keepdims=True)
        log_norm = top[..., 0] + np.log(np.exp(log_p - top).sum(axis=2))
        resp = np.exp(log_p - log_norm[..., None])
        new = log_norm.sum(axis=1)
        counts = resp.sum(axis=1) + 1e-10
        weights[running] = counts / n
        means = np.matmul(resp.transpose(0, 2, 1), x) / counts[..., None]
        mu[running] = means
        spread = (resp[..., None] * (x[None, :, None, :] - means[:, None]) ** 2).sum(axis=1)
        cov[running] = spread / counts[..., None] + ridge
        converged = new - log_likelihood[running] < 1e-6 * np.abs(new)
        log_likelihood[running] = new
        labels[running] = resp.argmax(axis=2)
        running = running[~converged]
        if running.size == 0:
            break
    return log_likelihood, labels


def functional_types(
    features: np.ndarray,
    *,
    n_types: int | None = None,
    max_types: int = 10,
    components: int = 10,
    starts: int = 20,
    seed: int = 0,
    iterations: int = 200,
    ridge: float = 0.03,
) -> FunctionalTypes:
    """Cluster neurons on `features` `(N, F)` (each column comparable in scale: the caller normalises).
    The features are reduced to `components` PCA scores; the mixture is fitted with `n_types` components,
    or with 1..`max_types` and the number of lowest BIC kept. Each fit keeps the best of `starts` seeded
    starts, so the result is the same for the same input. The PCA scores are scaled to unit overall
    std and every variance is floored at `ridge`: without a floor, a component that shrinks onto two
    or three near-identical neurons wins the likelihood (of 32 simulated cells of 6 known types, the
    best of 20 starts then found the types at ARI 0.5-0.95 depending on the seed; with 0.03, 0.86-0.95)."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"features must be (neurons, features), got {x.shape}.")
    n = x.shape[0]
    z = pca_features(x, min(components, max(n - 1, 1)))
    z = z / max(float(z.std()), 1e-12)
    d = z.shape[1]
    candidates = [n_types] if n_types is not None else list(range(1, max(1, min(max_types, n // 2)) + 1))
    if n_types is not None and not 1 <= n_types <= n:
        raise ValueError(f"n_types={n_types} must lie between 1 and the number of neurons ({n}).")
    rng = np.random.default_rng(seed)
    best: dict[int, tuple[float, np.ndarray]] = {}
    for k in candidates:
        rngs = [np.random.default_rng(rng.integers(1 << 31)) for _ in range(starts)]
        group = max(1, GROUP_ELEMENTS // (n * k * d))
        fits = [_fit_gmms(z, k, rngs[i : i + group], iterations, ridge) for i in range(0, starts, group)]
        likelihoods = np.concatenate([fit[0] for fit in fits])
        labels_per_start = np.concatenate([fit[1] for fit in fits])
        first_best = max(range(starts), key=lambda i: likelihoods[i])
        best[k] = (float(likelihoods[first_best]), labels_per_start[first_best])
    parameters = {k: (k - 1) + 2 * k * d for k in candidates}
    bic = {k: float(-2 * best[k][0] + parameters[k] * math.log(n)) for k in candidates}
    chosen = min(bic, key=bic.__getitem__)
    raw = best[chosen][1]
    order = sorted(set(raw.tolist()), key=lambda label: (-(raw == label).sum(), label))
    relabel = {old: new for new, old in enumerate(order)}
    labels = np.array([relabel[v] for v in raw.tolist()], dtype=np.int64)
    return FunctionalTypes(labels, len(order), bic, z)


def confusion_table(
    truth: Sequence[Any], predicted: Sequence[Any]
) -> tuple[list[Any], list[Any], np.ndarray]:
    """Rows: the distinct `truth` labels; columns: the distinct `predicted`; counts of neurons."""
    rows = sorted(set(truth), key=str)
    cols = sorted(set(predicted), key=str)
    table = np.zeros((len(rows), len(cols)), dtype=np.int64)
    for a, b in zip(truth, predicted, strict=True):
        table[rows.index(a), cols.index(b)] += 1
    return rows, cols, table


def adjusted_rand_index(truth: Sequence[Any], predicted: Sequence[Any]) -> float:
    """Agreement of two labellings corrected for chance: 1 identical partitions, about 0 random."""
    _, _, table = confusion_table(list(truth), list(predicted))
    n = int(table.sum())
    if n < 2:
        return 1.0

    def pairs(values: np.ndarray) -> float:
        return float((values * (values - 1) / 2).sum())

    index = pairs(table)
    a, b = pairs(table.sum(axis=1)), pairs(table.sum(axis=0))
    expected = a * b / (n * (n - 1) / 2)
    maximum = (a + b) / 2
    if maximum == expected:
        return 1.0
    return (index - expected) / (maximum - expected)
