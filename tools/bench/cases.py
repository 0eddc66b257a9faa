"""The benchmark cases (issue 7, plus the speed/memory targets of issues 3 and 5).

Each case function takes the shared `Context` and returns one or more `CaseResult`s. Inside a
case the two tools always alternate run by run (stats.interleaved_order), so both see the same
machine state; every summary is over pairs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import contenders as ct
import datasets
from folders import make_own_folder, remove_own_folder
from measure import run_measured
from peer import PeerEnv, clean_env
from report import CaseResult, Target
from stats import interleaved_order
from timings import OUR_PHASES, our_phases, run_metrics
from user_install import MODELS_INSTALL, ensure_user_install

NAN = float("nan")
TRAIN_TIMEOUT_S = 1800.0

TARGETS = [
    Target("tutorial", "throughput", at_least=3.0, source="issues 5, 7"),
    Target("tutorial", "first_step_s", at_most=0.5, source="issue 7"),
    Target("tutorial", "first_step_s", at_most=2.5, on="ours", source="issue 5: < 2.5 s"),
    Target("tutorial", "peak_rss_mib", at_most=0.5, source="issue 7"),
    Target("tutorial", "post_fit_s", at_most=0.3, source="issue 7: evaluation ≤ 0.3×"),
    Target("tutorial", "eval_per_epoch", at_most=1.0, on="ours", source="issue 5: eval ≤ one epoch"),
    Target("tutorial", "data_share", at_most=0.05, on="ours", source="issue 3: < 5 % of an epoch"),
    *[
        Target(f"scaling/{scale}", "peak_rss_mib", at_most=0.5, source="issue 7: every scale")
        for scale in (
            "sessions_2",
            "sessions_4",
            "sessions_8",
            "sessions_16",
            "length_2x",
            "length_4x",
            "length_8x",
        )
    ],
    Target("quality", "test_correlation", at_least=1.0, source="issue 7: higher than 1.1.1"),
    Target("quality", "fraction_of_ceiling", at_least=0.9, on="ours", source="issues 5, 7: ≥ 0.9"),
    Target("data", "open_to_first_batch_s", at_most=0.5, on="ours", source="issue 3: < 0.5 s"),
    Target("data", "memory_over_float32", at_most=1.3, on="ours", source="issue 3: ≤ 1.3×"),
    Target("data/streaming_8x", "rss_increase", at_most=0.10, on="ours", source="issue 3: < 10 %"),
]


@dataclass
class Context:
    peer_env: PeerEnv
    pairs: int
    quick: bool
    epochs: int
    scaling_epochs: int
    quality_budget_s: int
    data_root: Path
    run_root: Path
    cache_dir: Path
    ours_venv: Path = ct.OURS_VENV  # the environment our tool runs from
    scales: list[str] | None = None  # scaling case: a subset of scaling_scales(), None = all
    trained: dict[str, Path] = field(default_factory=dict)  # tool -> run directory (tutorial case)
    zoo_budget_s: int = 120  # zoo case: training time per run
    zoo_members: list[Any] | None = None  # zoo case: zoo.Member subset, None = all
    zoo_tools: tuple[str, ...] = ("ours", "peer")  # zoo case: which tools run
    zoo_overrides: list[str] = field(default_factory=list)  # zoo case: extra Hydra overrides for ours
    # tutorial case: "peer" trains ours with 1.x's tutorial architecture (identical settings),
    # "default" with our own default config as a user runs it (issue 24: the default's cost).
    tutorial_model: str = "peer"
    # 1.1.1's trainer.precision in every run; None keeps its configs' own (16-mixed in the tutorial).
    peer_precision: str | None = None

    def contender(self, tool: str) -> ct.Contender:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        if tool == "ours":
            return ct.ours(self.cache_dir, self.ours_venv)
        return ct.peer(self.peer_env, self.cache_dir, self.peer_precision)

    def tutorial_data(self) -> Path:
        return datasets.peer_generated(self.peer_env, self.data_root, "tutorial")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def train_run(
    ctx: Context, tool: str, tag: str, config_name: str, overrides: list[str]
) -> tuple[dict[str, float], Path | None]:
    """One measured training run; returns its metrics and its run directory (None if it failed)."""
    contender = ctx.contender(tool)
    log_dir = ctx.run_root / tag
    remove_own_folder(log_dir, "command.txt")
    make_own_folder(log_dir)
    timings = log_dir / "timings.json"
    cmd = contender.train_command(config_name, [*overrides, f"paths.log_dir={log_dir}"])
    (log_dir / "command.txt").write_text(" ".join(cmd) + "\n")
    result = run_measured(
        cmd,
        env=contender.run_env(BENCH_TIMINGS_OUT=str(timings)),
        cwd=log_dir,
        log_path=log_dir / "log.txt",
        timeout_s=TRAIN_TIMEOUT_S,
    )
    metrics: dict[str, float] = {
        "returncode": float(result.returncode),
        "wall_s": result.wall_s,
        "peak_rss_mib": result.peak_rss_mib,
        "peak_tree_rss_mib": result.peak_tree_rss_mib,
    }
    if timings.is_file():
        metrics.update(run_metrics(json.loads(timings.read_text()), result.t_start + result.wall_s))
        metrics["eval_per_epoch"] = metrics["post_fit_s"] / metrics["epoch_s"] if metrics["epoch_s"] else NAN
    run_dir = ct.find_run_dir(log_dir) if result.returncode == 0 else None
    if tool == "ours" and run_dir is not None and (run_dir / "results.json").is_file():
        # Our evaluation is not a Lightning loop the timer sees; the run times it itself, and every
        # other phase too (issue 24).
        results = json.loads((run_dir / "results.json").read_text())
        metrics["eval_s"] = results["timing_s"]["evaluation"]
        metrics.update(our_phases(results, result.wall_s))
    status = "ok" if result.returncode == 0 else f"FAILED (exit {result.returncode})"
    print(f"  {tag}: {status}, {result.wall_s:.1f} s, peak RSS {result.peak_rss_mib:.0f} MiB", flush=True)
    if result.returncode != 0:
        print(_tail(log_dir / "log.txt"), flush=True)
        return {k: (v if k == "returncode" else NAN) for k, v in metrics.items()}, None
    return metrics, run_dir


def _record(case: CaseResult, pair: int, tool: str, metrics: dict[str, float], **extra: Any) -> None:
    case.runs.append({"pair": pair, "tool": tool, "metrics": metrics, **extra})


def warm_up(ctx: Context, tools: tuple[str, ...] = ct.TOOLS) -> None:
    """One unmeasured tutorial epoch per tool before any case.

    The first start after an installation is slower for both tools (0.2-0.8 s more to the first
    step in our reruns; the harness reinstalls our packages whenever their sources change), which
    would otherwise land in pair 0 of the first case only.
    """
    data = ctx.tutorial_data()
    for tool in tools:
        overrides = [*ct.tutorial_overrides(data), "trainer.max_epochs=1"]
        if tool == "ours":
            overrides += ct.PEER_TUTORIAL_ARCHITECTURE
        metrics, _ = train_run(ctx, tool, f"warm-up/{tool}", "hdf5_core_readout", overrides)
        print(f"  warm-up ({tool}): first step after {metrics.get('first_step_s', NAN):.2f} s", flush=True)


# ------------------------------------------------------------------------------------------------
# (1) the tutorial config at identical settings


TUTORIAL_METRICS = [
    "first_step_s",
    "throughput",
    "load_throughput",
    "step_s",
    "epoch_s",
    "post_fit_s",
    "eval_s",
    "peak_rss_mib",
    "data_share",
    "fetch_s",
    "eval_per_epoch",
    "steps",
    "wall_s",
    # phase by phase (issue 24): both tools from the timer, ours also from its own record
    "to_fit_s",
    "fit_to_first_step_s",
    "fit_s",
    *(metric for _, metric in OUR_PHASES),
    "phase_exit_s",
    "rss_imports_mib",
    "rss_fit_mib",
    "rss_report_mib",
]


def tutorial(ctx: Context) -> Iterator[CaseResult]:
    """Yields the case after every pair, so a run stopped early (a timing window) keeps its pairs."""
    data = ctx.tutorial_data()
    ours_model = (
        "ours with its own default config (hdf5_core_readout as a user runs it)"
        if ctx.tutorial_model == "default"
        else "ours with 1.x's tutorial architecture (3 layers × 8 channels, 8-frame/8-px kernels), "
        "same batch_size/train_chunk_size/clip_length/num_val_clips"
    )
    case = CaseResult(
        "tutorial",
        f"1.x tutorial command on 1.x's tutorial data (2 sessions, 3×16×8 px), {ctx.epochs} epochs; "
        f"{ours_model}; ours at 32 bits, 1.1.1 at "
        + (f"precision {ctx.peer_precision}" if ctx.peer_precision else "its config's precision (16-mixed)"),
        TUTORIAL_METRICS,
    )
    for pair, tool in interleaved_order(ctx.pairs):
        overrides = [*ct.tutorial_overrides(data), f"trainer.max_epochs={ctx.epochs}"]
        if tool == "ours" and ctx.tutorial_model != "default":
            overrides += ct.PEER_TUTORIAL_ARCHITECTURE
        metrics, run_dir = train_run(ctx, tool, f"tutorial/{tool}-{pair}", "hdf5_core_readout", overrides)
        _record(case, pair, tool, metrics, run_dir=str(run_dir) if run_dir else None)
        if run_dir is not None:
            ctx.trained[tool] = run_dir
        if tool == "peer":
            yield case


# ------------------------------------------------------------------------------------------------
# (2) data scaling


def scaling_scales(quick: bool, only: list[str] | None = None) -> list[tuple[str, int, int]]:
    """(name, sessions, clip-length multiplier) of each scale; the 1.x generator makes each one."""
    if quick:
        return [("sessions_2", 2, 1), ("sessions_4", 4, 1), ("length_2x", 2, 2)]
    scales = [
        ("sessions_2", 2, 1),
        ("sessions_4", 4, 1),
        ("sessions_8", 8, 1),
        ("sessions_16", 16, 1),
        ("length_2x", 2, 2),
        ("length_4x", 2, 4),
        ("length_8x", 2, 8),
    ]
    if only:
        unknown = sorted(set(only) - {name for name, *_ in scales})
        if unknown:
            raise ValueError(
                f"--scales: unknown {', '.join(unknown)}; choose from {', '.join(n for n, *_ in scales)}"
            )
        scales = [scale for scale in scales if scale[0] in only]
    return scales


def scaling(ctx: Context) -> Iterator[CaseResult]:
    for name, sessions, stretch in scaling_scales(ctx.quick, ctx.scales):
        if (sessions, stretch) == (2, 1):
            data = ctx.tutorial_data()
        else:
            data = datasets.peer_generated(
                ctx.peer_env, ctx.data_root, name, sessions=sessions, clip_length=75 * stretch
            )
        case = CaseResult(
            f"scaling/{name}",
            f"{sessions} sessions, movies {stretch}× the tutorial's length "
            f"({datasets.float32_mib(data):.0f} MiB "
            f"as float32), {ctx.scaling_epochs} epoch(s), tutorial settings as in case 1",
            ["epoch_s", "peak_rss_mib", "throughput", "first_step_s", "wall_s"],
        )
        for pair, tool in interleaved_order(ctx.pairs):
            overrides = [*ct.tutorial_overrides(data), f"trainer.max_epochs={ctx.scaling_epochs}"]
            if tool == "ours":
                overrides += ct.PEER_TUTORIAL_ARCHITECTURE
            metrics, _ = train_run(ctx, tool, f"scaling/{name}/{tool}-{pair}", "hdf5_core_readout", overrides)
            _record(case, pair, tool, metrics)
            if tool == "peer":
                yield case  # saved after every pair, so an interrupted run keeps what it measured


# ------------------------------------------------------------------------------------------------
# (3) quality on the simulated retina, same wall-clock budget

RETINA_TEST = "natural_test"


def peer_view(data: Path, target: Path) -> Path:
    """The retina dataset as 1.x can read it: the (trials, N, T) test responses replaced by their
    trial mean (1.x has no trials axis), text metadata left out. Same stimuli, same numbers."""
    import h5py

    marker = target / "bench-view.json"
    sources = sorted([*data.glob("*.h5"), *data.glob("*.hdf5")])
    # A view of data regenerated since (same folder, other files) must be rebuilt, not reused.
    stamp = {
        "source": str(data),
        "files": [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in sources],
    }
    if marker.is_file() and json.loads(marker.read_text()) == stamp:
        return target
    remove_own_folder(target, "bench-view.json")
    make_own_folder(target)
    (target / "stimuli").symlink_to((data / "stimuli").resolve())
    for src in sources:
        with h5py.File(src, "r") as f, h5py.File(target / src.name, "w") as g:
            for key, item in f.items():
                if isinstance(item, h5py.Dataset):
                    values = item[()]
                    g[key] = (
                        values.mean(axis=0) if key.startswith("responses_") and values.ndim == 3 else values
                    )
                else:
                    for sub, ds in item.items():
                        if ds.dtype.kind in "biuf":
                            g[f"{key}/{sub}"] = ds[()]
    marker.write_text(json.dumps(stamp))
    return target


def score_predictions(predictions: Path, data: Path) -> dict[str, float]:
    """Mean per-neuron test correlation with the trial mean, and the ground-truth ceiling on the
    same frames (the true rate's correlation with the trial mean), pooled over sessions."""
    import h5py
    import numpy as np

    def corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # per column of (T, N) arrays
        a = a - a.mean(axis=0)
        b = b - b.mean(axis=0)
        den = np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, (a * b).sum(axis=0) / den, np.nan)

    model_corr, ceiling = [], []
    preds = np.load(predictions)
    with h5py.File(data / "ground_truth" / "ground_truth.h5", "r") as truth:
        for key in preds.files:
            session, stimulus = key.split("/")
            pred = preds[key]
            files = [p for p in (data / f"{session}.h5", data / f"{session}.hdf5") if p.is_file()]
            with h5py.File(files[0], "r") as f:
                observed = f[f"responses_{stimulus}"][()]
            trial_mean = (observed.mean(axis=0) if observed.ndim == 3 else observed).T  # (T, N)
            rates = truth[f"{session}/rates_{stimulus}"][()].T
            frames = pred.shape[0]
            model_corr.append(corr(pred, trial_mean[-frames:]))
            ceiling.append(corr(rates[-frames:], trial_mean[-frames:]))
    m, c = np.concatenate(model_corr), np.concatenate(ceiling)
    ok = np.isfinite(m) & np.isfinite(c)
    score = float(np.nanmean(np.where(np.isfinite(m), m, 0.0)))  # a silent prediction scores 0
    return {
        "test_correlation": score,
        "ceiling": float(np.mean(c[ok])) if ok.any() else NAN,
        "fraction_of_ceiling": score / float(np.mean(c[np.isfinite(c)])),
        "neurons": float(m.size),
    }


