"""Unit tests of the benchmark harness logic (tools/bench): statistics, pairing, timing metrics,
target verdicts and the results JSON. No real runs: everything here is synthetic."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "tools" / "bench"
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH / "hooks"))

import cases  # noqa: E402
import stats  # noqa: E402
from bench_timer import batch_shapes  # noqa: E402
from report import SCHEMA, CaseResult, Target, case_table, evaluate_targets, write_results  # noqa: E402
from timings import run_metrics  # noqa: E402


def test_interleaved_order_alternates_tools_within_every_pair() -> None:
    order = stats.interleaved_order(3)
    assert order == [(0, "ours"), (0, "peer"), (1, "ours"), (1, "peer"), (2, "ours"), (2, "peer")]
    with pytest.raises(ValueError, match="--pairs"):
        stats.interleaved_order(0)


def test_summarize_skips_missing_and_non_finite_runs() -> None:
    s = stats.summarize([3.0, None, 1.0, math.nan, 2.0])
    assert (s.median, s.low, s.high, s.n) == (2.0, 1.0, 3.0, 3)
    empty = stats.summarize([None, math.inf])
    assert empty.n == 0
    assert math.isnan(empty.median)


def test_pair_ratios_are_per_pair_and_none_where_a_side_is_missing() -> None:
    assert stats.pair_ratios([2.0, 3.0, None, 1.0], [4.0, 1.5, 1.0, 0.0]) == [0.5, 2.0, None, None]
    with pytest.raises(ValueError, match="equal run counts"):
        stats.pair_ratios([1.0], [1.0, 2.0])


def test_target_met_checks_the_median_against_each_bound() -> None:
    s = stats.Summary(median=0.4, low=0.3, high=0.6, n=3)
    assert stats.target_met(s, at_most=0.5) is True
    assert stats.target_met(s, at_most=0.3) is False
    assert stats.target_met(s, at_least=0.5) is False
    assert stats.target_met(stats.Summary(math.nan, math.nan, math.nan, 0), at_most=1) is None


def _timer(offset: int = 0) -> dict:
    """A synthetic timer record: t0 = 100, two epochs of two steps, then a test loop."""
    return {
        "t0": 100.0,
        "t_callback_init": 104.0,
        "fit": [[104.5, 120.0]],
        "train_epochs": [[105.0, 110.0], [110.0, 116.0]],
        # [start, end, B, T, N]: 0.5 s fetch before the first step of each epoch, 0.1 s between steps
        "train_batches": [
            [105.5, 107.5, 4, 10, 3],
            [107.6, 109.6, 4, 10, 3],
            [110.5, 112.5, 4, 10, 3],
            [112.6, 114.6, 4, 10, 3],
        ],
        "loops": [["validation", "fit", 109.6, 110.0], ["test", "test", 120.5, 123.0]],
        "output_frames_offset": offset,
    }


def test_run_metrics_from_a_timer_record() -> None:
    m = run_metrics(_timer(), t_exit=125.0)
    assert m["first_step_s"] == pytest.approx(5.5)
    assert m["steps"] == 4
    assert m["epochs"] == 2
    assert m["step_s"] == pytest.approx(2.0)
    assert m["fetch_s"] == pytest.approx(0.5 + 0.1 + 0.5 + 0.1)
    assert m["epoch_s"] == pytest.approx(5.5)  # median of 5 and 6
    assert m["data_share"] == pytest.approx(1.2 / 11.0)
    # throughput leaves out the first step: 3 steps of 4*10*3 frames x neurons over 2.1 + 2.5 + 2.1 s
    assert m["throughput"] == pytest.approx(3 * 120 / 6.7)
    assert m["eval_s"] == pytest.approx(2.5)
    assert m["post_fit_s"] == pytest.approx(5.0)
    assert m["val_loop_s"] == pytest.approx(0.4)


def test_throughput_counts_only_the_frames_a_model_predicts() -> None:
    full, warm = run_metrics(_timer(0), 125.0), run_metrics(_timer(4), 125.0)
    assert warm["throughput"] == pytest.approx(full["throughput"] * 6 / 10)
    assert warm["load_throughput"] == pytest.approx(full["load_throughput"])


def test_run_metrics_of_a_run_that_never_trained_are_nan() -> None:
    m = run_metrics({"t0": 0.0, "t_callback_init": 1.0}, t_exit=2.0)
    for metric in ("first_step_s", "throughput", "post_fit_s"):
        assert math.isnan(m[metric]), metric


def test_batch_shapes_finds_the_response_tensor_in_either_tools_batch() -> None:
    np = pytest.importorskip("numpy")
    from collections import namedtuple
    from dataclasses import dataclass

    stim, resp = np.zeros((2, 3, 7, 4, 4)), np.zeros((2, 5, 9))
    DataPoint = namedtuple("DataPoint", ["inputs", "targets"])
    assert batch_shapes(("session_0", DataPoint(stim, resp))) == (2, 5, 9)

    @dataclass
    class Batch:
        session: str
        stimulus: object
        responses: object

    assert batch_shapes(Batch("s", stim, resp)) == (2, 5, 9)
    assert batch_shapes({"x": stim}) is None


def _case() -> CaseResult:
    case = CaseResult("tutorial", "synthetic", ["first_step_s"])
    for pair, (ours, peer) in enumerate([(2.0, 5.0), (3.0, 5.0), (1.0, 4.0)]):
        case.runs.append({"pair": pair, "tool": "ours", "metrics": {"first_step_s": ours}})
        case.runs.append({"pair": pair, "tool": "peer", "metrics": {"first_step_s": peer}})
    return case


def test_case_summary_pairs_runs_by_index_and_reports_ratio_ranges() -> None:
    summary = _case().summary()["first_step_s"]
    assert summary["ratios"] == pytest.approx([0.4, 0.6, 0.25])
    assert summary["ratio"]["median"] == pytest.approx(0.4)
    assert summary["ours"] == {"median": 2.0, "low": 1.0, "high": 3.0, "n": 3}
    assert "0.4 [0.25–0.6]" in case_table("tutorial", _case().to_dict())


def test_targets_and_results_file_round_trip(tmp_path: Path) -> None:
    results = {"tutorial": _case().to_dict()}
    verdicts = evaluate_targets(
        results,
        [
            Target("tutorial", "first_step_s", at_most=0.5),
            Target("tutorial", "first_step_s", at_most=2.5, on="ours"),
            Target("quality", "test_correlation", at_least=1.0),
        ],
    )
    assert [v["met"] for v in verdicts] == [True, True, None]
    path = tmp_path / "results.json"
    write_results(path, {"schema": SCHEMA, "cases": results, "targets": verdicts})
    loaded = json.loads(path.read_text())
    assert loaded["schema"] == SCHEMA
    assert loaded["cases"]["tutorial"]["summary"]["first_step_s"]["ratio"]["n"] == 3


def test_every_target_names_a_metric_its_case_reports() -> None:
    reported = {"tutorial": set(cases.TUTORIAL_METRICS)}
    for target in cases.TARGETS:
        if target.case in reported:
            assert target.metric in reported[target.case], target


def test_score_predictions_against_the_trial_mean_and_ceiling(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    rates = rng.random((3, 40)).astype(np.float32) + 0.5
    trials = rng.poisson(rates * 5, size=(6, 3, 40)).astype(np.float32)
    with h5py.File(tmp_path / "s0.h5", "w") as f:
        f["responses_test"] = trials
    (tmp_path / "ground_truth").mkdir()
    with h5py.File(tmp_path / "ground_truth" / "ground_truth.h5", "w") as f:
        f["s0/rates_test"] = rates
    np.savez(tmp_path / "pred.npz", **{"s0/test": rates.T[5:]})  # the true rate, minus 5 warm-up frames
    score = cases.score_predictions(tmp_path / "pred.npz", tmp_path)
    assert score["fraction_of_ceiling"] == pytest.approx(1.0)
    assert 0 < score["test_correlation"] < 1


def test_scaling_scales_can_be_narrowed_and_reject_unknown_names() -> None:
    assert [n for n, *_ in cases.scaling_scales(False, ["length_8x", "sessions_16"])] == [
        "sessions_16",
        "length_8x",
    ]
    assert len(cases.scaling_scales(False)) == 7
    with pytest.raises(ValueError, match="sessions_3"):
        cases.scaling_scales(False, ["sessions_3"])


def test_peer_view_gives_1x_the_trial_mean_and_keeps_everything_else(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    h5py = pytest.importorskip("h5py")
    data = tmp_path / "data"
    (data / "stimuli").mkdir(parents=True)
    np.save(data / "stimuli" / "a.npy", np.zeros((1, 4, 2, 2), dtype=np.float32))
    trials = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    with h5py.File(data / "s0.h5", "w") as f:
        f["responses_a"] = trials[0]
        f["responses_test"] = trials
        f["session_info/celltypes"] = np.array([1, 2, 3])
        f["session_info/cell_type"] = np.array([b"ON", b"OFF", b"ON"], dtype=object)
    view = cases.peer_view(data, tmp_path / "view")
    with h5py.File(view / "s0.h5", "r") as g:
        np.testing.assert_array_equal(g["responses_test"][()], trials.mean(axis=0))
        np.testing.assert_array_equal(g["responses_a"][()], trials[0])
        assert list(g["session_info"]) == ["celltypes"]
    assert (view / "stimuli" / "a.npy").is_file()
    # regenerated data in the same folder gets a fresh view, not the stale one
    with h5py.File(data / "s0.h5", "w") as f:
        f["responses_a"] = trials[0, :, :2]
        f["responses_test"] = trials[:, :, :2]
    cases.peer_view(data, tmp_path / "view")
    with h5py.File(view / "s0.h5", "r") as g:
        assert g["responses_a"].shape == (3, 2)


def test_user_install_reinstalls_when_sources_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The benchmark measures the current code: any edit to a package or the configs changes the
    digest that decides a reinstall; local requirements keep their extras."""
    import user_install

    packages = tmp_path / "packages"
    (packages / "openretina-cli" / "src").mkdir(parents=True)
    (packages / "openretina-models").mkdir()
    (tmp_path / "configs").mkdir()
    source = packages / "openretina-cli" / "src" / "a.py"
    source.write_text("x = 1\n")
    (tmp_path / "configs" / "c.yaml").write_text("a: 1\n")
    monkeypatch.setattr(user_install, "PACKAGES", packages)
    monkeypatch.setattr(user_install, "REPO_ROOT", tmp_path)

    first = user_install._source_digest(user_install.CLI_INSTALL)
    assert user_install._source_digest(user_install.CLI_INSTALL) == first
    source.write_text("x = 2\n")
    assert user_install._source_digest(user_install.CLI_INSTALL) != first
    edited = user_install._source_digest(user_install.CLI_INSTALL)
    (tmp_path / "configs" / "c.yaml").write_text("a: 2\n")
    assert user_install._source_digest(user_install.CLI_INSTALL) != edited
    assert user_install._source_digest(user_install.MODELS_INSTALL) != edited  # the cli is not in it
    assert user_install._local("openretina-data[torch]") == f"{packages / 'openretina-data'}[torch]"


