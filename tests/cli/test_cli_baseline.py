"""The linear-nonlinear baseline beside every evaluation: fitted on training frames only, scored
with the model's metric code, shown in neurons.csv, summary.json, results.json and the console."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import read_results, run_cli
from openretina_cli.evaluation import baseline as bl
from openretina_cli.evaluation.per_neuron import evaluate, run_scores
from openretina_data import DataInfo, Dataset, Movie, SessionData, TestSet
from openretina_data.batching import ValidationBatches
from openretina_data.splits import make_splits
from openretina_models import create_model
from robust_support import TINY, write_small_retina

WARMUP = 4  # temporal kernel 5 of the untrained model below


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def ln_retina(
    *,
    sessions: dict[str, int] | None = None,
    channels: int = 2,
    height: int = 6,
    width: int = 5,
    train_frames: int = 1800,
    test_frames: int = 300,
    trials: int = 4,
    seed: int = 0,
) -> tuple[Dataset, dict[str, np.ndarray]]:
    """A linear-nonlinear-Poisson retina: smooth random filters over 4 lags, softplus, Poisson
    counts. Returns the dataset and each session's true test rates (N, T)."""
    sessions = sessions or {"a": 5}
    rng = np.random.default_rng(seed)
    train_movie = rng.standard_normal((channels, train_frames, height, width)).astype(np.float32)
    test_movie = rng.standard_normal((channels, test_frames, height, width)).astype(np.float32)
    records: dict[str, SessionData] = {}
    rates_by_session: dict[str, np.ndarray] = {}
    for name, n in sessions.items():
        spatial = rng.standard_normal((n, channels, height, width))
        temporal = np.array([0.2, 1.0, 0.5, -0.3])

        def rates(
            movie: np.ndarray, spatial: np.ndarray = spatial, temporal: np.ndarray = temporal
        ) -> np.ndarray:
            drive = np.einsum("nchw,cthw->nt", spatial, movie) / np.sqrt(spatial[0].size)
            filtered = sum(temporal[lag] * np.roll(drive, lag, axis=1) for lag in range(len(temporal)))
            return 2.0 * _softplus(1.5 * filtered - 0.5)

        train_rates, test_rates = rates(train_movie), rates(test_movie)
        test_trials = rng.poisson(test_rates[None].repeat(trials, 0)).astype(np.float32)
        records[name] = SessionData(
            name=name,
            train_movie=Movie(train_movie),
            train_responses=rng.poisson(train_rates).astype(np.float32),
            tests={"test": TestSet(Movie(test_movie), test_trials.mean(0), test_trials)},
            neuron_metadata={"neuron_ids": np.arange(n)},
        )
        rates_by_session[name] = test_rates
    info = DataInfo.describe(records, (channels, height, width), test_stimuli=("test",))
    return Dataset(records, info), rates_by_session


def _model(dataset: Dataset) -> object:
    shape = next(iter(dataset.sessions.values())).train_movie.frame_shape
    model = create_model(
        "core_readout",
        in_shape=shape,
        n_neurons=dataset.n_neurons,
        hidden_channels=[4],
        temporal_kernel_sizes=[WARMUP + 1],
        spatial_kernel_sizes=[3],
    )
    model.eval()
    return model


def _splits(dataset: Dataset) -> object:
    return make_splits(dataset, clip_length=60, num_val_clips=5, train_chunk_size=30, seed=3)


def _evaluate(dataset: Dataset) -> tuple[object, object]:
    splits = _splits(dataset)
    evaluation = evaluate(_model(dataset), dataset, _torch_batches(dataset, splits))
    return evaluation, splits


def _torch_batches(dataset: Dataset, splits: object) -> object:
    from openretina_cli.config.data import EpochBatches

    return EpochBatches(ValidationBatches(dataset, splits, 4))


def _corrupted(dataset: Dataset, splits: object) -> Dataset:
    """Every validation-clip response, every test response, trial and test frame replaced."""
    rng = np.random.default_rng(99)
    sessions = {}
    for name, session in dataset.sessions.items():
        responses = session.train_responses.copy()
        val = splits.sessions[name].val_mask()
        responses[:, val] = rng.normal(50.0, 10.0, (responses.shape[0], int(val.sum())))
        tests = {
            stim: TestSet(
                Movie(rng.standard_normal(test.movie.frames.shape).astype(np.float32)),
                rng.normal(size=test.responses.shape).astype(np.float32),
                None if test.trials is None else rng.normal(size=test.trials.shape).astype(np.float32),
            )
            for stim, test in session.tests.items()
        }
        sessions[name] = replace(session, train_responses=responses, tests=tests)
    return Dataset(sessions, dataset.data_info)