def _helper(ctx: Context, tool: str, command: str, *args: str) -> tuple[list[str], dict[str, str]]:
    """Command line and environment for one of the per-tool helper scripts (ours_run/peer_run.py)."""
    if tool == "ours":
        cmd = [str(ctx.ours_venv / "bin" / "python"), str(ct.BENCH_SRC / "ours_run.py"), command, *args]
        return cmd, clean_env(venv=ctx.ours_venv)
    cmd = [str(ctx.peer_env.python), str(ct.BENCH_SRC / "peer_run.py"), command, *args]
    return cmd, clean_env({"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}, venv=ctx.peer_env.venv)


def _predict_test(ctx: Context, tool: str, run_dir: Path, data: Path, out: Path) -> bool:
    common = ["--data-dir", str(data), "--test-names", RETINA_TEST, "--out", str(out)]
    if tool == "ours":
        cmd, env = _helper(ctx, tool, "predict-test", "--model", str(run_dir), *common)
    else:
        ckpts = sorted((run_dir / "checkpoints").glob("*.ckpt"))
        if not ckpts:
            print(f"  no checkpoint in {run_dir / 'checkpoints'}", flush=True)
            return False
        cmd, env = _helper(ctx, tool, "predict-test", "--ckpt", str(ckpts[0]), *common)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"  predict-test ({tool}) failed:\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}", flush=True)
    return done.returncode == 0


def _budget(seconds: int) -> str:
    return f"00:{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def quality(ctx: Context) -> list[CaseResult]:
    options = ["--option", "train_frames=3000"] if ctx.quick else []
    data = datasets.ours_retina(ctx.data_root, "retina-quick" if ctx.quick else "retina", options)
    view = peer_view(data, ctx.data_root / ("retina-quick-1x-view" if ctx.quick else "retina-1x-view"))
    c, _, h, w = _stimulus_shape(data)
    budget = _budget(ctx.quality_budget_s)
    case = CaseResult(
        "quality",
        f"simulated retina with ground truth (ours `create-data --kind retina`: {c} colours, {h}×{w} px), "
        f"each tool's own hdf5_core_readout defaults, the same training budget of {ctx.quality_budget_s} s "
        "(trainer.max_time; early stopping as configured); test correlation = mean over neurons of the "
        "per-neuron correlation with the trial mean over the whole test movie, "
        "computed the same way for both",
        ["test_correlation", "fraction_of_ceiling", "epochs", "fit_s", "wall_s", "peak_rss_mib"],
    )
    shape = [f"data_io.color_channels={c}", f"data_io.video_height={h}", f"data_io.video_width={w}"]
    for pair, tool in interleaved_order(ctx.pairs):
        overrides = [
            f"paths.data_dir={data if tool == 'ours' else view}",
            f"data_io.test_names=[{RETINA_TEST}]",
            *shape,
            "trainer.max_epochs=10000",
            f"+trainer.max_time={budget}",
        ]
        tag = f"quality/{tool}-{pair}"
        metrics, run_dir = train_run(ctx, tool, tag, "hdf5_core_readout", overrides)
        if run_dir is not None:
            out = ctx.run_root / tag / "test_predictions.npz"
            if _predict_test(ctx, tool, run_dir, data, out):
                metrics.update(score_predictions(out, data))
        _record(case, pair, tool, metrics)
    return [case]


def _stimulus_shape(data: Path) -> tuple[int, int, int, int]:
    import numpy as np

    first = sorted((data / "stimuli").glob("*.npy"))[0]
    return tuple(np.load(first, mmap_mode="r").shape)  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------------
# (4) inference: import time, installed size, prediction latency

IMPORT_PROBE = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def _import_seconds(python: Path, module: str, env: dict[str, str]) -> float:
    done = subprocess.run(
        [str(python), "-c", IMPORT_PROBE.format(module=module)], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        print(f"  import {module} failed: {done.stderr[-800:]}", flush=True)
        return NAN
    return float(done.stdout.strip().splitlines()[-1])


def directory_mib(path: Path) -> float:
    """Bytes of the files under `path` (links not followed), in MiB."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            p = Path(root) / name
            if not p.is_symlink():
                total += p.stat().st_size
    return total / 2**20


def models_only_venv(bench_dir: Path) -> Path:
    """A fresh venv with only openretina-models (and its torch, numpy, safetensors).

    torch is the same 2.13.0 CPU build as the peer's, so the two sizes differ only by what each
    tool pulls in besides torch.
    """
    return ensure_user_install("models-venv", MODELS_INSTALL, bench_dir)


def _latency(ctx: Context, tool: str, run_dir: Path, out: Path) -> dict[str, float]:
    import statistics

    if tool == "ours":
        cmd, env = _helper(ctx, tool, "predict-latency", "--model", str(run_dir))
    else:
        ckpts = sorted((run_dir / "checkpoints").glob("*.ckpt"))
        if not ckpts:
            return {"latency_ms": NAN}
        cmd, env = _helper(ctx, tool, "predict-latency", "--ckpt", str(ckpts[0]))
    cmd += ["--frames", "300", "--repeats", "20", "--out", str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"  predict-latency ({tool}) failed: {done.stderr[-1500:]}", flush=True)
        return {"latency_ms": NAN}
    record = json.loads(out.read_text())
    return {"latency_ms": 1000 * statistics.median(record["latency_s"]), "model_load_s": record["load_s"]}


def inference(ctx: Context) -> Iterator[CaseResult]:
    imports = CaseResult(
        "inference/import",
        "`import openretina_models` (ours, in the environment it trains from) vs "
        "`import openretina.models` (1.1.1), a fresh interpreter each time",
        ["import_s"],
    )
    ours_env, peer_env = clean_env(venv=ctx.ours_venv), clean_env(venv=ctx.peer_env.venv)
    for pair, tool in interleaved_order(max(ctx.pairs, 5)):
        if tool == "ours":
            seconds = _import_seconds(ctx.ours_venv / "bin" / "python", "openretina_models", ours_env)
        else:
            seconds = _import_seconds(ctx.peer_env.python, "openretina.models", peer_env)
        _record(imports, pair, tool, {"import_s": seconds})
    yield imports

    venv = models_only_venv(ctx.peer_env.venv.parent)
    lean = CaseResult(
        "inference/import_models_only",
        "`import openretina_models` in a fresh venv holding only openretina-models (torch 2.13.0 CPU, "
        "the peer's torch build) vs `import openretina.models` in the peer's venv",
        ["import_s"],
    )
    lean_env = clean_env(venv=venv)
    for pair, tool in interleaved_order(max(ctx.pairs, 5)):
        if tool == "ours":
            seconds = _import_seconds(venv / "bin" / "python", "openretina_models", lean_env)
        else:
            seconds = _import_seconds(ctx.peer_env.python, "openretina.models", peer_env)
        _record(lean, pair, tool, {"import_s": seconds})
    yield lean

    sizes = CaseResult(
        "inference/installed_size",
        "installed size (MiB) of a fresh venv with only openretina-models vs the peer's venv "
        "(both with the same torch 2.13.0 CPU build, the peer without torchvision); sizes do not vary "
        "between runs, so one measurement each",
        ["venv_mib", "site_packages_mib"],
    )
    for tool, path in (("ours", venv), ("peer", ctx.peer_env.venv)):
        site = next(path.glob("lib/python*/site-packages"))
        _record(sizes, 0, tool, {"venv_mib": directory_mib(path), "site_packages_mib": directory_mib(site)})
    yield sizes

    latency = CaseResult(
        "inference/latency",
        "prediction of a 300-frame movie by the model trained in the tutorial case (same architecture); "
        "ours via openretina_models.predict, 1.1.1 via the model's forward; median of 20 calls per run",
        ["latency_ms", "model_load_s"],
    )
    if not all(t in ctx.trained for t in ct.TOOLS):
        latency.notes.append("not measured: the tutorial case did not leave a trained model for both tools")
    else:
        for pair, tool in interleaved_order(max(ctx.pairs, 5)):
            out = ctx.run_root / "inference" / f"latency-{tool}-{pair}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            _record(latency, pair, tool, _latency(ctx, tool, ctx.trained[tool], out))
    yield latency


# ------------------------------------------------------------------------------------------------
# issue 3: the data pipeline on its own


def _probe(ctx: Context, tool: str, data: Path, out: Path, in_memory: str = "auto") -> dict[str, float]:
    if tool == "ours":
        cmd, env = _helper(
            ctx,
            tool,
            "probe-data",
            "--data-dir",
            str(data),
            "--test-names",
            "random_noise_2,random_noise_3",
            "--in-memory",
            in_memory,
        )
    else:
        cmd, env = _helper(
            ctx,
            tool,
            "probe-data",
            "--config-path",
            str(ctx.peer_env.configs),
            f"paths.data_dir={data}",
            "data_io.test_names=[random_noise_2,random_noise_3]",
            f"paths.cache_dir={ctx.cache_dir}",
        )
    done = subprocess.run([*cmd, "--out", str(out)], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"  probe-data ({tool}) failed: {done.stderr[-1500:]}", flush=True)
        return {}
    record = json.loads(out.read_text())
    size = datasets.float32_mib(data)
    return {
        "open_to_first_batch_s": record["open_to_first_batch_s"],
        "rest_of_epoch_s": record["rest_of_epoch_s"],
        "peak_rss_mib": record["peak_rss_mib"],
        "data_rss_mib": record["peak_rss_mib"] - record["rss_before_mib"],
        "memory_over_float32": (record["peak_rss_mib"] - record["rss_before_mib"]) / size,
        "data_float32_mib": size,
    }


def data_pipeline(ctx: Context) -> list[CaseResult]:
    data = ctx.tutorial_data()
    probe = CaseResult(
        "data",
        "data path alone on the tutorial data, as each tool's train command builds it: open the files to "
        "the first training batch, one epoch of batches, peak RSS over the RSS after imports "
        "(memory_over_float32 = that increase / the data's float32 size); "
        "ours in its default (in-memory) mode",
        ["open_to_first_batch_s", "rest_of_epoch_s", "data_rss_mib", "memory_over_float32", "peak_rss_mib"],
    )
    (ctx.run_root / "data").mkdir(parents=True, exist_ok=True)
    for pair, tool in interleaved_order(max(ctx.pairs, 3)):
        _record(probe, pair, tool, _probe(ctx, tool, data, ctx.run_root / "data" / f"{tool}-{pair}.json"))
    results = [probe]

    stretch = 2 if ctx.quick else 8
    big = datasets.peer_generated(ctx.peer_env, ctx.data_root, f"length_{stretch}x", clip_length=75 * stretch)
    streaming = CaseResult(
        f"data/streaming_{stretch}x",
        f"peak RSS reading a dataset {stretch}× larger ({datasets.float32_mib(big):.0f} vs "
        f"{datasets.float32_mib(data):.0f} MiB float32): ours in streaming mode (in_memory=false), "
        "1.1.1 in its only (in-memory) mode; rss_increase = peak at the large size / peak at 1× − 1",
        ["peak_rss_1x_mib", "peak_rss_large_mib", "rss_increase", "open_to_first_batch_s"],
    )
    for pair, tool in interleaved_order(max(ctx.pairs, 3)):
        mode = "false" if tool == "ours" else "auto"
        small = _probe(ctx, tool, data, ctx.run_root / "data" / f"stream-1x-{tool}-{pair}.json", mode)
        large = _probe(ctx, tool, big, ctx.run_root / "data" / f"stream-big-{tool}-{pair}.json", mode)
        if small and large:
            metrics = {
                "peak_rss_1x_mib": small["peak_rss_mib"],
                "peak_rss_large_mib": large["peak_rss_mib"],
                "rss_increase": large["peak_rss_mib"] / small["peak_rss_mib"] - 1,
                "open_to_first_batch_s": large["open_to_first_batch_s"],
            }
        else:
            metrics = {}
        _record(streaming, pair, tool, metrics)
    results.append(streaming)
    return results


if __name__ == "__main__":  # pragma: no cover - use run.py
    sys.exit("run tools/bench/run.py")
