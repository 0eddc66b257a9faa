"""Every outer config against the linear-nonlinear baseline, on a small file in its own format.

For each outer config this writes a small file in the published layout its data_io reads (the
writers of tests/data/), reads it with the project's own reader, and replaces the file's random
responses by those of a simulated linear-nonlinear-Poisson retina *computed on the movie the reader
built* (so the geometry is the reader's own), then trains the config briefly and reads the model's
and the baseline's correlations from results.json.

    uv run python tools/bench/baseline_formats.py OUT [--epochs 10] [--only NAME ...] [--set KEY=VALUE ...]

Writes OUT/baseline_formats.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SPIKES_PER_FRAME = 0.5


def load_with_ln_responses(
    *, ln_target: str, ln_seed: int = 0, ln_flashed: bool = False, **kwargs: Any
) -> Any:
    """``ln_target(**kwargs)`` with every response replaced by a simulated LN retina's spikes
    (``ln_flashed``: each frame is a separate flashed image, so the response depends on it alone)."""
    from hydra.utils import get_object

    dataset = get_object(ln_target)(**kwargs)
    return simulate_ln_responses(dataset, seed=ln_seed, flashed=ln_flashed)


def simulate_ln_responses(dataset: Any, seed: int = 0, flashed: bool = False) -> Any:
    """Gaussian receptive fields (random centres in the middle half of the frame, or where the reader
    located them from the file's STAs, which single-cell models crop around; random colour
    mix, random sign), a biphasic 250 ms temporal filter, softplus, Poisson spikes at about
    SPIKES_PER_FRAME per frame; test trials keep the file's number of repeats (5 when it has none)."""
    from dataclasses import replace

    from openretina_data import TestSet

    rng = np.random.default_rng(seed)
    channels, height, width = dataset.data_info.input_shape
    rate_hz = dataset.data_info.frame_rate_hz or 30.0
    lags = max(3, round(0.25 * rate_hz))
    seconds = np.arange(lags) / rate_hz
    sessions = {}
    for name, session in dataset.sessions.items():
        n = session.n_neurons
        ys = rng.uniform(0.25, 0.75, n) * (height - 1)
        xs = rng.uniform(0.25, 0.75, n) * (width - 1)
        metadata = session.neuron_metadata
        if "rf_row" in metadata and "rf_col" in metadata:  # the reader located them (Sridhar STAs):
            ys, xs = (np.asarray(metadata[k], dtype=np.float64) for k in ("rf_row", "rf_col"))
        sigma = max(0.7, 0.08 * min(height, width))
        yy, xx = np.mgrid[0:height, 0:width]
        spatial = np.exp(
            -((yy[None] - ys[:, None, None]) ** 2 + (xx[None] - xs[:, None, None]) ** 2) / (2 * sigma**2)
        )
        colour = rng.dirichlet(np.ones(channels), n) * rng.choice([-1.0, 1.0], n)[:, None]
        tau = rng.uniform(0.03, 0.06, n)[:, None]
        temporal = (seconds / tau) * np.exp(-seconds / tau) - 0.5 * (seconds / (2 * tau)) * np.exp(
            -seconds / (2 * tau)
        )
        temporal /= np.linalg.norm(temporal, axis=1, keepdims=True)
        if flashed:
            temporal = np.ones((n, 1))

        def drive(
            movie: Any,
            spatial: np.ndarray = spatial,
            colour: np.ndarray = colour,
            temporal: np.ndarray = temporal,
        ) -> np.ndarray:
            frames = movie.read_all().astype(np.float64)  # (C, T, H, W) as batches see them
            projected = np.einsum("cthw,nhw,nc->nt", frames, spatial, colour)
            return np.stack(
                [np.convolve(projected[i], temporal[i])[: projected.shape[1]] for i in range(len(temporal))]
            )

        train = drive(session.train_movie)
        centre, spread = train.mean(1, keepdims=True), train.std(1, keepdims=True) + 1e-12

        def rates(d: np.ndarray, centre: np.ndarray = centre, spread: np.ndarray = spread) -> np.ndarray:
            shaped = np.logaddexp(0.0, 2.0 * (d - centre) / spread - 1.0)
            return shaped

        scale = SPIKES_PER_FRAME / rates(train).mean(1, keepdims=True)
        responses = rng.poisson(scale * rates(train)).astype(np.float32)
        tests = {}
        for stimulus, test in session.tests.items():
            repeats = test.trials.shape[0] if test.trials is not None and test.trials.shape[0] >= 2 else 5
            lam = scale * rates(drive(test.movie))
            trials = rng.poisson(np.broadcast_to(lam, (repeats, *lam.shape))).astype(np.float32)
            tests[stimulus] = TestSet(test.movie, trials.mean(0), trials)
        sessions[name] = replace(session, train_responses=responses, tests=tests)
    return type(dataset)(sessions, dataset.data_info, [*dataset.notes, "responses simulated (LN-Poisson)"])


