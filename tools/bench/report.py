"""Summaries, the results JSON, the console table and the plots of a benchmark run.

A results file (schema "openretina-bench/1") holds, per case, every run (pair, tool, metrics) and a
summary per metric: each tool's median/min/max over pairs and the per-pair ratio ours/peer.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stats import pair_ratios, summarize, target_met

SCHEMA = "openretina-bench/1"


@dataclass
class Target:
    """A target from the issues: the median of ours/peer (or of ours alone) within a bound."""

    case: str
    metric: str
    at_most: float | None = None
    at_least: float | None = None
    on: str = "ratio"  # "ratio" (ours/peer) or "ours" (an absolute figure of ours)
    source: str = ""

    def describe(self) -> str:
        subject = "ours/peer" if self.on == "ratio" else "ours"
        bound = f"≤ {self.at_most:g}" if self.at_most is not None else f"≥ {self.at_least:g}"
        return f"{subject} {bound}"


@dataclass
class CaseResult:
    name: str
    description: str
    metrics: list[str]
    runs: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def values(self, tool: str, metric: str, pairs: int) -> list[float | None]:
        by_pair: list[float | None] = [None] * pairs
        for run in self.runs:
            if run["tool"] == tool and run["pair"] < pairs:
                value = run["metrics"].get(metric)
                by_pair[run["pair"]] = None if value is None or not math.isfinite(value) else float(value)
        return by_pair

    def summary(self) -> dict[str, Any]:
        pairs = 1 + max((r["pair"] for r in self.runs), default=-1)
        out: dict[str, Any] = {}
        for metric in self.metrics:
            ours, peer = self.values("ours", metric, pairs), self.values("peer", metric, pairs)
            ratios = pair_ratios(ours, peer)
            out[metric] = {
                "ours": summarize(ours).to_dict(),
                "peer": summarize(peer).to_dict(),
                "ratio": summarize(ratios).to_dict(),
                "ours_runs": ours,
                "peer_runs": peer,
                "ratios": ratios,
            }
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "metrics": self.metrics,
            "runs": self.runs,
            "summary": self.summary(),
            "notes": self.notes,
        }


def evaluate_targets(cases: dict[str, dict[str, Any]], targets: Iterable[Target]) -> list[dict[str, Any]]:
    """Whether each target was met, from the case summaries (None where it was not measured)."""
    from stats import Summary

    verdicts = []
    for target in targets:
        summary = cases.get(target.case, {}).get("summary", {}).get(target.metric)
        if summary is None:
            verdicts.append({**target.__dict__, "target": target.describe(), "median": None, "met": None})
            continue
        s = Summary(**summary[target.on])
        verdicts.append(
            {
                **target.__dict__,
                "target": target.describe(),
                "median": None if s.n == 0 else s.median,
                "low": None if s.n == 0 else s.low,
                "high": None if s.n == 0 else s.high,
                "met": target_met(s, at_most=target.at_most, at_least=target.at_least),
            }
        )
    return verdicts


def write_results(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=_jsonable))
    tmp.replace(path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to the results JSON")


def _fmt(x: float | None) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    ax = abs(x)
    if ax >= 1e5:
        return f"{x:.3g}"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}" if ax >= 0.01 else f"{x:.2g}"


def _cell(s: dict[str, Any]) -> str:
    if not s["n"]:
        return "–"
    return f"{_fmt(s['median'])} [{_fmt(s['low'])}–{_fmt(s['high'])}]"


def case_table(name: str, case: dict[str, Any]) -> str:
    """A Markdown table: metric | ours median [min–max] | peer … | ratio ours/peer … | per pair."""
    lines = [
        f"**{name}**: {case['description']}",
        "",
        "| metric | ours median [min–max] | 1.1.1 median [min–max] "
        "| ours/1.1.1 median [min–max] | per pair |",
        "|---|---|---|---|---|",
    ]
    for metric, s in case["summary"].items():
        per_pair = ", ".join(_fmt(r) for r in s["ratios"])
        lines.append(
            f"| {metric} | {_cell(s['ours'])} | {_cell(s['peer'])} | {_cell(s['ratio'])} | {per_pair} |"
        )
    for note in case.get("notes", []):
        lines.append(f"\n_{note}_")
    return "\n".join(lines)


def targets_table(verdicts: list[dict[str, Any]]) -> str:
    lines = ["| target | case / metric | measured median [min–max] | met |", "|---|---|---|---|"]
    for v in verdicts:
        measured = (
            "not measured"
            if v["median"] is None
            else f"{_fmt(v['median'])} [{_fmt(v['low'])}–{_fmt(v['high'])}]"
        )
        met = {True: "yes", False: "**no**", None: "not measured"}[v["met"]]
        lines.append(f"| {v['target']} ({v['source']}) | {v['case']} / {v['metric']} | {measured} | {met} |")
    return "\n".join(lines)