def test_fit_sees_no_validation_or_test_data() -> None:
    dataset, _ = ln_retina()
    splits = _splits(dataset)
    clean = bl.fit_baseline(dataset, splits, WARMUP)
    corrupted = bl.fit_baseline(_corrupted(dataset, splits), splits, WARMUP)
    for ours, theirs in zip(clean.groups, corrupted.groups, strict=True):
        np.testing.assert_array_equal(ours.weights, theirs.weights)
        np.testing.assert_array_equal(ours.intercept, theirs.intercept)
        np.testing.assert_array_equal(ours.nonlinearity, theirs.nonlinearity)
    # ...while the training frames do change it.
    session = dataset.sessions["a"]
    train = splits.sessions["a"].train_mask()
    shifted = session.train_responses.copy()
    shifted[:, train] = np.roll(shifted[:, train], 7, axis=1)
    other = Dataset({"a": replace(session, train_responses=shifted)}, dataset.data_info)
    assert not np.array_equal(
        bl.fit_baseline(other, splits, WARMUP).groups[0].weights, clean.groups[0].weights
    )


def test_reaches_a_good_correlation_on_an_ln_retina() -> None:
    dataset, rates = ln_retina(sessions={"a": 6}, train_frames=2400)
    evaluation, splits = _evaluate(dataset)
    summary = bl.evaluate_baseline(evaluation, dataset, splits)
    result = evaluation.split("test/test").sessions["a"]
    prediction_vs_truth = _truth_correlation(evaluation, dataset, splits, rates["a"])
    assert np.nanmean(prediction_vs_truth) > 0.85
    # Against the trial mean of 4 noisy trials, with the ceiling set by that noise.
    ceiling = np.nanmean(bl.metrics.correlation(rates["a"][:, WARMUP:], result.target))
    assert np.nanmean(result.scores["baseline_correlation"]) > 0.85 * ceiling
    assert summary["splits"]["test/test"]["baseline_correlation"] > 0.5
    assert summary["fit_s"] < 30


def _truth_correlation(evaluation: object, dataset: Dataset, splits: object, rates: np.ndarray) -> np.ndarray:
    fitted = bl.fit_baseline(dataset, splits, evaluation.warmup_frames)
    movie = dataset.sessions["a"].tests["test"].movie
    prediction = fitted.predict("a", bl.pool_movie(movie, fitted.design.pooled), [(WARMUP, len(movie))])
    return bl.metrics.correlation(prediction, rates[:, WARMUP:])


@pytest.mark.parametrize(
    ("sessions", "channels", "height", "width"),
    [({"a": 3, "b": 5}, 2, 6, 5), ({"a": 4}, 3, 7, 4), ({"a": 2, "b": 3}, 1, 1, 1)],
    ids=["two-sessions", "three-colours", "full-field-1x1"],
)
def test_scores_have_the_models_shapes(
    sessions: dict[str, int], channels: int, height: int, width: int
) -> None:
    dataset, _ = ln_retina(
        sessions=sessions, channels=channels, height=height, width=width, train_frames=1200
    )
    evaluation, splits = _evaluate(dataset)
    summary = bl.evaluate_baseline(evaluation, dataset, splits)
    assert summary["pooled_shape"] == [channels, min(height, 8), min(width, 8)]
    assert summary["lags"] == WARMUP + 1
    for split in evaluation.splits:
        for name, result in split.sessions.items():
            n = sessions[name]
            for metric in ("baseline_correlation", *(["baseline_feve"] if split.is_test else [])):
                assert result.scores[metric].shape == (n,), (split.key, name, metric)
            assert np.isfinite(result.scores["baseline_correlation"]).all()
    scores = run_scores(evaluation)
    assert {"val/baseline_correlation", "test/test/baseline_correlation", "test/baseline_correlation"} <= set(
        scores
    )
    assert set(summary["splits"]) == {"val", "test/test", "test"}


def test_untrained_model_is_flagged_worse_than_its_baseline() -> None:
    dataset, _ = ln_retina()
    evaluation, splits = _evaluate(dataset)
    summary = bl.evaluate_baseline(evaluation, dataset, splits)
    assert summary["model_worse_on"] == ["val", "test/test", "test"]
    assert all(v["model_beats_baseline"] is False for v in summary["splits"].values())
    message = bl.worse_than_baseline_message(summary)
    assert message is not None
    assert "test/test" in message


