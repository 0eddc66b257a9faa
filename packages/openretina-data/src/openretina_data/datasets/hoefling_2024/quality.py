"""The published ROI selection of Höfling et al. 2024, applied to a loaded :class:`Dataset`.

Rules, applied in this order to the ROIs that survived the previous ones (published settings in
``configs/quality_checks/hoefling_2024.yaml``):

1. cell type: ``cell_types`` (Baden group 1–46) in ``cell_types_list`` (1–32 = ganglion cells);
2. quality index: ``d_qi >= d_qi`` **or** (``qi_logic: and``: **and**) ``chirp_qi >= chirp_qi``;
3. classifier: the row maximum of ``group_confidences`` ``>= classifier_confidence``;
4. counts (only with ``filter_counts``): sessions with ``<= count_threshold`` ROIs are dropped.

A threshold set to null switches its rule off. Sessions left without ROIs are dropped.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping

import numpy as np

from openretina_data.errors import DataError
from openretina_data.quality import QualityReport, QualityRow
from openretina_data.records import Dataset, SessionData, TestSet

Rule = Callable[[SessionData], np.ndarray]


def _field(session: SessionData, key: str, rule: str) -> np.ndarray:
    if key not in session.neuron_metadata:
        raise DataError(
            None,
            f"{session.name}: {key}",
            f"the rule {rule!r} needs this per-ROI field, which the session does not have",
            f"switch the rule off in the quality_checks config, or use a file with {key}",
        )
    return np.asarray(session.neuron_metadata[key])


def _cell_type_mask(session: SessionData, allowed: Iterable[int]) -> np.ndarray:
    return np.isin(_field(session, "cell_types", "cell types"), np.asarray(list(allowed)))


def _qi_mask(session: SessionData, d_qi: float | None, chirp_qi: float | None, logic: str) -> np.ndarray:
    parts = []
    with np.errstate(invalid="ignore"):  # NaN quality indices fail the comparison
        if d_qi is not None:
            parts.append(_field(session, "d_qi", "quality index") >= d_qi)
        if chirp_qi is not None:
            parts.append(_field(session, "chirp_qi", "quality index") >= chirp_qi)
    combine = np.logical_or if logic == "or" else np.logical_and
    return combine.reduce(parts) if len(parts) > 1 else parts[0]


def _confidence_mask(session: SessionData, threshold: float) -> np.ndarray:
    confidences = _field(session, "group_confidences", "classifier confidence")
    if confidences.ndim != 2:
        raise DataError(
            None,
            f"{session.name}: group_confidences",
            f"shape {confidences.shape}, expected (ROIs, 46)",
            "fix the file",
        )
    return confidences.max(axis=1) >= threshold


def select_neurons(session: SessionData, keep: np.ndarray) -> SessionData:
    """The session restricted to the neurons where ``keep`` is true (responses, trials, metadata)."""
    keep = np.asarray(keep, dtype=bool)
    if keep.all():
        return session
    tests = {
        name: TestSet(
            movie=test.movie,
            responses=test.responses[keep],
            trials=None if test.trials is None else test.trials[:, keep],
        )
        for name, test in session.tests.items()
    }
    return SessionData(
        name=session.name,
        train_movie=session.train_movie,
        train_responses=session.train_responses[keep],
        tests=tests,
        neuron_metadata={key: np.asarray(value)[keep] for key, value in session.neuron_metadata.items()},
        val_clip_indices=session.val_clip_indices,
    )


def hoefling_quality_checks(
    dataset: Dataset,
    *,
    filter_cell_types: bool = False,
    cell_types_list: Iterable[int] | None = None,
    chirp_qi: float | None = 0.35,
    d_qi: float | None = 0.6,
    qi_logic: str = "or",
    filter_counts: bool = True,
    count_threshold: int = 10,
    classifier_confidence: float | None = 0.25,
    verbose: bool = False,
) -> tuple[Dataset, QualityReport]:
    """The dataset with the ROIs (and sessions) that pass the published selection, and the report.

    The report has the rows of :mod:`openretina_data.quality` (one per rule and session, checks
    named ``cell_type``, ``quality_index``, ``classifier_confidence``, ``count_threshold``), and its
    summary goes to ``Dataset.notes``.
    """
    rules = _rules(filter_cell_types, cell_types_list, d_qi, chirp_qi, qi_logic, classifier_confidence)
    report = QualityReport()
    kept: dict[str, SessionData] = {}
    notes: list[str] = []
    for name, session in dataset.sessions.items():
        before = session.n_neurons
        for check, reason, rule in rules:
            keep = np.asarray(rule(session), dtype=bool)
            ids = np.asarray(session.neuron_metadata["neuron_ids"])
            report.rows.append(
                QualityRow(
                    name,
                    check,
                    session.n_neurons,
                    int((~keep).sum()),
                    "drop_neuron",
                    reason if not keep.all() else "",
                    tuple(ids[~keep].tolist()),
                )
            )
            session = select_neurons(session, keep)
        too_few = session.n_neurons == 0 or (filter_counts and session.n_neurons <= count_threshold)
        if filter_counts or session.n_neurons == 0:
            reason = (
                f"{session.n_neurons} ROIs <= count_threshold {count_threshold}"
                if filter_counts
                else "no ROI left"
            )
            report.rows.append(
                QualityRow(
                    name, "count_threshold", 1, int(too_few), "drop_session", reason if too_few else ""
                )
            )
        if too_few:
            report.dropped_sessions.append(name)
            notes.append(f"session {name}: dropped by the Höfling 2024 quality checks ({before} ROIs before)")
            continue
        if session.n_neurons < before:
            notes.append(
                f"session {name}: {before - session.n_neurons} of {before} ROIs dropped by the Höfling 2024 "
                "quality checks"
            )
        kept[name] = session
    if not kept:
        raise DataError(
            None,
            "quality_checks",
            "no ROI passes the Höfling 2024 quality checks",
            "loosen the thresholds in the quality_checks config",
        )
    total_before = sum(s.n_neurons for s in dataset.sessions.values())
    total_after = sum(s.n_neurons for s in kept.values())
    notes.append(
        f"Höfling 2024 quality checks: {total_before} ROIs -> {total_after} ROIs in {len(kept)} sessions"
    )
    if verbose:
        print(notes[-1], file=sys.stderr)
        print(report.to_text(), file=sys.stderr, end="")
    return dataset.replace_sessions(kept, notes=notes), report


def _rules(
    filter_cell_types: bool,
    cell_types_list: Iterable[int] | None,
    d_qi: float | None,
    chirp_qi: float | None,
    qi_logic: str,
    classifier_confidence: float | None,
) -> list[tuple[str, str, Rule]]:
    """(check name, reason for a drop, mask of ROIs to keep) for each rule that is switched on."""
    if qi_logic not in ("and", "or"):
        raise DataError(None, "quality_checks.qi_logic", f"is {qi_logic!r}", "use and or or")
    rules: list[tuple[str, str, Rule]] = []
    if filter_cell_types:
        if cell_types_list is None:
            raise DataError(
                None,
                "quality_checks.cell_types_list",
                "filter_cell_types is on but no list is given",
                "list the Baden groups to keep, e.g. 1 to 32 (ganglion cells)",
            )
        allowed = [int(t) for t in cell_types_list]
        rules.append(
            ("cell_type", f"cell type not in {_ranges(allowed)}", lambda s: _cell_type_mask(s, allowed))
        )
    thresholds = [(value, f"{key} >= {value}") for key, value in (("d_qi", d_qi), ("chirp_qi", chirp_qi))]
    wanted = [text for value, text in thresholds if value is not None]
    if wanted:
        rules.append(
            (
                "quality_index",
                _qi_reason(wanted, qi_logic),
                lambda s: _qi_mask(s, d_qi, chirp_qi, qi_logic),
            )
        )
    if classifier_confidence is not None:
        threshold = float(classifier_confidence)
        rules.append(
            (
                "classifier_confidence",
                f"max group_confidences < {threshold}",
                lambda s: _confidence_mask(s, threshold),
            )
        )
    return rules


def _qi_reason(wanted: list[str], logic: str) -> str:
    if len(wanted) == 1:
        return f"not {wanted[0]}"
    return (
        f"neither {wanted[0]} nor {wanted[1]}" if logic == "or" else f"not both {wanted[0]} and {wanted[1]}"
    )


def _ranges(values: list[int]) -> str:
    """``[1, 2, 3, 7]`` as ``1-3, 7`` for short messages."""
    if not values:
        return "[]"
    ordered = sorted(set(values))
    parts, start, previous = [], ordered[0], ordered[0]
    for value in [*ordered[1:], None]:
        if value is not None and value == previous + 1:
            previous = value
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if value is not None:
            start = previous = value
    return ", ".join(parts)


def settings_from_config(config: Mapping[str, object]) -> dict[str, object]:
    """The keyword arguments of :func:`hoefling_quality_checks` from a quality_checks config mapping."""
    return {key: value for key, value in config.items() if not str(key).startswith("_")}
