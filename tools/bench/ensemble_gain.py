"""The gain of an ensemble over its median member, from an `openretina compare` output.

    uv run python tools/bench/ensemble_gain.py COMPARISON_DIR

Reads COMPARISON_DIR/comparison.json (the leaderboard of the members and one ensemble) and prints,
for the test correlation and the test fraction of the ceiling (and of the oracle), the members'
median, their range, the ensemble's score and its gain over the median member.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

METRICS = (
    ("test_correlation", "test correlation"),
    ("test_fraction_ceiling", "test fraction of the ceiling"),
    ("test_fraction_oracle", "test fraction of the oracle"),
)


def main(directory: str) -> None:
    rows = json.loads((Path(directory) / "comparison.json").read_text())["leaderboard"]
    ensembles = [row for row in rows if str(row["kind"]).startswith("ensemble")]
    members = [row for row in rows if row["kind"] == "run"]
    if len(ensembles) != 1 or not members:
        raise SystemExit(f"{directory}: expected one ensemble and its members in the leaderboard.")
    (ensemble,) = ensembles
    print(f"{len(members)} members, ensemble {ensemble['run']}")
    for key, name in METRICS:
        values = [row[key] for row in members if row[key] is not None]
        if not values or ensemble[key] is None:
            continue
        median = statistics.median(values)
        print(
            f"{name}: members median {median:.4f} (range {min(values):.4f}-{max(values):.4f}), "
            f"ensemble {ensemble[key]:.4f}, gain {ensemble[key] - median:+.4f}"
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