def test_verdict_says_when_the_model_wins() -> None:
    dataset, _ = ln_retina()
    evaluation, splits = _evaluate(dataset)
    bl.evaluate_baseline(evaluation, dataset, splits)
    for split in evaluation.splits:  # a model that predicts the recording itself
        for result in split.sessions.values():
            result.scores["correlation"] = np.ones_like(result.scores["correlation"])
    verdict = bl.verdicts(evaluation)
    assert all(v["model_beats_baseline"] for v in verdict.values())
    assert bl.worse_than_baseline_message({"model_worse_on": [], "splits": verdict}) is None


# Per split and session, the baseline's correlation on `ln_retina` with two sessions sharing one
# training movie (pooled 9 x 7 -> 8 x 7), as the baseline computed them before its speed-up (issue 24).
EARLIER_SCORES = {
    ("val", "a"): [0.6827881409, 0.7006157688, 0.6924726772, 0.6564481319, 0.6359720626],
    ("val", "b"): [
        0.6201407968,
        0.6610355086,
        0.7091012109,
        0.6880708674,
        0.7366341364,
        0.70545236,
        0.6258108167,
    ],
    ("test/test", "a"): [0.8468664731, 0.8530955111, 0.7497902445, 0.8037554621, 0.8139252883],
    ("test/test", "b"): [
        0.8239098087,
        0.8020451109,
        0.8038486288,
        0.7892263215,
        0.8064296684,
        0.8036376061,
        0.7888526909,
    ],
}


def test_scores_are_those_of_the_earlier_implementation() -> None:
    dataset, _ = ln_retina(sessions={"a": 5, "b": 7}, channels=1, height=9, width=7, train_frames=3000)
    evaluation, splits = _evaluate(dataset)
    bl.evaluate_baseline(evaluation, dataset, splits)
    for (key, session), expected in EARLIER_SCORES.items():
        got = evaluation.split(key).sessions[session].scores["baseline_correlation"]
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6, err_msg=f"{key} {session}")


