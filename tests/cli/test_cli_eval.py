"""``openretina eval`` and the report every run writes: tables, figures, and every bad input."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import read_results, run_cli
from robust_support import TINY, write_small_retina

pytestmark = pytest.mark.slow

EXP = "simulated_retina_core_readout"


@pytest.fixture(scope="module")
def retina_with_trials(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny simulated retina: 2 sessions x 5 neurons, 2 colours, 3 test trials, cell types."""
    directory = tmp_path_factory.mktemp("eval_retina") / "data"
    return write_small_retina(directory, neurons_per_session=5, num_colors=2, test_trials=3)


@pytest.fixture(scope="module")
def trained_run(retina_with_trials: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished tiny run of the default experiment (2 epochs, so the log has a curve)."""
    log_dir = tmp_path_factory.mktemp("eval_logs")
    capsys = _NoCapture()
    result = run_cli(
        [
            "train",
            f"paths.data_dir={retina_with_trials}",
            f"paths.log_dir={log_dir}",
            *TINY,
            "trainer.max_epochs=2",
        ],
        capsys,  # type: ignore[arg-type]
    )
    assert result.code == 0
    (run,) = sorted((log_dir / "runs" / EXP).iterdir())
    return run


class _NoCapture:
    """run_cli's capsys for a module fixture (output goes to the terminal)."""

    def readouterr(self) -> object:
        class Captured:
            out = ""
            err = ""

        return Captured()


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _value(text: str) -> float:
    return float("nan") if text == "" else float(text)


def test_training_run_ends_with_the_report(trained_run: Path) -> None:
    report = trained_run / "eval"
    for name in ("neurons.csv", "summary.json", "report.html"):
        assert (report / name).is_file(), name
    figures = {path.name for path in (report / "figures").iterdir()}
    assert {
        "correlation_distributions.png",
        "correlation_by_cell_type.png",
        "correlation_vs_max.png",
        "model_vs_baseline.png",
        "traces_natural_test.png",
        "learning_curves.png",
        "readout_positions.png",
        "core_filters.png",
    } <= figures
    html = (report / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(figures)  # self-contained: every figure embedded
    assert read_results(trained_run)["timing_s"]["report"] > 0


def test_eval_rewrites_the_report_with_one_row_per_neuron(trained_run: Path, capsys) -> None:
    (trained_run / "eval" / "neurons.csv").unlink()
    result = run_cli(["eval", str(trained_run)], capsys)
    assert result.code == 0, result.err
    rows = _rows(trained_run / "eval" / "neurons.csv")
    assert len(rows) == 10  # 2 sessions x 5 neurons
    assert {row["session"] for row in rows} == {"session_0", "session_1"}
    expected_columns = {
        "session",
        "neuron_index",
        "neuron_id",
        "cell_type",
        "celltypes",
        "val/correlation",
        "val/mse",
        "val/poisson_loss",
    }
    per_test = (
        "correlation",
        "mse",
        "poisson_loss",
        "trial_correlation",
        "trial_correlation_std",
        "oracle",
        "jackknife_oracle",
        "fraction_oracle",
        "fev",
        "feve",
    )
    expected_columns |= {f"test/natural_test/{metric}" for metric in per_test}
    assert expected_columns <= set(rows[0])
    assert "Evaluation" in result.out


def test_eval_means_equal_what_training_reported(trained_run: Path, capsys) -> None:
    assert run_cli(["eval", str(trained_run)], capsys).code == 0
    metrics = read_results(trained_run)["metrics"]
    summary = json.loads((trained_run / "eval" / "summary.json").read_text())
    splits = summary["splits"]
    assert splits["val"]["metrics"]["correlation"]["mean"] == pytest.approx(
        metrics["val/correlation"], abs=1e-9
    )
    for kind in ("correlation", "oracle", "feve", "fraction_oracle"):
        assert splits["test/natural_test"]["metrics"][kind]["mean"] == pytest.approx(
            metrics[f"test/natural_test/{kind}"], abs=1e-9
        )
    assert splits["test"]["metrics"]["correlation"]["mean"] == pytest.approx(
        metrics["test/correlation"], abs=1e-9
    )
    rows = _rows(trained_run / "eval" / "neurons.csv")
    per_neuron = np.array([_value(row["val/correlation"]) for row in rows])
    assert np.nanmean(per_neuron) == pytest.approx(metrics["val/correlation"], abs=1e-9)


def test_summary_is_strict_json_with_sessions_cell_types_and_the_cutoff(trained_run: Path, capsys) -> None:
    assert run_cli(["eval", str(trained_run), "--var-ratio-cutoff", "0.3"], capsys).code == 0
    text = (trained_run / "eval" / "summary.json").read_text()
    summary = json.loads(text, parse_constant=lambda name: pytest.fail(f"non-strict JSON constant {name}"))
    test = summary["splits"]["test/natural_test"]
    assert set(test["sessions"]) == {"session_0", "session_1"}
    assert summary["cell_type_key"] == "cell_type"
    assert sum(v["n_neurons"] for v in test["cell_types"].values()) == 10
    fev = np.array([_value(r["test/natural_test/fev"]) for r in _rows(trained_run / "eval" / "neurons.csv")])
    assert test["filtered"]["rule"] == "fev >= 0.3"
    assert test["filtered"]["n_neurons"] == int((fev >= 0.3).sum())
    assert test["n_trials"] == {"min": 3, "max": 3}
    assert len(_rows(trained_run / "eval" / "neurons.csv")) == 10  # the cut-off never drops rows


def test_eval_of_one_split_into_another_directory(trained_run: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "only_val"
    result = run_cli(
        ["eval", str(trained_run / "model"), "--split", "val", "--out", str(out), "--no-figures"], capsys
    )
    assert result.code == 0, result.err
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["splits"]) == ["val"]
    assert not (out / "figures").exists()
    assert not any(key.startswith("test/") for key in _rows(out / "neurons.csv")[0])


def test_eval_on_another_config_with_overrides(
    trained_run: Path, retina_with_trials: Path, tmp_path, capsys
) -> None:
    out = tmp_path / "other"
    result = run_cli(
        [
            "eval",
            str(trained_run),
            "--config-name",
            EXP,
            f"paths.data_dir={retina_with_trials}",
            "--out",
            str(out),
            "--split",
            "natural_test",
            *[t for t in TINY if t.startswith("dataloader.")],
        ],
        capsys,
    )
    assert result.code == 0, result.err
    assert list(json.loads((out / "summary.json").read_text())["splits"]) == ["test/natural_test", "test"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--split", "tset"], "Unknown split 'tset'. Did you mean: test?"),
        (["dataloader.num_val_clips=0", "--split", "val"], "The validation split is empty"),
        (["dataloader.bach_size=3"], "Unknown config key 'dataloader.bach_size'"),
        (["--var-ratio-cutoff", "2"], "--var-ratio-cutoff=2.0 must lie between 0 and 1"),
        (["--cell-type-key", "celtype"], "--cell-type-key=celtype: no such per-neuron field"),
    ],
)
def test_bad_eval_options_fail_with_one_message_and_write_nothing(
    trained_run: Path, tmp_path: Path, capsys, args: list[str], message: str
) -> None:
    out = tmp_path / "out"
    result = run_cli(["eval", str(trained_run), "--out", str(out), *args], capsys)
    assert result.code == 1
    assert message in " ".join(result.err.split())
    assert not out.exists()


def test_run_without_an_exported_model(trained_run: Path, tmp_path: Path, capsys) -> None:
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(trained_run / "config.yaml", unfinished / "config.yaml")
    result = run_cli(["eval", str(unfinished)], capsys)
    assert result.code == 1
    assert "has no exported model (model/model.json)" in " ".join(result.err.split())
    assert sorted(p.name for p in unfinished.iterdir()) == ["config.yaml"]


def test_model_folder_without_run_needs_out_and_config(trained_run: Path, tmp_path: Path, capsys) -> None:
    model = tmp_path / "model"
    shutil.copytree(trained_run / "model", model)
    result = run_cli(["eval", str(model)], capsys)
    assert result.code == 1
    assert "is not a run directory: pass --out DIR" in " ".join(result.err.split())
    result = run_cli(["eval", str(model), "--out", str(tmp_path / "out")], capsys)
    assert result.code == 1
    assert "has no run config" in " ".join(result.err.split())
    assert not (tmp_path / "out").exists()


def test_model_that_does_not_fit_the_data(trained_run: Path, tmp_path: Path, capsys) -> None:
    other = write_small_retina(
        tmp_path / "one_colour", num_sessions=1, neurons_per_session=5, train_frames=300, num_stimuli=1
    )
    out = tmp_path / "out"
    result = run_cli(
        [
            "eval",
            str(trained_run),
            "--out",
            str(out),
            f"paths.data_dir={other}",
            "dataloader.num_val_clips=2",
        ],
        capsys,
    )
    assert result.code == 1
    message = " ".join(result.err.split())
    assert (
        "the model takes frames of (channels, height, width) = (2, 8, 8), but this data has (1, 8, 8)"
        in message
    )
    assert not out.exists()


def test_data_session_unknown_to_the_model(
    trained_run: Path, retina_with_trials: Path, tmp_path: Path, capsys
):
    data = tmp_path / "data"
    shutil.copytree(retina_with_trials, data)
    (data / "session_1.h5").rename(data / "session_9.h5")
    out = tmp_path / "out"
    result = run_cli(["eval", str(trained_run), "--out", str(out), f"paths.data_dir={data}"], capsys)
    assert result.code == 1
    assert "the model has no readout for the data's session(s) session_9" in " ".join(result.err.split())
    assert not out.exists()


def test_report_false_skips_the_report(retina_with_trials: Path, tmp_path: Path, capsys) -> None:
    args = [
        "train",
        f"paths.data_dir={retina_with_trials}",
        f"paths.log_dir={tmp_path}",
        *TINY,
        "report=false",
    ]
    assert run_cli(args, capsys).code == 0
    (run,) = sorted((tmp_path / "runs" / EXP).iterdir())
    assert (run / "results.json").is_file()
    assert not (run / "eval").exists()
    assert "report" not in read_results(run)["timing_s"]


def test_a_failing_report_keeps_the_trained_run(
    retina_with_trials: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    from openretina_cli.evaluation import report

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no fonts")

    monkeypatch.setattr(report, "write_report", broken)
    result = run_cli(
        ["train", f"paths.data_dir={retina_with_trials}", f"paths.log_dir={tmp_path}", *TINY], capsys
    )
    assert result.code == 0
    assert "the evaluation report could not be written (RuntimeError: no fonts)" in " ".join(
        result.err.split()
    )
    (run,) = sorted((tmp_path / "runs" / EXP).iterdir())
    assert read_results(run)["report_error"] == "RuntimeError: no fonts"
    assert (run / "model" / "model.json").is_file()
