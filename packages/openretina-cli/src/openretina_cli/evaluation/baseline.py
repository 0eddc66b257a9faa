"""A linear-nonlinear (LN) baseline fitted beside every evaluated model.

Whether a network beats a linear filter fitted on the same frames is the first sanity check a
modeller makes by hand; every evaluation makes it here, in seconds, and scores the baseline with
the model's own metric code on the model's own frames.

The method, in order:

1. Each frame is averaged down to at most 8 x 8 pixels per channel (fewer when there are many
   channels), so the filter has few enough weights to fit from a short recording.
2. The history covers the model's temporal reach (its warm-up + 1 frames), averaged into at most
   six equal bins of lags, so the baseline predicts exactly the frames the model predicts.
3. A ridge regression per neuron on standardised features, from streamed sufficient statistics
   (X^T X, X^T y) over the run's *training* frames only: validation clips and test movies are
   never read while fitting. Each neuron's ridge strength is chosen by cross-validation over
   interleaved groups of training clips.
4. A per-neuron output nonlinearity ``c + s * softplus(a * z + b)`` fitted by least squares on the
   training frames (kept only where it fits them better than the linear prediction).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from openretina_models import metrics
from openretina_models.threads import one_thread

from openretina_cli.evaluation.per_neuron import TEST, Evaluation, SessionResult, nanmean

PREFIX = "baseline_"
# Metrics of `metrics.neuron_scores` the baseline reports beside the model's (others, such as the
# oracle, describe the data and would only repeat the model's columns).
SCORED = ("correlation", "trial_correlation", "fraction_oracle", "feve", "normalised_correlation")
MAX_POOLED_SIDE = 8
MAX_LAG_BINS = 6
MAX_FEATURES = 432
CV_FOLDS = 3
RIDGE_GRID = np.logspace(-3.0, 3.0, 13)  # times the number of training frames (standardised features)
BLOCK_FRAMES = 2048
NONLINEARITY_FRAMES = 20_000
NONLINEARITY_BINS = 40
KRON_ENTRIES = 1 << 16  # pool_movie: the largest pooling matrix used as one product


@dataclass(frozen=True)
class Design:
    """How frames become features: pooled frame shape and lag bins (first, last lag; inclusive)."""

    channels: int
    pooled: tuple[int, int]
    bins: tuple[tuple[int, int], ...]

    @property
    def lags(self) -> int:
        return self.bins[-1][1] + 1

    @property
    def pixels(self) -> int:
        return self.channels * self.pooled[0] * self.pooled[1]

    @property
    def n_features(self) -> int:
        return self.pixels * len(self.bins)

    def describe(self) -> str:
        h, w = self.pooled
        return (
            f"ridge-regularised linear filter on frames averaged to {h}x{w} px ({self.channels} channel"
            f"{'s' if self.channels != 1 else ''}), {self.lags} frame{'s' if self.lags != 1 else ''} of "
            f"history in {len(self.bins)} bin{'s' if len(self.bins) != 1 else ''}, ridge strength per neuron "
            f"by {CV_FOLDS}-fold cross-validation on training clips, softplus output nonlinearity"
        )


def choose_design(frame_shape: Sequence[int], warmup_frames: int) -> Design:
    """Pool to at most 8 x 8 and bin the model's reach, keeping the weights under MAX_FEATURES."""
    channels, height, width = (int(v) for v in frame_shape)
    lags = max(1, int(warmup_frames) + 1)
    n_bins = min(lags, MAX_LAG_BINS)
    edges = np.round(np.linspace(0, lags, n_bins + 1)).astype(int)
    bins = tuple((int(a), int(b) - 1) for a, b in itertools.pairwise(edges.tolist()) if b > a)
    side = MAX_POOLED_SIDE
    while side > 1 and channels * min(height, side) * min(width, side) * len(bins) > MAX_FEATURES:
        side -= 1
    return Design(channels, (min(height, side), min(width, side)), bins)


