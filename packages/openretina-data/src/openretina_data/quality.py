"""Per-neuron and per-session checks of a `Dataset`, with a report of everything they did.

Checks (each with its threshold and its action from `QualityConfig`):

- `non_finite`: a neuron with NaN or Inf anywhere in its responses (training, test, trials).
- `constant`: a neuron whose training responses vary less than `constant_min_std` (silent or stuck).
- `min_mean_rate`: a neuron whose mean training response is below `min_mean_rate`.
- `reliability`: where repeated test trials exist, a neuron whose trial-to-trial reliability (mean
  correlation of each trial with the mean of the others) is below `min_reliability`.
- `length_mismatch`: a session whose stimulus and responses differ in length.
- `min_neurons`: a session left with fewer than `min_neurons` neurons is dropped.

Actions: "drop_neuron" removes the neuron from responses, trials and metadata; "drop_session"
removes the whole session; "fail" raises `DataError`. Every drop appears in the report and in
`Dataset.notes`; nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

import numpy as np

from openretina_data.errors import DataError
from openretina_data.records import Dataset, SessionData, TestSet, per_neuron

__all__ = ["QualityConfig", "QualityReport", "QualityRow", "run_quality_checks"]

Action = Literal["drop_neuron", "drop_session", "fail"]
_ACTIONS = ("drop_neuron", "drop_session", "fail")


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds and actions of the checks (the `quality_checks` config group). A threshold of
    None switches its check off."""

    enabled: bool = True
    non_finite_action: Action = "drop_neuron"
    constant_min_std: float | None = 1e-6
    constant_action: Action = "drop_neuron"
    min_mean_rate: float | None = None
    min_mean_rate_action: Action = "drop_neuron"
    min_reliability: float | None = None
    reliability_action: Action = "drop_neuron"
    length_mismatch_action: Action = "fail"
    min_neurons: int = 1

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name.endswith("_action") and getattr(self, f.name) not in _ACTIONS:
                raise DataError(
                    None,
                    f"quality_checks.{f.name}",
                    f"is {getattr(self, f.name)!r}",
                    f"use one of {', '.join(_ACTIONS)}",
                )
        if self.length_mismatch_action == "drop_neuron":
            raise DataError(
                None,
                "quality_checks.length_mismatch_action",
                "is 'drop_neuron', but a length mismatch concerns the whole session",
                "use drop_session or fail",
            )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> QualityConfig:
        """From a plain mapping (e.g. the Hydra config group); unknown keys are an error."""
        values = dict(values or {})
        values.pop("_target_", None)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise DataError(
                None,
                "quality_checks",
                f"unknown keys {unknown}",
                f"use only {', '.join(sorted(known))}",
            )
        return cls(**values)


@dataclass(frozen=True)
class QualityRow:
    """One check on one session."""

    session: str
    check: str
    checked: int  # neurons (or 1 for a session-level check)
    dropped: int
    action: str
    reason: str = ""
    dropped_ids: tuple[Any, ...] = ()


