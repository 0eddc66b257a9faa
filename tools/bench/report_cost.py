"""Time the evaluation report (``write_report``: tables, figures, page and cards) of a finished run.

The run is evaluated once, outside the timing; then the report is written REPEATS times into a
temporary folder. To compare with another version of openretina-cli, put its ``src`` folder first
on PYTHONPATH (e.g. from ``git archive <commit> packages/openretina-cli/src | tar -x -C /tmp/old``).

    uv run python tools/bench/report_cost.py RUN_DIR --repeats 3
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a finished run directory")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import openretina_cli
    from openretina_cli import model_source
    from openretina_cli.commands.eval import eval_config
    from openretina_cli.config.data import EpochBatches, build_splits, load_checked_dataset
    from openretina_cli.evaluation.per_neuron import evaluate
    from openretina_cli.evaluation.predict import load_ground_truth
    from openretina_cli.evaluation.report import ReportInputs, write_report
    from openretina_cli.evaluation.tables import cell_type_key
    from openretina_data.batching import ValidationBatches

    print(f"openretina_cli from {openretina_cli.__file__}", file=sys.stderr)
    source = model_source.resolve(args.run)
    cfg = eval_config(source, None, [])
    model = model_source.load(source, device="cpu")
    dataset = load_checked_dataset(cfg).dataset
    splits = build_splits(cfg, dataset)
    validation = EpochBatches(ValidationBatches(dataset, splits, int(cfg.dataloader.batch_size)))
    evaluation = evaluate(model, dataset, validation, "cpu", load_ground_truth(cfg.data_io.get("data_dir")))
    import openretina_cli.evaluation.figures

    seconds, size = [], 0
    for _ in range(args.repeats):
        out = Path(tempfile.mkdtemp()) / "eval"
        inputs = ReportInputs(
            title="report cost",
            model_path=source.model_path,
            run_dir=source.run_dir,
            config_text=(Path(args.run) / "config.yaml").read_text(),
            cell_type_key=cell_type_key(dataset),
        )
        started = time.perf_counter()
        write_report(out, evaluation, dataset, model, inputs)
        seconds.append(round(time.perf_counter() - started, 2))
        size = (out / "report.html").stat().st_size
    with open("/proc/loadavg") as handle:
        load = handle.read().split()[:3]
    print(
        json.dumps(
            {"neurons": sum(dataset.n_neurons.values()), "seconds": seconds, "page_bytes": size, "load": load}
        )
    )


if __name__ == "__main__":
    main()