@dataclass
class GroupFit:
    """The fitted baseline of the sessions that share one training movie and split."""

    sessions: dict[str, slice]  # session -> its neurons' columns
    weights: np.ndarray  # (D, N) on raw pooled features
    intercept: np.ndarray  # (N,)
    ridge: np.ndarray  # (N,) chosen ridge strength / training frames
    nonlinearity: np.ndarray  # (4, N): a, b, s, c of c + s * softplus(a * (z - m) / sd + b)
    z_centre: np.ndarray  # (2, N): m, sd of the linear prediction on the training frames
    use_nonlinearity: np.ndarray  # (N,) bool
    training_frames: int


@dataclass
class Baseline:
    design: Design
    groups: list[GroupFit]
    fit_s: float
    score_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    pooled: list[tuple[Any, np.ndarray]] = field(default_factory=list)  # movie, its `pool_movie`

    def pooled_of(self, movie: Any) -> np.ndarray:
        """`pool_movie` of ``movie`` at this design's size, pooled once per distinct movie (the
        training movies while fitting, again when scoring the validation clips)."""
        for seen, pooled in self.pooled:
            if seen.shows_same_frames_as(movie):
                return pooled
        pooled = pool_movie(movie, self.design.pooled)
        self.pooled.append((movie, pooled))
        return pooled

    def group_of(self, session: str) -> tuple[GroupFit, slice] | None:
        for group in self.groups:
            if session in group.sessions:
                return group, group.sessions[session]
        return None

    def predict(self, session: str, pooled: np.ndarray, targets: Sequence[tuple[int, int]]) -> np.ndarray:
        """(N, T') predictions of ``session`` for the target frame ranges [t0, t1) of a pooled movie."""
        found = self.group_of(session)
        if found is None:
            raise KeyError(f"no baseline was fitted for session {session}")
        group, columns = found
        parts, pending = (
            [],
            [],
        )  # short ranges (validation clips) are predicted a few thousand frames at a time

        def flush() -> None:
            if pending:
                x = np.concatenate(pending)
                pending.clear()
                parts.append(_output(group, _mm(x, group.weights) + group.intercept)[:, columns])

        for t0, t1 in targets:
            for start in range(t0, t1, BLOCK_FRAMES):
                pending.append(
                    lagged_features(pooled, start, min(start + BLOCK_FRAMES, t1), self.design.bins)
                )
                if sum(len(x) for x in pending) >= BLOCK_FRAMES:
                    flush()
        flush()
        if not parts:
            return np.zeros((columns.stop - columns.start, 0))
        return np.concatenate(parts).T


def pool_movie(movie: Any, pooled: tuple[int, int], chunk_frames: int = BLOCK_FRAMES) -> np.ndarray:
    """(T, C*h*w) float32: every frame of ``movie`` area-averaged to ``pooled`` (h, w)."""
    import torch

    channels, height, width = movie.frame_shape
    rows, cols = _averaging_matrix(height, pooled[0]), _averaging_matrix(width, pooled[1])
    cells = pooled[0] * pooled[1]
    # Small frames: one product per chunk with the (H*W, h*w) matrix of both averages (twice as
    # fast as two passes there); large frames: the two averages in turn (far fewer operations).
    whole = torch.from_numpy(np.kron(rows, cols).T.copy()) if height * width * cells <= KRON_ENTRIES else None
    rows_t, cols_t = torch.from_numpy(rows), torch.from_numpy(cols)
    n = len(movie)
    out = np.empty((n, channels * cells), dtype=np.float32)
    for start in range(0, n, chunk_frames):
        stop = min(start + chunk_frames, n)
        block = torch.from_numpy(movie.read(np.arange(start, stop)[None])[0])  # (C, L, H, W)
        if whole is not None:
            pooled_block = (block.reshape(channels, stop - start, height * width) @ whole).transpose(0, 1)
        else:
            pooled_block = torch.einsum("ih,clhw,jw->lcij", rows_t, block, cols_t)
        out[start:stop] = pooled_block.reshape(stop - start, -1).numpy()
    return out


