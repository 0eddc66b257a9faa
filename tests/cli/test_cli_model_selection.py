"""``openretina compare`` and ``openretina ensemble`` on real (tiny) training runs, and every bad input."""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import openretina_models as om
import pytest
import torch
from cli_helpers import run_cli
from robust_support import TINY, write_small_retina

pytestmark = pytest.mark.slow

EXP = "simulated_retina_core_readout"


class _NoCapture:
    """run_cli's capsys for a module fixture (output goes to the terminal)."""

    def readouterr(self) -> object:
        class Captured:
            out = ""
            err = ""

        return Captured()


def _train(data: Path, log_dir: Path, *extra: str) -> Path:
    args = [
        "train",
        f"paths.data_dir={data}",
        f"paths.log_dir={log_dir}",
        *TINY,
        "trainer.max_epochs=2",
        *extra,
    ]
    assert run_cli(args, _NoCapture()).code == 0  # type: ignore[arg-type]
    (run,) = sorted((log_dir / "runs" / EXP).iterdir())
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two finished runs on one tiny retina (other seed and width), one on another retina."""
    root = tmp_path_factory.mktemp("selection")
    data = write_small_retina(root / "data")
    other = write_small_retina(root / "other", seed=5)
    return {
        "a": _train(data, root / "logs_a", "seed=1"),
        "b": _train(
            data, root / "logs_b", "seed=2", "model.hidden_channels=[3]", "model.temporal_kernel_sizes=[7]"
        ),
        "other": _train(other, root / "logs_other", "seed=1"),
    }


def _copy(run: Path, target: Path) -> Path:
    shutil.copytree(run, target)
    return target


def _set_metrics(run: Path, **metrics: float) -> None:
    results = json.loads((run / "results.json").read_text())
    results["metrics"].update({key.replace("__", "/"): value for key, value in metrics.items()})
    (run / "results.json").write_text(json.dumps(results))


def _comparison(out: Path) -> dict:
    return json.loads((out / "comparison.json").read_text())


# --- compare ---------------------------------------------------------------------------------------


def test_leaderboard_has_scores_config_differences_and_a_self_contained_page(
    runs: dict[str, Path], tmp_path: Path, capsys
) -> None:
    out = tmp_path / "cmp"
    result = run_cli(["compare", str(runs["a"]), str(runs["b"]), "--out", str(out)], capsys)
    assert result.code == 0, result.err
    summary = _comparison(out)
    rows = summary["leaderboard"]
    assert len(rows) == 2
    vals = [row["val_correlation"] for row in rows]
    assert vals == sorted(vals, reverse=True)
    for row in rows:
        results = json.loads((Path(row["path"]) / "results.json").read_text())
        assert row["val_correlation"] == pytest.approx(results["metrics"]["val/correlation"])
        assert row["test_correlation"] == pytest.approx(results["metrics"]["test/correlation"])
        assert row["test_fraction_oracle"] == pytest.approx(results["metrics"]["test/fraction_oracle"])
        assert row["test_fraction_ceiling"] == pytest.approx(
            results["metrics"]["test/natural_test/fraction_ceiling"]
        )
        assert row["epochs"] == 2
        assert row["n_parameters"] == sum(
            p.numel() for p in om.load_model(Path(row["path"]) / "model").parameters()
        )
        assert row["fit_s"] > 0
    assert {"seed", "model.hidden_channels", "model.temporal_kernel_sizes"} <= set(
        summary["config_keys_that_differ"]
    )
    assert not any(key.startswith("paths.") for key in summary["config_keys_that_differ"])
    page = (out / "index.html").read_text()
    assert page.count("data:image/png;base64,") >= 2  # learning curves and the per-neuron scatter
    assert "src='figures" not in page  # nothing the page needs lies beside it
    with (out / "leaderboard.csv").open(newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [r["run"] for r in table] == [r["run"] for r in rows]
    assert "Runs, best validation first" in result.out


def test_ranks_by_validation_and_never_by_test(runs: dict[str, Path], tmp_path: Path, capsys) -> None:
    good_val = _copy(runs["a"], tmp_path / "runs" / "good_val")
    good_test = _copy(runs["a"], tmp_path / "runs" / "good_test")
    _set_metrics(good_val, val__correlation=0.9, test__correlation=0.1)
    _set_metrics(good_test, val__correlation=0.2, test__correlation=0.95)
    out = tmp_path / "cmp"
    assert run_cli(["compare", str(tmp_path / "runs"), "--out", str(out)], capsys).code == 0
    rows = _comparison(out)["leaderboard"]
    assert [row["run"] for row in rows] == ["good_val", "good_test"]
    assert _comparison(out)["pair"] == ["good_test", "good_val"]  # the scatter's default pair: by validation


def test_half_written_runs_are_skipped_and_named(runs: dict[str, Path], tmp_path: Path, capsys) -> None:
    folder = tmp_path / "runs"
    _copy(runs["a"], folder / "finished")
    cut_results = _copy(runs["a"], folder / "cut_results")
    text = (cut_results / "results.json").read_text()
    (cut_results / "results.json").write_text(text[: len(text) // 2])
    cut_weights = _copy(runs["a"], folder / "cut_weights")
    weights = (cut_weights / "model" / "model.safetensors").read_bytes()
    (cut_weights / "model" / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    running = folder / "still_running"
    running.mkdir()
    shutil.copy(runs["a"] / "config.yaml", running / "config.yaml")
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    out = tmp_path / "cmp"
    result = run_cli(["compare", str(folder), "--out", str(out)], capsys)
    assert result.code == 0, result.err
    skipped = {Path(s["path"]).name: s["reason"] for s in _comparison(out)["skipped"]}
    assert set(skipped) == {"cut_results", "cut_weights", "still_running"}
    assert "half-written" in skipped["cut_results"]
    assert "unreadable" in skipped["cut_weights"]
    assert "did not finish" in skipped["still_running"]
    assert [row["run"] for row in _comparison(out)["leaderboard"]] == ["finished"]
    page = (out / "index.html").read_text()
    console = " ".join(result.out.split())
    for name in skipped:
        assert name in page
        assert f"{name}:" in console
    assert before == {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}  # inputs untouched


def test_a_sweep_without_finished_runs_is_an_error(runs: dict[str, Path], tmp_path: Path, capsys) -> None:
    sweep = tmp_path / "sweep"
    for trial in ("0", "1"):
        (sweep / trial / ".hydra").mkdir(parents=True)
        shutil.copy(runs["a"] / "config.yaml", sweep / trial / "config.yaml")
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    out = tmp_path / "cmp"
    result = run_cli(["compare", str(sweep), "--out", str(out)], capsys)
    assert result.code == 1
    assert "no finished runs" in result.err
    assert "2 run folder(s)" in result.err
    assert not out.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli(["compare", str(empty), "--out", str(out)], capsys)
    assert result.code == 1
    assert "no runs in this directory" in result.err


def test_sweep_history_and_importances_from_the_trial_folders(
    runs: dict[str, Path], tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("hydra:\n  sweeper:\n    direction: maximize\n")
    for trial in range(6):
        lr = 0.001 + 0.005 * trial
        width = [4, 8][trial % 2]
        run = _copy(runs["a"], sweep / str(trial))
        _set_metrics(run, val__correlation=0.3 + 10 * lr)
        results = json.loads((run / "results.json").read_text())
        results["objective"] = 0.3 + 10 * lr
        (run / "results.json").write_text(json.dumps(results))
        state = "pruned" if trial == 5 else "complete"
        record = {
            "trial": trial,
            "state": state,
            "value": results["objective"],
            "params": {"lr": lr, "w": width},
        }
        (run / "trial.json").write_text(json.dumps(record))
    (sweep / "optuna.db").write_bytes(b"")  # a database that needs optuna to read
    monkeypatch.setitem(sys.modules, "optuna", None)  # as if the optuna extra were not installed
    out = tmp_path / "cmp"
    result = run_cli(["compare", str(sweep), "--out", str(out)], capsys)
    assert result.code == 0, result.err
    (info,) = _comparison(out)["sweeps"]
    assert [t["number"] for t in info["trials"]] == list(range(6))
    assert info["trials"][5]["state"] == "pruned"
    assert info["importances"]["lr"] > info["importances"]["w"]  # the objective depends on lr only
    assert any("openretina-cli[optuna]" in note for note in info["notes"])
    assert (out / "figures" / "sweep0_history.png").is_file()
    assert (out / "figures" / "sweep0_importances.png").is_file()
    kinds = {row["run"]: row["kind"] for row in _comparison(out)["leaderboard"]}
    assert kinds["sweep/5"] == "run (pruned)"


def test_out_must_be_new_or_an_earlier_comparison(runs: dict[str, Path], tmp_path: Path, capsys) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    result = run_cli(["compare", str(runs["a"]), "--out", str(mine)], capsys)
    assert result.code == 1
    assert "not an earlier comparison" in result.err
    assert (mine / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    inside = runs["a"] / "comparison"
    result = run_cli(["compare", str(runs["a"]), "--out", str(inside)], capsys)
    assert result.code == 1
    assert "inside the run directory" in result.err
    assert not inside.exists()
    out = tmp_path / "cmp"
    for _ in range(2):  # a second comparison replaces the first
        assert run_cli(["compare", str(runs["a"]), "--out", str(out)], capsys).code == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".cmp")]
    result = run_cli(
        ["compare", str(runs["a"]), str(runs["b"]), "--pair", "nope", "b", "--out", str(out)], capsys
    )
    assert result.code == 1
    assert "--pair nope" in result.err


# --- ensemble --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ensemble_dir(runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ensemble") / "ens"
    result = run_cli(["ensemble", str(runs["a"]), str(runs["b"]), "--out", str(out)], _NoCapture())  # type: ignore[arg-type]
    assert result.code == 0
    return out


def test_ensemble_loads_alone_and_predicts_the_mean_of_its_members(
    runs: dict[str, Path], ensemble_dir: Path
) -> None:
    model = om.load_model(ensemble_dir / "model")
    members = [om.load_model(runs[name] / "model") for name in ("a", "b")]
    assert model.warmup_frames == max(m.warmup_frames for m in members)  # 4 and 6 frames: crop to 6
    assert members[0].warmup_frames != members[1].warmup_frames
    movie = np.random.default_rng(0).normal(size=(1, 40, 8, 8)).astype(np.float32)
    predictions = [om.predict(m, movie, "session_0") for m in members]
    frames = 40 - model.warmup_frames
    expected = (predictions[0][-frames:] + predictions[1][-frames:]) / 2
    torch.testing.assert_close(
        torch.as_tensor(om.predict(model, movie, "session_0")), torch.as_tensor(expected)
    )
    record = json.loads((ensemble_dir / "ensemble.json").read_text())
    assert [Path(m["run_dir"]) for m in record["members"]] == [runs["a"].resolve(), runs["b"].resolve()]
    assert any("optimistic" in note for note in record["notes"])  # seeds differ: other validation clips
    results = json.loads((ensemble_dir / "results.json").read_text())
    assert {"val/correlation", "test/correlation", "test/fraction_oracle"} <= set(results["metrics"])
    assert (ensemble_dir / "eval" / "report.html").is_file()


def test_ensemble_beside_its_members_in_compare(
    runs: dict[str, Path], ensemble_dir: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "cmp"
    args = ["compare", str(runs["a"]), str(runs["b"]), str(ensemble_dir), "--out", str(out)]
    assert run_cli(args, capsys).code == 0
    kinds = {row["run"]: row["kind"] for row in _comparison(out)["leaderboard"]}
    assert kinds["ens"] == "ensemble of 2 *"
    assert "optimistic" in (out / "index.html").read_text()


def test_eval_and_mei_run_on_an_ensemble(ensemble_dir: Path, tmp_path: Path, capsys) -> None:
    result = run_cli(["eval", str(ensemble_dir), "--out", str(tmp_path / "eval"), "--no-figures"], capsys)
    assert result.code == 0, result.err
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    saved = json.loads((ensemble_dir / "results.json").read_text())["metrics"]
    assert summary["splits"]["val"]["metrics"]["correlation"]["mean"] == pytest.approx(
        saved["val/correlation"]
    )
    mei = [
        "mei",
        str(ensemble_dir),
        "--session",
        "session_0",
        "--neurons",
        "0",
        "--iterations",
        "2",
        "--frames",
        "8",
    ]
    result = run_cli([*mei, "--out", str(tmp_path / "mei"), "--no-figures"], capsys)
    assert result.code == 0, result.err
    assert (tmp_path / "mei" / "meis.safetensors").is_file()


def test_ensemble_of_runs_of_different_data_is_refused(runs: dict[str, Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "ens"
    result = run_cli(["ensemble", str(runs["a"]), str(runs["other"]), "--out", str(out)], capsys)
    assert result.code == 1
    assert "not trained on the same data" in result.err
    assert str(runs["other"]) in result.err
    assert not out.exists()
    assert not list(tmp_path.iterdir())  # no staging folder left behind


def test_ensemble_of_other_neurons_and_other_bad_input(runs: dict[str, Path], tmp_path: Path, capsys) -> None:
    fewer = _copy(runs["b"], tmp_path / "fewer")
    metadata = json.loads((fewer / "model" / "model.json").read_text())
    metadata["data_info"]["sessions"]["session_0"]["neuron_ids"] = [9, 8, 7, 6]
    (fewer / "model" / "model.json").write_text(json.dumps(metadata))
    result = run_cli(["ensemble", str(runs["a"]), str(fewer), "--out", str(tmp_path / "e1")], capsys)
    assert result.code == 1
    assert "session 'session_0'" in result.err
    result = run_cli(["ensemble", str(runs["a"]), "--out", str(tmp_path / "e2")], capsys)
    assert result.code == 1
    assert "at least 2 members" in result.err
    result = run_cli(["ensemble", str(runs["a"]), str(runs["a"]), "--out", str(tmp_path / "e3")], capsys)
    assert result.code == 1
    assert "pass each member once" in result.err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("mine")
    result = run_cli(["ensemble", str(runs["a"]), str(runs["b"]), "--out", str(busy)], capsys)
    assert result.code == 1
    assert "not an empty directory" in result.err
    assert sorted(p.name for p in busy.iterdir()) == ["x"]


def test_sweep_trials_come_from_the_study_database_read_only(
    runs: dict[str, Path], tmp_path: Path, capsys
) -> None:
    optuna = pytest.importorskip("optuna")
    sweep = tmp_path / "study-demo"
    sweep.mkdir()
    study = optuna.create_study(
        study_name="demo", storage=f"sqlite:///{sweep / 'optuna.db'}", direction="maximize"
    )
    floats = getattr(optuna.distributions, "FloatDistribution", None)  # Optuna 3+
    lr_range = floats(0.001, 0.1) if floats else optuna.distributions.UniformDistribution(0.001, 0.1)
    distributions = {"optimizer.lr": lr_range}
    for number, lr in enumerate([0.002, 0.004, 0.008, 0.016, 0.032]):
        state = optuna.trial.TrialState.PRUNED if number == 4 else optuna.trial.TrialState.COMPLETE
        value = None if number == 4 else 0.2 + lr
        study.add_trial(
            optuna.trial.create_trial(
                params={"optimizer.lr": lr}, distributions=distributions, value=value, state=state
            )
        )
        if number < 2:  # the trial folders of two trials are all this sweep has on disk
            _copy(runs["a"], sweep / str(number))
    before = (sweep / "optuna.db").read_bytes()
    out = tmp_path / "cmp"
    result = run_cli(["compare", str(sweep), "--out", str(out)], capsys)
    assert result.code == 0, result.err
    (info,) = _comparison(out)["sweeps"]
    assert info["source"] == "the study database optuna.db"
    assert [t["state"] for t in info["trials"]] == ["complete"] * 4 + ["pruned"]
    assert info["trials"][3]["params"] == {"optimizer.lr": 0.016}
    assert (sweep / "optuna.db").read_bytes() == before  # read only
    assert (out / "figures" / "sweep0_history.png").is_file()


def test_an_ensemble_written_without_eval_counts_once_evaluated(
    runs: dict[str, Path], tmp_path: Path, capsys
) -> None:
    ensemble = tmp_path / "lazy"
    args = ["ensemble", str(runs["a"]), str(runs["b"]), "--out", str(ensemble), "--no-eval"]
    assert run_cli(args, capsys).code == 0
    assert not (ensemble / "results.json").exists()
    out = tmp_path / "cmp"
    result = run_cli(["compare", str(runs["a"]), str(ensemble), "--out", str(out)], capsys)
    assert result.code == 0, result.err
    (skipped,) = _comparison(out)["skipped"]
    assert "not evaluated yet" in skipped["reason"]
    assert run_cli(["eval", str(ensemble), "--no-figures"], capsys).code == 0
    assert run_cli(["compare", str(runs["a"]), str(ensemble), "--out", str(out)], capsys).code == 0
    kinds = {row["run"]: row["kind"] for row in _comparison(out)["leaderboard"]}
    assert kinds["lazy"].startswith("ensemble of 2")
