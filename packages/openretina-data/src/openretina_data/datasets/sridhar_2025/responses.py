"""Sridhar et al. 2025 response pickles and the trial-wise validation split.

A pickle holds ``train_responses`` (neurons, frames_per_trial, trials), ``test_responses``
(neurons, T, repeats) or (neurons, T), and optionally ``seeds`` and ``trial_separation`` (seed ->
trials). It is read without running code (:mod:`..safe_pickle`), large float arrays straight into float32.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from openretina_data.datasets.safe_pickle import load_array_pickle
from openretina_data.errors import DataError
from openretina_data.splits import seeded_rng


@dataclass(frozen=True)
class Responses:
    train: np.ndarray  # (N, frames_per_trial, trials) float32, trials in use only
    trials_used: np.ndarray  # original indices of those trials
    test_trials: np.ndarray | None  # (R, N, T) float32
    test_mean: np.ndarray  # (N, T) float32
    neuron_ids: np.ndarray


def read_responses(
    path: Path,
    name: str,
    *,
    excluded: Mapping[str, Sequence[int]],
    cells: Mapping[str, Sequence[int]],
    stimulus_seed: int | None,
    first_test_repeats: Mapping[str, int],
    notes: list[str],
) -> Responses:
    """One retina's responses: the selected cells and trials, test repeats as (R, N, T)."""
    data = load_array_pickle(path, float_dtype=np.float32)
    if not isinstance(data, dict):
        raise DataError(
            path, None, f"holds a {type(data).__name__}, not a dict", "use the published response pickle"
        )
    for key in ("train_responses", "test_responses"):
        if key not in data:
            raise DataError(
                path, key, "missing", "use the published response pickle (train_responses, test_responses)"
            )
    train = np.asarray(data["train_responses"], dtype=np.float32)
    if train.ndim != 3:
        raise DataError(
            path,
            "train_responses",
            f"shape {train.shape}, expected (neurons, frames_per_trial, trials)",
            "use the published pickle",
        )
    test = _test_repeats(path, data["test_responses"], train.shape[0])
    n_neurons, _, n_trials = train.shape
    trials = np.arange(n_trials)
    seeds = list(np.asarray(data.get("seeds", [])).reshape(-1).tolist())
    if stimulus_seed is not None and stimulus_seed in seeds:
        separation = data.get("trial_separation")
        if not isinstance(separation, dict) or stimulus_seed not in separation:
            raise DataError(
                path,
                "trial_separation",
                f"no trials for seed {stimulus_seed}",
                "use the published pickle",
            )
        trials = np.asarray(separation[stimulus_seed], dtype=np.int64)
        if test.ndim == 3:
            test = test[:, :, trials[trials < test.shape[2]]]
        notes.append(
            f"session {name}: trials of stimulus seed {stimulus_seed} only ({len(trials)} of {n_trials})"
        )
    elif seeds and name in first_test_repeats and test.ndim == 3:
        keep = first_test_repeats[name]
        if test.shape[2] > keep:
            notes.append(
                f"session {name}: first {keep} of {test.shape[2]} test repeats (data_io.first_test_repeats)"
            )
            test = test[:, :, :keep]
    keep_cells = _kept_cells(path, name, n_neurons, excluded, cells, notes)
    train = np.ascontiguousarray(train[keep_cells][:, :, trials])
    test = test[keep_cells]
    if test.ndim == 3:
        test_trials = np.ascontiguousarray(test.transpose(2, 0, 1))
        test_mean = test_trials.mean(axis=0)
    else:
        test_trials, test_mean = None, np.ascontiguousarray(test)
    return Responses(train, trials, test_trials, test_mean, keep_cells)


def _test_repeats(path: Path, value: Any, n_neurons: int) -> np.ndarray:
    """(N, T, repeats) or (N, T) float32; a list of per-repeat (N, T) arrays is stacked if equal."""
    if isinstance(value, list | tuple):
        lengths = sorted({np.shape(r)[-1] for r in value})
        if len(lengths) > 1:
            raise DataError(
                path,
                "test_responses",
                f"repeats of unequal length ({', '.join(map(str, lengths))} time bins)",
                "use the published pickle: every repeat of the test movie must have the same number of bins",
            )
        value = np.stack([np.asarray(r, dtype=np.float32) for r in value], axis=-1)
    test = np.asarray(value, dtype=np.float32)
    if test.ndim not in (2, 3) or test.shape[0] != n_neurons:
        raise DataError(
            path,
            "test_responses",
            f"shape {test.shape}, expected ({n_neurons} neurons, time, repeats) or ({n_neurons}, time)",
            "use the published pickle",
        )
    return test


def _kept_cells(
    path: Path,
    name: str,
    n_neurons: int,
    excluded: Mapping[str, Sequence[int]],
    cells: Mapping[str, Sequence[int]],
    notes: list[str],
) -> np.ndarray:
    """Original indices of the cells to model: ``cells`` (when it names the session), otherwise
    every cell not in ``excluded_cells``; both reported in the notes."""
    chosen = name in cells
    listed = np.asarray(cells[name] if chosen else excluded.get(name, []), dtype=np.int64)
    key = f"data_io.{'cells' if chosen else 'excluded_cells'}.{name}"
    bad = listed[(listed < 0) | (listed >= n_neurons)]
    if bad.size:
        raise DataError(
            path,
            key,
            f"cells {bad.tolist()} do not exist (the session has {n_neurons})",
            f"list cell indices below {n_neurons}",
        )
    if chosen:
        keep = np.unique(listed)
        notes.append(f"session {name}: only cells {keep.tolist()} of {n_neurons} (data_io.cells)")
    else:
        keep = np.setdiff1d(np.arange(n_neurons), listed)
        if listed.size:
            notes.append(
                f"session {name}: {len(np.unique(listed))} of {n_neurons} cells excluded as unreliable "
                f"(data_io.excluded_cells): {np.unique(listed).tolist()}"
            )
    if not keep.size:
        raise DataError(path, key, "leaves no cell", "keep at least one cell, or drop the session")
    return keep


def validation_trials(
    n_trials: int, train_frac: float, seed: int, same_side: Sequence[Sequence[int]], where: object
) -> np.ndarray:
    """Sorted positions of the validation trials: a seeded draw of ``1 - train_frac`` of them,
    redrawn until every group of ``same_side`` trials (repeated content) is on one side."""
    n_train = round(train_frac * n_trials)
    if not 0 < n_train < n_trials:
        raise DataError(
            str(where),
            "train_frac",
            f"{train_frac} of {n_trials} trials leaves no trial for training or validation",
            "use more trials or a train_frac between them",
        )
    groups = [[t for t in group if t < n_trials] for group in same_side]
    rng = seeded_rng(seed, "sridhar trials")
    for _ in range(1000):
        is_val = np.ones(n_trials, dtype=bool)
        is_val[rng.permutation(n_trials)[:n_train]] = False
        if all(len(set(is_val[group].tolist())) <= 1 for group in groups):
            return np.flatnonzero(is_val)
    raise DataError(
        str(where),
        "same_side_trials",
        f"no draw of {n_trials - n_train} validation trials keeps {list(same_side)} together",
        "change data_io.train_frac or data_io.same_side_trials",
    )