def test_peer_precision_is_added_to_every_peer_training_command(tmp_path: Path) -> None:
    import contenders as ct
    from peer import PeerEnv

    peer_env = PeerEnv(venv=tmp_path / "venv", configs=tmp_path / "configs")
    ctx = cases.Context(
        peer_env=peer_env,
        pairs=1,
        quick=True,
        epochs=1,
        scaling_epochs=1,
        quality_budget_s=1,
        data_root=tmp_path,
        run_root=tmp_path,
        cache_dir=tmp_path / "cache",
        peer_precision="32",
    )
    command = ctx.contender("peer").train_command("hdf5_core_readout", ["trainer.max_epochs=1"])
    assert command[-3:] == ["trainer.max_epochs=1", "trainer.precision=32", ct.TIMER_OVERRIDE]
    default = ct.peer(peer_env, tmp_path).train_command("hdf5_core_readout", [])
    assert not any(part.startswith("trainer.precision") for part in default)
    ours = ctx.contender("ours").train_command("hdf5_core_readout", [])
    assert not any(part.startswith("trainer.precision") for part in ours)


def test_cpu_description_records_the_generation_and_bfloat16_support() -> None:
    import run

    zen3 = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\n"
    zen3 += "model name\t: AMD EPYC\nstepping\t: 1\nflags\t\t: fpu sse avx avx2 fma\n\n"
    zen3 += "processor\t: 1\nflags\t\t: avx512_bf16\n"
    assert run.cpu_description(zen3) == {
        "cpu": "AMD EPYC",
        "cpu_family_model": "25/1/1",
        "cpu_flags": ["avx2"],
        "cpu_native_bf16": False,
    }
    sapphire = "model name\t: Intel Xeon\nflags\t\t: avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
    described = run.cpu_description(sapphire)
    assert described["cpu_native_bf16"] is True
    assert described["cpu_flags"] == ["amx_bf16", "amx_tile", "avx2", "avx512_bf16", "avx512f"]
    assert described["cpu_family_model"] == "?/?/?"