# --- the small files, one per format -------------------------------------------------------------


def data_overrides(name: str, root: Path) -> tuple[list[str], bool]:
    """(overrides pointing ``name`` at a small file in its format, wrap the reader with LN responses)."""
    sys.path.insert(0, str(REPO / "tests" / "data"))
    cache = f"paths.cache_dir={root / 'cache'}"
    if name in ("hdf5_core_readout", "template_outer_config"):
        directory = root / "tutorial"
        if not directory.is_dir():
            from openretina_data import write_tutorial_dataset

            write_tutorial_dataset(directory, num_stimuli=3, seed=1)
        return [f"paths.data_dir={directory}", "data_io.test_names=[random_noise_2]"], True
    if name == "simulated_retina_core_readout":
        return [
            cache,
            "data_io.generate.train_frames=3000",
            "data_io.generate.neurons_per_session=8",
            "data_io.generate.test_frames=300",
            "data_io.generate.test_trials=5",
        ], False
    if name.startswith("hoefling_2024"):
        from fixtures_published import write_hoefling_fixture

        files = write_hoefling_fixture(root / "hoefling", rois_per_session=8)
        return [
            f"data_io.responses_path={files['responses']}",
            f"data_io.movies_path={files['movies']}",
            cache,
            "data_io.quality_checks.verbose=false",
        ], True
    if name == "maheswaranathan_2023_core_readout":
        from fixtures_published import write_maheswaranathan_fixture

        data = write_maheswaranathan_fixture(root / "maheswaranathan", n_cells=6, n_train=3000, n_test=300)
        return [f"data_io.base_data_path={data}", cache], True
    if name == "goldin_2022_core_readout":
        from fixtures_published import write_goldin_fixture

        data = write_goldin_fixture(root / "goldin", n_cells=6, n_train=3000, n_test=30)
        return [f"paths.data_dir={data}", cache, "+data_io.ln_flashed=true"], True
    if name == "karamanlis_2024_core_readout":
        from fixtures_published import write_karamanlis_fixture

        data = write_karamanlis_fixture(
            root / "karamanlis", n_cells=7, n_blocks=16, block_frames=150, test_frames=300, n_repeats=5
        )
        return [f"paths.data_dir={data}", cache], True
    if name.startswith(("sridhar_2025", "vystrcilova_2024")):
        from fixtures_sridhar import write_sridhar_nm_fixture, write_sridhar_wn_fixture

        white_noise = "_wn_" in name
        single_cell = name in SINGLE_CELL
        folder = root / ("sridhar_wn" if white_noise else "sridhar_nm") / ("stas" if single_cell else "plain")
        if white_noise:
            data = write_sridhar_wn_fixture(
                folder, frames_per_trial=300, n_trials=10, test_frames=300, repeats=5, stas=single_cell
            )
        else:
            data = write_sridhar_nm_fixture(
                folder, frames_per_trial=150, n_trials=20, test_frames=300, repeats=5, stas=single_cell
            )
        overrides = [
            f"paths.data_dir={data}",
            cache,
            "data_io.test_frames=300",
            "~data_io.excluded_cells",  # the published lists name cells the fixture lacks
            "+data_io.excluded_cells={01: [1]}",
        ]
        return overrides + SINGLE_CELL.get(name, []), True
    raise ValueError(f"no small file for {name}")


SINGLE_CELL: dict[str, list[str]] = {
    "vystrcilova_2024_nm_ln": ["data_io.cells={01: [1]}"],
    "vystrcilova_2024_wn_ln": [],
    "sridhar_2025_nm_single_cell_sc": ["data_io.sessions=['01']"],
}

KEYS = (
    "val/correlation",
    "val/baseline_correlation",
    "test/correlation",
    "test/baseline_correlation",
)