def _averaging_matrix(size: int, pooled: int) -> np.ndarray:
    """(pooled, size): row i averages the pixels of the i-th of ``pooled`` near-equal windows
    (the windows of adaptive average pooling, which may overlap by one pixel)."""
    matrix = np.zeros((pooled, size), dtype=np.float32)
    for i in range(pooled):
        first, last = (i * size) // pooled, -((-(i + 1) * size) // pooled)
        matrix[i, first:last] = 1.0 / (last - first)
    return matrix


def lagged_features(pooled: np.ndarray, t0: int, t1: int, bins: Sequence[tuple[int, int]]) -> np.ndarray:
    """(t1 - t0, D) float64: for each target frame t, the mean pooled frame over each lag bin."""
    reach = bins[-1][1]
    if t0 < reach:
        raise ValueError(f"target frame {t0} has fewer than {reach} frames of history")
    n, pixels = t1 - t0, pooled.shape[1]
    sums = np.empty((n + reach + 1, pixels))
    sums[0] = 0.0
    np.cumsum(pooled[t0 - reach : t1], axis=0, dtype=np.float64, out=sums[1:])
    # sums[i] is the sum of frames t0 - reach .. t0 - reach + i - 1, so the frames t-hi .. t-lo of
    # target t = t0 + r are sums[r + reach - lo + 1] - sums[r + reach - hi]: two shifted slices
    out = np.empty((n, pixels * len(bins)))
    for i, (lo, hi) in enumerate(bins):
        part = out[:, i * pixels : (i + 1) * pixels]
        np.subtract(sums[reach - lo + 1 : reach - lo + 1 + n], sums[reach - hi : reach - hi + n], out=part)
        np.divide(part, hi - lo + 1, out=part)
    return out


def fit_baseline(
    dataset: Any, splits: Any, warmup_frames: int, sessions: Sequence[str] | None = None
) -> Baseline:
    """Fit the baseline of every session (or those named) on its training frames only.

    Sessions shown the same training movie with the same split share one set of statistics.
    """
    started = time.perf_counter()
    frame_shape = next(iter(dataset.sessions.values())).train_movie.frame_shape
    design = choose_design(frame_shape, warmup_frames)
    names = sorted(dataset.sessions if sessions is None else sessions)
    groups: list[tuple[Any, Any, list[str]]] = []
    for name in names:
        session, split = dataset.sessions[name], splits.sessions[name]
        for movie, group_split, members in groups:
            if movie.shows_same_frames_as(session.train_movie) and np.array_equal(
                group_split.train_runs, split.train_runs
            ):
                members.append(name)
                break
        else:
            groups.append((session.train_movie, split, [name]))
    baseline = Baseline(design, [], 0.0)
    for movie, split, members in groups:
        pooled = baseline.pooled_of(movie)
        responses = [dataset.sessions[name].train_responses for name in members]
        fit = _fit_group(design, pooled, responses, split, members)
        if fit is None:
            baseline.notes.append(
                f"baseline: session(s) {', '.join(members)} have no training frame with {design.lags} frames "
                "of history inside a training run; no baseline for them"
            )
            continue
        baseline.groups.append(fit)
    baseline.fit_s = time.perf_counter() - started
    return baseline


def _target_ranges(split: Any, lags: int) -> list[tuple[int, int]]:
    """[t0, t1) target frames whose whole history lies inside one training run."""
    return [(int(a) + lags - 1, int(e)) for a, e in split.train_runs.tolist() if int(e) - int(a) >= lags]


