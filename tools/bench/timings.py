"""Turning a run's bench-timer record (hooks/bench_timer.py) into the metrics we compare.

Definitions (the same for both tools):
- first_step_s: from the process start (BENCH_T0) to the start of the first training step.
- step_s: median compute time of a training step (batch start → batch end: forward, backward, update).
- fetch_s: total time between training steps (previous step end, or epoch start, → next step start),
  which is where the data pipeline produces the next batch.
- throughput: predicted (and fitted) frames × neurons per second of training wall time (fetch +
  step), leaving out the very first step (one-time warm-up). Predicted frames are the time length
  of the model's (B, T, N) output, seen once by a forward hook: a tool that spends the first frames
  of each chunk on its temporal kernels' warm-up fits fewer frames per chunk than it loads.
  `load_throughput` counts the response frames delivered instead (B × T × N of the batch).
- epoch_s: median duration of a training epoch including its validation loop.
- data_share: fetch_s / total epoch time.
- eval_s: time spent in test/validation loops after training ended (the post-training evaluation;
  ours evaluates outside Lightning's loops, so the harness takes it from the run's results.json);
  post_fit_s: from the end of training to the process exit (evaluation + saving + reporting).
"""

from __future__ import annotations

import statistics
from typing import Any

NAN = float("nan")


def run_metrics(timer: dict[str, Any], t_exit: float) -> dict[str, float]:
    """Metrics of one run from its timer record; t_exit is when the process ended (time.time())."""
    t0 = float(timer["t0"])
    batches = [b for b in timer.get("train_batches", []) if b[1] is not None]
    epochs = [e for e in timer.get("train_epochs", []) if e[1] is not None]
    fits = [f for f in timer.get("fit", []) if f[1] is not None]
    fit_end = fits[-1][1] if fits else None

    metrics: dict[str, float] = {
        "callback_init_s": float(timer["t_callback_init"]) - t0,
        "first_step_s": batches[0][0] - t0 if batches else NAN,
        "steps": float(len(batches)),
        "epochs": float(len(epochs)),
    }
    # Each step's wall time: from the previous step's end (or its epoch's start) to its own end.
    epoch_starts = [e[0] for e in epochs] + [e[0] for e in timer.get("train_epochs", []) if e[1] is None]
    fetch_total = 0.0
    walls: list[float] = []
    work: list[float] = []
    loaded: list[float] = []
    offset = float(timer.get("output_frames_offset", 0) or 0)
    prev_end: float | None = None
    for start, end, b, t, n in batches:
        opened = max((s for s in epoch_starts if s <= start), default=None)
        origin = prev_end if prev_end is not None and (opened is None or prev_end >= opened) else opened
        if origin is None:
            origin = start
        fetch_total += start - origin
        walls.append(end - origin)
        work.append(float(b) * max(float(t) - offset, 0.0) * float(n))
        loaded.append(float(b) * float(t) * float(n))
        prev_end = end
    metrics["step_s"] = statistics.median(e - s for s, e, *_ in batches) if batches else NAN
    metrics["fetch_s"] = fetch_total if batches else NAN
    if len(walls) > 1 and sum(walls[1:]) > 0:
        metrics["throughput"] = sum(work[1:]) / sum(walls[1:])
        metrics["load_throughput"] = sum(loaded[1:]) / sum(walls[1:])
    else:
        metrics["throughput"] = metrics["load_throughput"] = NAN
    metrics["output_frames_offset"] = offset
    epoch_durations = [e - s for s, e in epochs]
    metrics["epoch_s"] = statistics.median(epoch_durations) if epoch_durations else NAN
    metrics["data_share"] = fetch_total / sum(epoch_durations) if epoch_durations and batches else NAN
    loops = timer.get("loops", [])
    in_fit_val = [end - start for kind, _, start, end in loops if fit_end is None or end <= fit_end]
    metrics["val_loop_s"] = statistics.median(in_fit_val) if in_fit_val else NAN
    if fit_end is not None:
        after = [end - start for _, _, start, end in loops if start >= fit_end]
        metrics["eval_s"] = sum(after) if after else NAN
        metrics["post_fit_s"] = t_exit - fit_end
        metrics["fit_s"] = fit_end - fits[-1][0]
    else:
        metrics.update(eval_s=NAN, post_fit_s=NAN, fit_s=NAN)
    metrics["to_fit_s"] = fits[-1][0] - t0 if fits else NAN
    metrics["fit_to_first_step_s"] = batches[0][0] - fits[-1][0] if fits and batches else NAN
    return metrics


# Our run's own record (results.json: timing_s, peak_rss_mib), phase by phase, in the order they run.
OUR_PHASES = (
    ("startup", "phase_startup_s"),  # process start -> the run begins: imports, Hydra composition
    ("config", "phase_config_s"),
    ("data", "phase_data_s"),  # reading, quality checks, splits
    ("imports", "phase_imports_s"),  # what the background import of torch/Lightning had left
    ("model", "phase_model_s"),
    ("readout_init", "phase_sta_s"),  # readout_init=sta: the spike-triggered averages
    ("trainer", "phase_trainer_s"),  # trainer, loaders, run directory
    ("fit", "phase_fit_s"),
    ("load_best", "phase_load_best_s"),
    ("evaluation", "phase_evaluation_s"),
    ("baseline", "phase_baseline_s"),
    ("stimulus_range", "phase_stimulus_range_s"),
    ("export", "phase_export_s"),
    ("results", "phase_results_s"),  # results.json and the printed table
    ("report", "phase_report_s"),
)


def our_phases(results: dict[str, Any], wall_s: float) -> dict[str, float]:
    """Seconds per phase from our run's results.json; `phase_exit_s` is the wall time left after the
    run's last record (interpreter exit), `rss_<phase>_mib` the peak RSS at the end of a phase."""
    timing = results.get("timing_s", {})
    out = {metric: NAN if timing.get(name) is None else float(timing[name]) for name, metric in OUR_PHASES}
    process = timing.get("process")
    out["phase_exit_s"] = wall_s - float(process) if process is not None else NAN
    for name, peak in results.get("peak_rss_mib", {}).items():
        out[f"rss_{name}_mib"] = float(peak)
    return out