def run_config(name: str, root: Path, epochs: int, extra: list[str] | None = None) -> dict[str, Any]:
    overrides, wrap = data_overrides(name, root)
    overrides += extra or []
    if wrap:
        from openretina_cli.config.compose import compose_config

        target = str(compose_config(name, overrides).data_io._target_)
        overrides += [
            "data_io._target_=baseline_formats.load_with_ln_responses",
            f"+data_io.ln_target={target}",
        ]
    log_dir = root / "logs" / name
    args = [
        sys.executable,
        "-m",
        "openretina_cli.main",
        "train",
        "--config-name",
        name,
        f"paths.log_dir={log_dir}",
        f"trainer.max_epochs={epochs}",
        "trainer.accelerator=cpu",
        "++trainer.enable_progress_bar=false",
        "report=false",
        *overrides,
    ]
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=root, check=False)
    wall = time.perf_counter() - started
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / "train_output.log").write_text(done.stdout + done.stderr)
    placed = re.search(r"receptive-field centres of (\d+/\d+) neurons", done.stdout + done.stderr)
    runs = sorted((log_dir / "runs").glob("*/*/results.json"))
    if done.returncode != 0 or not runs:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"config": name, "error": " | ".join(tail), "wall_s": round(wall, 1)}
    readouts = {"readouts_placed_by_sta": placed.group(1) if placed else None}
    results = json.loads(runs[-1].read_text())
    metrics = results["metrics"]
    baseline = results.get("baseline", {})
    return {
        "config": name,
        "overrides": extra or [],
        **{key: metrics.get(key) for key in KEYS},
        "epochs": results["epochs"],
        "wall_s": round(wall, 1),
        "baseline_s": results["timing_s"].get("baseline"),
        "baseline_method": baseline.get("method"),
        "training_frames": baseline.get("training_frames"),
        "neurons": sum(1 for key in metrics if key.startswith("val/") and key.endswith("/correlation"))
        or None,
        **readouts,
    }


def baseline_only(name: str, root: Path) -> dict[str, Any]:
    """No training: the baseline (and the config's untrained model) on the same small file."""
    from openretina_cli.config.compose import compose_config
    from openretina_cli.config.data import EpochBatches, build_splits, load_checked_dataset
    from openretina_cli.config.model import build_model
    from openretina_cli.evaluation.baseline import evaluate_baseline
    from openretina_cli.evaluation.per_neuron import evaluate, run_scores
    from openretina_data.batching import ValidationBatches

    overrides, wrap = data_overrides(name, root)
    if wrap:
        target = str(compose_config(name, overrides).data_io._target_)
        overrides += [
            "data_io._target_=baseline_formats.load_with_ln_responses",
            f"+data_io.ln_target={target}",
        ]
    sys.path.insert(0, str(HERE))
    started = time.perf_counter()
    cfg = compose_config(name, overrides)
    dataset = load_checked_dataset(cfg).dataset
    splits = build_splits(cfg, dataset)
    model = build_model(cfg.model, dataset).eval()
    batches = EpochBatches(ValidationBatches(dataset, splits, int(cfg.dataloader.batch_size)))
    evaluation = evaluate(model, dataset, batches, "cpu", None)
    cpu = time.process_time()
    summary = evaluate_baseline(evaluation, dataset, splits)
    cpu = time.process_time() - cpu
    metrics = run_scores(evaluation)
    return {
        "config": name,
        "mode": "baseline only (untrained model)",
        **{key: metrics.get(key) for key in KEYS},
        "epochs": 0,
        "wall_s": round(time.perf_counter() - started, 1),
        "baseline_s": round(summary["fit_s"] + summary["score_s"], 2),
        "baseline_cpu_s": round(cpu, 2),
        "baseline_method": summary["method"],
        "training_frames": summary["training_frames"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument(
        "--set", nargs="*", default=[], help="extra config overrides for every run (KEY=VALUE)"
    )
    parser.add_argument(
        "--baseline-only", action="store_true", help="no training: baseline and untrained model"
    )
    parsed = parser.parse_args()
    from openretina_cli.config.paths import packaged_config_dir

    names = sorted(p.stem for p in packaged_config_dir().glob("*.yaml") if p.stem != "template_outer_config")
    if parsed.only:
        names = [n for n in names if n in parsed.only]
    parsed.out.mkdir(parents=True, exist_ok=True)
    path = parsed.out / "baseline_formats.json"
    rows = json.loads(path.read_text()) if path.is_file() else []
    for name in names:
        load = os.getloadavg()[0]
        try:
            row = (
                baseline_only(name, parsed.out)
                if parsed.baseline_only
                else run_config(name, parsed.out, parsed.epochs, parsed.set)
            )
        except Exception as ex:  # one config's failure must not stop the others
            row = {"config": name, "error": f"{type(ex).__name__}: {ex}"[:300], "wall_s": None}
        row["load_1min_before"] = round(load, 2)
        rows = [r for r in rows if r["config"] != name] + [row]
        path.write_text(json.dumps(rows, indent=2) + "\n")
        print(json.dumps(row), flush=True)
    print(table(rows))


def table(rows: list[dict[str, Any]]) -> str:
    def cell(value: Any) -> str:
        return "–" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = [
        "| config | val corr. (model / baseline) | test corr. (model / baseline) "
        "| epochs | run (s) | baseline (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| `{r['config']}` | failed: {r['error'][:80]} | | | {r['wall_s']} | |")
            continue
        lines.append(
            f"| `{r['config']}` | {cell(r['val/correlation'])} / {cell(r['val/baseline_correlation'])} | "
            f"{cell(r['test/correlation'])} / {cell(r['test/baseline_correlation'])} | {r['epochs']} | "
            f"{r['wall_s']} | {cell(r['baseline_s'])} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