def _fit_group(
    design: Design, pooled: np.ndarray, responses: list[np.ndarray], split: Any, members: list[str]
) -> GroupFit | None:
    ranges = _target_ranges(split, design.lags)
    d = design.n_features
    n_neurons = sum(r.shape[0] for r in responses)
    k = CV_FOLDS
    count = np.zeros(k)
    sx, sy = np.zeros((k, d)), np.zeros((k, n_neurons))
    sxx, sxy, syy = np.zeros((k, d, d)), np.zeros((k, d, n_neurons)), np.zeros((k, n_neurons))
    clip = max(1, int(split.clip_length))
    # Training runs are short (a clip or a few), so their frames are gathered per fold, features
    # and responses side by side, and X^T [X Y] taken in a few large products.
    pending: list[list[np.ndarray]] = [[] for _ in range(k)]
    pending_rows = 0

    def flush() -> None:
        for fold in range(k):
            if not pending[fold]:
                continue
            xy = np.concatenate(pending[fold])
            pending[fold].clear()
            xf, yf = xy[:, :d], xy[:, d:]
            count[fold] += len(xy)
            sx[fold] += xf.sum(0)
            sy[fold] += yf.sum(0)
            products = _mm(xf.T, xy)
            sxx[fold] += products[:, :d]
            sxy[fold] += products[:, d:]
            syy[fold] += (yf * yf).sum(0)

    for t0, t1 in ranges:
        for start in range(t0, t1, BLOCK_FRAMES):
            stop = min(start + BLOCK_FRAMES, t1)
            x = lagged_features(pooled, start, stop, design.bins)
            y = np.concatenate([np.asarray(r[:, start:stop], dtype=np.float64) for r in responses]).T
            keep = np.isfinite(y).all(axis=1)
            xy = np.concatenate([x, y], axis=1)
            folds = (np.arange(start, stop) // clip) % k
            for fold in range(k):
                rows = keep & (folds == fold)
                if rows.any():
                    pending[fold].append(xy[rows])
                    pending_rows += int(rows.sum())
            if pending_rows >= BLOCK_FRAMES:
                flush()
                pending_rows = 0
    flush()
    n = count.sum()
    if n < 2:
        return None
    mu, mu_y = sx.sum(0) / n, sy.sum(0) / n
    # Per fold, centred on the mean of all training frames.
    cxx = sxx - sx[:, :, None] * mu[None, None, :] - mu[None, :, None] * sx[:, None, :]
    cxx += count[:, None, None] * np.outer(mu, mu)[None]
    cxy = sxy - sx[:, :, None] * mu_y[None, None, :] - mu[None, :, None] * sy[:, None, :]
    cxy += count[:, None, None] * np.outer(mu, mu_y)[None]
    cyy = syy - 2 * mu_y[None] * sy + count[:, None] * mu_y[None] ** 2
    sd = np.sqrt(np.maximum(np.diagonal(cxx.sum(0)), 0.0) / n)
    sd[sd < 1e-8 * max(float(sd.max(initial=0.0)), 1e-30)] = np.inf  # constant features get weight 0
    cxx /= np.outer(sd, sd)[None]
    cxy /= sd[None, :, None]
    ridge = _cross_validated_ridge(cxx, cxy, cyy, count)
    values, vectors = _eigh(cxx.sum(0))
    rotated = _mm(vectors.T, cxy.sum(0))  # (D, N)
    weights = _mm(vectors, rotated / (np.maximum(values, 0.0)[:, None] + ridge[None, :] * n))
    weights /= sd[:, None]
    intercept = mu_y - mu @ weights
    columns, first = {}, 0
    for name, r in zip(members, responses, strict=True):
        columns[name] = slice(first, first + r.shape[0])
        first += r.shape[0]
    group = GroupFit(
        sessions=columns,
        weights=weights,
        intercept=intercept,
        ridge=ridge,
        nonlinearity=np.zeros((4, n_neurons)),
        z_centre=np.stack([np.zeros(n_neurons), np.ones(n_neurons)]),
        use_nonlinearity=np.zeros(n_neurons, dtype=bool),
        training_frames=int(n),
    )
    _fit_nonlinearity(group, design, pooled, responses, ranges, int(n))
    return group


def _cross_validated_ridge(
    cxx: np.ndarray, cxy: np.ndarray, cyy: np.ndarray, count: np.ndarray
) -> np.ndarray:
    """Per neuron, the ridge strength (relative to the frame count) with the least held-out error."""
    k, d, n_neurons = cxy.shape
    errors = np.zeros((len(RIDGE_GRID), n_neurons))
    total_xx, total_xy = cxx.sum(0), cxy.sum(0)
    folds_used = 0
    for fold in range(k):
        n_train = count.sum() - count[fold]
        if count[fold] == 0 or n_train < 2:
            continue
        folds_used += 1
        values, vectors = _eigh(total_xx - cxx[fold])
        values = np.maximum(values, 0.0)
        b_train = _mm(vectors.T, total_xy - cxy[fold])
        b_held = _mm(vectors.T, cxy[fold])
        a_held = _mm(_mm(vectors.T, cxx[fold]), vectors)
        # every ridge strength at once: (S, D, N) weights, one product for all of them
        w = b_train[None] / (values[None, :, None] + RIDGE_GRID[:, None, None] * n_train)
        held_w = _mm(a_held, w.transpose(1, 0, 2).reshape(d, -1)).reshape(d, len(RIDGE_GRID), n_neurons)
        errors += cyy[fold] - 2 * (w * b_held[None]).sum(1) + (w * held_w.transpose(1, 0, 2)).sum(1)
    if folds_used == 0:
        return np.full(n_neurons, RIDGE_GRID[len(RIDGE_GRID) // 2])
    return RIDGE_GRID[np.argmin(errors, axis=0)]


def _mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` by torch: on a busy machine numpy's threaded BLAS can be ten times slower."""
    import torch

    return (torch.from_numpy(np.asarray(a)) @ torch.from_numpy(np.asarray(b))).numpy()


def _eigh(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import torch

    values, vectors = torch.linalg.eigh(torch.from_numpy(np.ascontiguousarray(matrix)))
    return values.numpy(), vectors.numpy()


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _output(group: GroupFit, z: np.ndarray) -> np.ndarray:
    """The nonlinearity applied to linear predictions ``z`` (T, N), where it was kept."""
    if not group.use_nonlinearity.any():
        return z
    a, b, s, c = group.nonlinearity
    zs = (z - group.z_centre[0]) / group.z_centre[1]
    shaped = c + s * _softplus(a * zs + b)
    return np.where(group.use_nonlinearity[None, :], shaped, z)


def _fit_nonlinearity(
    group: GroupFit,
    design: Design,
    pooled: np.ndarray,
    responses: list[np.ndarray],
    ranges: list[tuple[int, int]],
    n_frames: int,
) -> None:
    """Least-squares fit of ``c + s * softplus(a * z + b)`` per neuron on (a sample of) the
    training frames; kept where it beats the linear prediction there."""
    stride = max(1, math.ceil(n_frames / NONLINEARITY_FRAMES))
    zs, ys, pending = [], [], []  # linear predictions, taken a few thousand frames at a time

    def flush() -> None:
        if pending:
            zs.append(_mm(np.concatenate(pending), group.weights) + group.intercept)
            pending.clear()

    for t0, t1 in ranges:
        for start in range(t0, t1, BLOCK_FRAMES):
            stop = min(start + BLOCK_FRAMES, t1)
            rows = np.arange(start, stop)
            rows = rows[rows % stride == 0]
            if rows.size == 0:
                continue
            x = lagged_features(pooled, start, stop, design.bins)[rows - start]
            y = np.concatenate([np.asarray(r[:, rows], dtype=np.float64) for r in responses]).T
            keep = np.isfinite(y).all(axis=1)
            pending.append(x[keep])
            ys.append(y[keep])
            if sum(len(p) for p in pending) >= BLOCK_FRAMES:
                flush()
    flush()
    if not zs:
        return
    z, y = np.concatenate(zs), np.concatenate(ys)
    centre, spread = z.mean(0), z.std(0)
    spread[spread == 0] = 1.0
    group.z_centre = np.stack([centre, spread])
    zs_all = (z - centre) / spread
    # Fit to the mean response in quantile bins of the linear prediction: the same curve as a fit
    # to every frame for a smooth nonlinearity, at the cost of a few hundred points.
    order = np.argsort(zs_all, axis=0)
    edges = np.linspace(0, len(z), NONLINEARITY_BINS + 1).astype(int)
    sorted_z = np.take_along_axis(zs_all, order, axis=0)
    sorted_y = np.take_along_axis(y, order, axis=0)
    keep_bins = [(a, b) for a, b in itertools.pairwise(edges.tolist()) if b > a]
    bin_z = np.stack([sorted_z[a:b].mean(0) for a, b in keep_bins])
    bin_y = np.stack([sorted_y[a:b].mean(0) for a, b in keep_bins])
    params = _fit_softplus(bin_z, bin_y)
    a, b, s, c = params
    shaped = c + s * _softplus(a * zs_all + b)
    nonlinear_mse = ((shaped - y) ** 2).mean(0)
    linear_mse = ((z - y) ** 2).mean(0)
    finite = np.isfinite(params).all(0) & np.isfinite(nonlinear_mse)
    group.nonlinearity = params
    group.use_nonlinearity = finite & (nonlinear_mse < linear_mse) & (shaped.std(0) > 1e-9)


def _fit_softplus(z: np.ndarray, y: np.ndarray, iterations: int = 60) -> np.ndarray:
    """(4, N) a, b, s, c minimising the squared error of ``c + s * softplus(a * z + b)`` to the
    points (z, y) (each ``(K, N)``), per neuron, by Levenberg-Marquardt from near the linear fit."""
    base = _softplus(z + 1.0)  # close to linear above z = -1
    slope = ((base - base.mean(0)) * (y - y.mean(0))).mean(0) / np.maximum(base.var(0), 1e-12)
    params = np.stack([np.ones_like(slope), np.ones_like(slope), slope, y.mean(0) - slope * base.mean(0)])
    damping = np.full(z.shape[1], 1e-2)

    def residual(p: np.ndarray) -> np.ndarray:
        return p[3] + p[2] * _softplus(p[0] * z + p[1]) - y

    loss = (residual(params) ** 2).sum(0)
    for _ in range(iterations):
        u = params[0] * z + params[1]
        gate = params[2] * _sigmoid(u)
        jac = np.stack([gate * z, gate, _softplus(u), np.ones_like(z)], axis=-1)  # (K, N, 4)
        jtj = np.einsum("kna,knb->nab", jac, jac)
        grad = np.einsum("kna,kn->na", jac, residual(params))
        diagonal = np.einsum("naa->na", jtj)
        system = jtj + (damping[:, None] * diagonal + 1e-12)[:, :, None] * np.eye(4)[None]
        step = np.linalg.solve(system, -grad[:, :, None])[:, :, 0].T  # (4, N)
        trial = params + step
        trial_loss = (residual(trial) ** 2).sum(0)
        better = np.isfinite(trial_loss) & (trial_loss < loss)
        params = np.where(better[None], trial, params)
        loss = np.where(better, trial_loss, loss)
        damping = np.where(better, damping / 3.0, damping * 4.0)
    return params


def add_baseline_scores(
    evaluation: Evaluation, baseline: Baseline, dataset: Any, splits: Any, truth: Any = None
) -> None:
    """Score the baseline on the same frames as the model, with the same metric code, and put its
    per-neuron scores beside the model's (``baseline_<metric>`` in each `SessionResult`)."""
    from openretina_cli.evaluation.predict import true_rates

    started = time.perf_counter()
    warmup = evaluation.warmup_frames
    for split in evaluation.splits:
        for name, result in split.sessions.items():
            if baseline.group_of(name) is None:
                continue
            session = dataset.sessions[name]
            if split.is_test:
                movie = session.tests[split.name].movie
                ranges = [(warmup, len(movie))]
            else:
                movie = session.train_movie
                clip = int(splits.clip_length)
                ranges = [(int(s) + warmup, int(s) + clip) for s in splits.sessions[name].val_starts()]
            prediction = baseline.predict(name, baseline.pooled_of(movie), ranges)
            if prediction.shape != result.target.shape:
                baseline.notes.append(
                    f"baseline: {split.key} of session {name} not scored (its frames do not line up with "
                    f"the model's: {prediction.shape} vs {result.target.shape})"
                )
                continue
            _put_scores(result, prediction)
            if truth is not None and "truth_correlation" in result.scores:
                rates = true_rates(truth, name, session, split.name)[:, -prediction.shape[1] :]
                result.scores[PREFIX + "truth_correlation"] = metrics.correlation(prediction, rates)
    baseline.score_s = time.perf_counter() - started


def _put_scores(result: SessionResult, prediction: np.ndarray) -> None:
    scores = metrics.neuron_scores(prediction, result.target, result.trials)
    for metric in SCORED:
        if metric in scores:
            result.scores[PREFIX + metric] = scores[metric]


def verdicts(evaluation: Evaluation) -> dict[str, dict[str, Any]]:
    """Per split key (and ``test``, all test stimuli pooled): mean model and baseline correlation
    over neurons, and whether the model beats its baseline (None when either is undefined)."""
    groups: dict[str, list[SessionResult]] = {
        split.key: list(split.sessions.values()) for split in evaluation.splits
    }
    if evaluation.test_splits:
        groups[TEST] = [result for split in evaluation.test_splits for result in split.sessions.values()]
    out: dict[str, dict[str, Any]] = {}
    for key, results in groups.items():
        scored = [r for r in results if PREFIX + "correlation" in r.scores]
        if not scored:
            continue
        model = nanmean(np.concatenate([r.scores["correlation"] for r in scored]))
        base = nanmean(np.concatenate([r.scores[PREFIX + "correlation"] for r in scored]))
        beats = None if math.isnan(model) or math.isnan(base) else bool(model > base)
        out[key] = {
            "model_correlation": None if math.isnan(model) else model,
            "baseline_correlation": None if math.isnan(base) else base,
            "model_beats_baseline": beats,
        }
    return out


def baseline_summary(evaluation: Evaluation, baseline: Baseline) -> dict[str, Any]:
    """What summary.json says about the baseline: the method, its cost and the verdict per split."""
    per_split = verdicts(evaluation)
    return {
        "method": baseline.design.describe(),
        "lags": baseline.design.lags,
        "lag_bins": [list(b) for b in baseline.design.bins],
        "pooled_shape": [baseline.design.channels, *baseline.design.pooled],
        "training_frames": {name: g.training_frames for g in baseline.groups for name in g.sessions},
        "fit_s": round(baseline.fit_s, 3),
        "score_s": round(baseline.score_s, 3),
        "splits": per_split,
        "model_worse_on": [key for key, v in per_split.items() if v["model_beats_baseline"] is False],
        "notes": list(baseline.notes),
    }


def evaluate_baseline(evaluation: Evaluation, dataset: Any, splits: Any, truth: Any = None) -> dict[str, Any]:
    """Fit the baseline on the training frames of the evaluated sessions, score it beside the model
    in ``evaluation`` and return its summary (see `baseline_summary`)."""
    sessions = sorted({name for split in evaluation.splits for name in split.sessions})
    with one_thread():
        baseline = fit_baseline(dataset, splits, evaluation.warmup_frames, sessions)
        add_baseline_scores(evaluation, baseline, dataset, splits, truth)
    return baseline_summary(evaluation, baseline)


def worse_than_baseline_message(summary: Mapping[str, Any]) -> str | None:
    """One line for the console when the model does not beat its baseline on some split."""
    worse = summary.get("model_worse_on") or []
    if not worse:
        return None
    parts = [
        f"{key} ({summary['splits'][key]['model_correlation']:.3f} vs "
        f"{summary['splits'][key]['baseline_correlation']:.3f})"
        for key in worse
    ]
    return (
        "The model does not beat its linear-nonlinear baseline (mean correlation, model vs baseline) on "
        + ", ".join(parts)
        + ". Train longer, or check the config's starts and scales for data of this size."
    )