@dataclass
class QualityReport:
    """What was checked, what was dropped and why."""

    rows: list[QualityRow] = field(default_factory=list)
    dropped_sessions: list[str] = field(default_factory=list)

    @property
    def dropped_neurons(self) -> dict[str, list[Any]]:
        dropped: dict[str, list[Any]] = {}
        for row in self.rows:
            if row.dropped_ids:
                dropped.setdefault(row.session, []).extend(row.dropped_ids)
        return dropped

    def to_dict(self) -> dict[str, Any]:
        rows = []
        for row in self.rows:
            entry = asdict(row)
            entry["dropped_ids"] = [_plain(v) for v in row.dropped_ids]
            rows.append(entry)
        return {"rows": rows, "dropped_sessions": list(self.dropped_sessions)}

    def _table(self) -> tuple[list[str], list[list[str]]]:
        header = ["session", "check", "checked", "dropped", "action", "reason"]
        body = [
            [r.session, r.check, str(r.checked), str(r.dropped), r.action if r.dropped else "", r.reason]
            for r in self.rows
        ]
        return header, body

    def to_markdown(self) -> str:
        header, body = self._table()
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
        if self.dropped_sessions:
            lines.append("")
            lines.append(f"Dropped sessions: {', '.join(self.dropped_sessions)}")
        return "\n".join(lines) + "\n"

    def to_text(self) -> str:
        header, body = self._table()
        widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in [header, *body]
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        if self.dropped_sessions:
            lines.append(f"dropped sessions: {', '.join(self.dropped_sessions)}")
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.to_text()


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def reliability(trials: np.ndarray) -> np.ndarray:
    """Per-neuron mean correlation of each trial with the mean of the other trials.

    `trials` is (R, N, T) with R >= 2; neurons with no variance give NaN.
    """
    r = trials.shape[0]
    total = trials.sum(axis=0)
    scores = np.zeros(trials.shape[1])
    for i in range(r):
        others = (total - trials[i]) / (r - 1)
        a = trials[i] - trials[i].mean(axis=1, keepdims=True)
        b = others - others.mean(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            scores += (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    return scores / r


def _session_trials(session: SessionData) -> np.ndarray | None:
    """All test trials of a session concatenated in time, (R, N, T), if every test has the same R."""
    trials = [test.trials for _, test in sorted(session.tests.items()) if test.trials is not None]
    if not trials or len({t.shape[0] for t in trials}) != 1 or trials[0].shape[0] < 2:
        return None
    return np.concatenate(trials, axis=2)


def run_quality_checks(
    dataset: Dataset, config: QualityConfig | Mapping[str, Any] | None = None
) -> tuple[Dataset, QualityReport]:
    """Check every session and return the cleaned dataset (a new object) and the report.

    Raises:
        DataError: a check whose action is "fail" found a problem, or no session is left.
    """
    if not isinstance(config, QualityConfig):
        config = QualityConfig.from_dict(config)
    report = QualityReport()
    if not config.enabled:
        return dataset, report
    kept: dict[str, SessionData] = {}
    notes: list[str] = []
    for name, session in dataset.sessions.items():
        checked = _check_session(session, config, report)
        if checked is None:
            report.dropped_sessions.append(name)
            notes.append(f"session {name}: dropped by quality checks ({_reasons(report, name)})")
            continue
        n_dropped = session.n_neurons - checked.n_neurons
        if n_dropped:
            ids = report.dropped_neurons.get(name, [])
            notes.append(
                f"session {name}: {n_dropped} of {session.n_neurons} neurons dropped by quality checks "
                f"(ids {[_plain(i) for i in ids]}; {_reasons(report, name)})"
            )
        kept[name] = checked
    if not kept:
        raise DataError(
            None,
            "quality_checks",
            "dropped every session: "
            + "; ".join(f"{r.session}: {r.reason}" for r in report.rows if r.dropped),
            "relax the thresholds in the quality_checks config, or fix the data",
        )
    if len(kept) == len(dataset.sessions) and all(
        kept[n].n_neurons == s.n_neurons for n, s in dataset.sessions.items()
    ):
        return dataset, report
    cleaned = dataset.replace_sessions(kept, notes)
    return _subset_response_normalisation(cleaned, dataset, kept), report


def _subset_response_normalisation(
    cleaned: Dataset, original: Dataset, kept: dict[str, SessionData]
) -> Dataset:
    """Per-neuron response normalisation entries follow the neurons that were kept."""
    norm = cleaned.data_info.response_normalisation
    if not norm:
        return cleaned
    updated = {}
    for name, entry in norm.items():
        before = np.asarray(original.sessions[name].neuron_metadata["neuron_ids"]).tolist()
        after = set(np.asarray(kept[name].neuron_metadata["neuron_ids"]).tolist())
        keep = [i for i, neuron in enumerate(before) if neuron in after]
        updated[name] = {
            key: [values[i] for i in keep] if len(values) == len(before) and len(values) > 1 else values
            for key, values in entry.items()
        }
    cleaned.data_info = replace(cleaned.data_info, response_normalisation=updated)  # type: ignore[misc]
    return cleaned


def _reasons(report: QualityReport, session: str) -> str:
    return "; ".join(f"{r.check}: {r.reason}" for r in report.rows if r.session == session and r.dropped)


def _check_session(session: SessionData, config: QualityConfig, report: QualityReport) -> SessionData | None:
    """The session with failing neurons removed, or None when the session is dropped."""
    name, n = session.name, session.n_neurons
    ids = np.asarray(session.neuron_metadata["neuron_ids"])

    mismatches = []
    if len(session.train_movie) != session.train_responses.shape[1]:
        mismatches.append(
            f"training movie {len(session.train_movie)} frames, responses {session.train_responses.shape[1]}"
        )
    for test_name, test in session.tests.items():
        if len(test.movie) != test.responses.shape[1]:
            mismatches.append(
                f"{test_name}: movie {len(test.movie)} frames, responses {test.responses.shape[1]}"
            )
    if _apply_session_check(report, config.length_mismatch_action, name, "length_mismatch", mismatches):
        return None

    checks: list[tuple[str, str, np.ndarray, str]] = []  # (check, action, failing mask, reason)
    finite = per_neuron(session.train_responses, lambda block: np.isfinite(block).all(axis=1))
    for test in session.tests.values():
        finite &= np.isfinite(test.responses).all(axis=1)
        if test.trials is not None:
            finite &= np.isfinite(test.trials).all(axis=(0, 2))
    checks.append(("non_finite", config.non_finite_action, ~finite, "NaN or Inf in responses"))
    with np.errstate(invalid="ignore"):
        if config.constant_min_std is not None:
            std = per_neuron(session.train_responses, lambda block: np.nanstd(block, axis=1))
            checks.append(
                _below(
                    "constant", config.constant_action, std, config.constant_min_std, "training std", finite
                )
            )
        if config.min_mean_rate is not None:
            mean = per_neuron(session.train_responses, lambda block: np.nanmean(block, axis=1))
            checks.append(
                _below(
                    "min_mean_rate",
                    config.min_mean_rate_action,
                    mean,
                    config.min_mean_rate,
                    "mean rate",
                    finite,
                )
            )
        trials = _session_trials(session)
        if config.min_reliability is not None and trials is None:
            report.rows.append(
                QualityRow(name, "reliability", 0, 0, config.reliability_action, "no repeated test trials")
            )
        if config.min_reliability is not None and trials is not None:
            score = reliability(trials)
            checks.append(
                _below(
                    "reliability",
                    config.reliability_action,
                    score,
                    config.min_reliability,
                    "trial reliability",
                    finite,
                )
            )

    keep = np.ones(n, dtype=bool)
    for check, action, failing, reason in checks:
        count = int(failing.sum())
        if count and action == "fail":
            raise DataError(
                f"session {name}",
                check,
                f"{count} of {n} neurons fail: {reason} (neuron ids {ids[failing].tolist()[:10]})",
                f"fix the data, or set quality_checks.{_action_key(check)} to drop_neuron or drop_session",
            )
        if count and action == "drop_session":
            report.rows.append(QualityRow(name, check, n, n, action, f"{count} neurons: {reason}"))
            return None
        newly = failing & keep
        report.rows.append(
            QualityRow(
                name, check, n, int(newly.sum()), action, reason if count else "", tuple(ids[newly].tolist())
            )
        )
        keep &= ~failing
    if int(keep.sum()) < config.min_neurons:
        report.rows.append(
            QualityRow(
                name,
                "min_neurons",
                n,
                n,
                "drop_session",
                f"{int(keep.sum())} neurons left < {config.min_neurons}",
            )
        )
        return None
    if keep.all():
        return session
    return _select_neurons(session, keep)


def _below(
    check: str, action: str, score: np.ndarray, threshold: float, what: str, finite: np.ndarray
) -> tuple[str, str, np.ndarray, str]:
    """A threshold check: the finite neurons whose `score` is under `threshold` (or NaN) fail it."""
    return check, action, ~(score >= threshold) & finite, f"{what} < {threshold:g}"


def _action_key(check: str) -> str:
    return {
        "non_finite": "non_finite_action",
        "constant": "constant_action",
        "min_mean_rate": "min_mean_rate_action",
        "reliability": "reliability_action",
    }.get(check, f"{check}_action")


def _apply_session_check(
    report: QualityReport, action: str, session: str, check: str, problems: list[str]
) -> bool:
    """Record a session-level check; True when the session is dropped."""
    if not problems:
        report.rows.append(QualityRow(session, check, 1, 0, action))
        return False
    if action == "fail":
        raise DataError(
            f"session {session}",
            check,
            "; ".join(problems),
            f"make stimulus and responses the same length, or set quality_checks.{check}_action=drop_session",
        )
    report.rows.append(QualityRow(session, check, 1, 1, action, "; ".join(problems)))
    return True


def _select_neurons(session: SessionData, keep: np.ndarray) -> SessionData:
    """The session restricted to the neurons in `keep`, everywhere they appear."""
    tests = {
        name: TestSet(test.movie, test.responses[keep], None if test.trials is None else test.trials[:, keep])
        for name, test in session.tests.items()
    }
    return SessionData(
        name=session.name,
        train_movie=session.train_movie,
        train_responses=np.ascontiguousarray(session.train_responses[keep]),
        tests=tests,
        neuron_metadata={key: np.asarray(value)[keep] for key, value in session.neuron_metadata.items()},
        val_clip_indices=session.val_clip_indices,
    )
