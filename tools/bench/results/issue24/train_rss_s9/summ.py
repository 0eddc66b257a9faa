"""Medians [min-max] per version of the runs.jsonl files ab.sh/abloop.sh wrote, and whether every
run's metrics were the same."""

import json
import statistics
import sys
from pathlib import Path

KEYS = (
    "peak_trainer",
    "peak_fit",
    "peak_evaluation",
    "peak_baseline",
    "peak_final",
    "fit_cpu",
    "step1_cpu",
    "step_cpu_median_rest",
)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.4g} [{min(values):.4g}-{max(values):.4g}]"


for path in sys.argv[1:]:
    runs = [json.loads(line) for line in Path(path).read_text().splitlines()]
    print(path)
    for name in sorted({r["name"] for r in runs}, reverse=True):
        chosen = [r for r in runs if r["name"] == name]
        print(f"  {name} n={len(chosen)} rc={[r['rc'] for r in chosen]} load={[r['load'] for r in chosen]}")
        for key in KEYS:
            values = [r[key] for r in chosen if r[key] is not None]
            print(f"    {key}: {spread(values)}  {values}")
    print("  distinct metric sets:", len({json.dumps(r["metrics"], sort_keys=True) for r in runs}))