@pytest.mark.parametrize("one_product", [True, False], ids=["one-product", "two-passes"])
def test_pooling_averages_each_window(monkeypatch: pytest.MonkeyPatch, one_product: bool) -> None:
    if not one_product:  # the large-frame way, on small frames
        monkeypatch.setattr(bl, "KRON_ENTRIES", 0)
    frames = np.random.default_rng(1).standard_normal((2, 21, 11, 7)).astype(np.float32)
    pooled = bl.pool_movie(Movie(frames), (4, 3), chunk_frames=8)
    expected = np.empty((21, 2, 4, 3))
    for i in range(4):  # adaptive average pooling's windows, which overlap where sizes do not divide
        rows = slice((i * 11) // 4, -((-(i + 1) * 11) // 4))
        for j in range(3):
            cols = slice((j * 7) // 3, -((-(j + 1) * 7) // 3))
            expected[:, :, i, j] = frames[:, :, rows, cols].mean(axis=(2, 3)).T
    np.testing.assert_allclose(pooled, expected.reshape(21, -1), rtol=1e-5, atol=1e-6)


def test_lagged_features_average_each_lag_bin() -> None:
    pooled = np.random.default_rng(2).standard_normal((40, 3)).astype(np.float32)
    bins = ((0, 1), (2, 4), (5, 5))
    features = bl.lagged_features(pooled, 7, 30, bins)
    expected = [
        np.concatenate([pooled[t - hi : t - lo + 1].astype(np.float64).mean(0) for lo, hi in bins])
        for t in range(7, 30)
    ]
    np.testing.assert_allclose(features, np.array(expected), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="fewer than 5 frames of history"):
        bl.lagged_features(pooled, 4, 10, bins)


def test_weights_are_the_ridge_solution_on_all_training_frames() -> None:
    """The streamed statistics give the same filter as a ridge regression on the whole design."""
    dataset, _ = ln_retina(sessions={"a": 4}, train_frames=1500)
    splits = _splits(dataset)
    fitted = bl.fit_baseline(dataset, splits, WARMUP)
    (group,) = fitted.groups
    design, pooled = fitted.design, bl.pool_movie(dataset.sessions["a"].train_movie, fitted.design.pooled)
    ranges = bl._target_ranges(splits.sessions["a"], design.lags)
    x = np.concatenate([bl.lagged_features(pooled, t0, t1, design.bins) for t0, t1 in ranges])
    y = np.concatenate([dataset.sessions["a"].train_responses[:, t0:t1].T for t0, t1 in ranges]).astype(
        np.float64
    )
    assert len(x) == group.training_frames
    mean, sd = x.mean(0), x.std(0)
    standard = (x - mean) / sd
    for neuron in range(y.shape[1]):
        penalty = group.ridge[neuron] * len(x) * np.eye(x.shape[1])
        w = np.linalg.solve(
            standard.T @ standard + penalty, standard.T @ (y[:, neuron] - y[:, neuron].mean())
        )
        np.testing.assert_allclose(group.weights[:, neuron], w / sd, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(group.intercept[neuron], y[:, neuron].mean() - mean @ (w / sd), atol=1e-8)


def test_design_stays_small_on_large_frames() -> None:
    design = bl.choose_design((3, 128, 96), warmup_frames=40)
    assert design.n_features <= bl.MAX_FEATURES
    assert design.lags == 41
    assert len(design.bins) == bl.MAX_LAG_BINS
    assert bl.choose_design((1, 1, 1), warmup_frames=0).n_features == 1


# --- the command: columns, summary, console, and the switches ------------------------------------

EXP = "simulated_retina_core_readout"


@pytest.fixture(scope="module")
def small_retina(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_small_retina(tmp_path_factory.mktemp("baseline_retina") / "data", test_trials=3)


def _train(data: Path, log_dir: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> Path:
    result = run_cli(
        [
            "train",
            f"paths.data_dir={data}",
            f"paths.log_dir={log_dir}",
            *TINY,
            "trainer.max_epochs=1",
            *extra,
        ],
        capsys,
    )
    assert result.code == 0, result.out + result.err
    (run,) = sorted((log_dir / "runs" / EXP).iterdir())
    return run


def _columns(path: Path) -> list[str]:
    with path.open(newline="") as handle:
        return next(csv.reader(handle))


@pytest.mark.slow
def test_train_and_eval_show_the_baseline(
    small_retina: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _train(small_retina, tmp_path / "logs", capsys)
    results = read_results(run)
    assert "val/baseline_correlation" in results["metrics"]
    assert "test/baseline_correlation" in results["metrics"]
    assert results["baseline"]["splits"]["val"]["model_beats_baseline"] in (True, False)
    columns = _columns(run / "eval" / "neurons.csv")
    assert "val/baseline_correlation" in columns
    assert any(c.startswith("test/") and c.endswith("/baseline_correlation") for c in columns)
    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert summary["splits"]["val"]["metrics"]["baseline_correlation"]["n_defined"] > 0
    assert set(summary["baseline"]["splits"]) >= {"val", "test"}

    result = run_cli(["eval", str(run), "--no-figures"], capsys)
    assert result.code == 0, result.err
    assert "baseline" in _table(result.out)
    result = run_cli(
        ["eval", str(run), "--no-figures", "--no-baseline", "--out", str(tmp_path / "plain")], capsys
    )
    assert result.code == 0, result.err
    assert "baseline" not in _table(result.out)
    assert "Fitting the linear-nonlinear baseline" not in result.out
    assert not any("baseline" in c for c in _columns(tmp_path / "plain" / "neurons.csv"))
    assert "baseline" not in json.loads((tmp_path / "plain" / "summary.json").read_text())


def _table(out: str) -> str:
    """The console table of `openretina eval` (its header may wrap in a narrow terminal)."""
    start = out.index("Evaluation (means over neurons)")
    return out[start : out.index("Wrote ", start)]


@pytest.mark.slow
def test_train_without_baseline(
    small_retina: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _train(small_retina, tmp_path / "logs", capsys, "baseline=false", "report=false")
    results = read_results(run)
    assert "baseline" not in results
    assert not any("baseline" in key for key in results["metrics"])


def test_baseline_key_is_type_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(["train", "baseline=maybe", f"paths.log_dir={tmp_path}"], capsys)
    assert result.code != 0
    assert "baseline" in result.err + result.out
    assert "bool" in result.err + result.out


def test_a_failing_baseline_does_not_fail_the_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from omegaconf import OmegaConf
    from openretina_cli.training import run

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no frames")

    monkeypatch.setattr(bl, "evaluate_baseline", broken)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    assert run._baseline(OmegaConf.create({"baseline": True}), None, None, None, None) is None
    assert "baseline could not be fitted (RuntimeError: no frames)" in capsys.readouterr().err
    assert run._baseline(OmegaConf.create({"baseline": False}), None, None, None, None) is None
