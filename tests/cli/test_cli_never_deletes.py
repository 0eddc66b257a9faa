"""No command deletes or overwrites what a user owns, and every bad output option is one message
before any work: ``eval``, ``mei`` and ``import-1x`` against awkward output locations."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from cli_helpers import Result, run_cli
from robust_support import TINY, write_small_retina

pytestmark = pytest.mark.slow

EXP = "simulated_retina_core_readout"


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (hidden ones too) with a hash of its bytes."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(run directory, data directory) of one finished tiny run of the default experiment."""
    import contextlib
    import io

    data = write_small_retina(tmp_path_factory.mktemp("keep") / "data", test_trials=2)
    logs = tmp_path_factory.mktemp("keep_logs")
    from openretina_cli.main import main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        main(["train", f"paths.data_dir={data}", f"paths.log_dir={logs}", *TINY])
    (run,) = sorted((logs / "runs" / EXP).iterdir())
    assert (run / "model" / "model.json").is_file()
    return run, data


def _refused(result: Result, *words: str) -> None:
    assert result.code != 0, result.out
    assert "Traceback" not in result.err + result.out
    assert "Evaluating on" not in result.out, "the check must come before the work"
    for word in words:
        assert word in result.err, result.err


def test_eval_out_the_run_itself_changes_nothing(
    trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    run, _ = trained
    before = snapshot(run)
    result = run_cli(["eval", str(run), "--out", str(run), "--no-figures"], capsys)
    _refused(result, "never writes over its input", str(run / "eval"))
    assert snapshot(run) == before


def test_eval_dot_out_dot_inside_the_run_changes_nothing(
    trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run, _ = trained
    before = snapshot(run)
    monkeypatch.chdir(run)
    result = run_cli(["eval", ".", "--out", ".", "--no-figures"], capsys)
    _refused(result, "never writes over its input")
    assert snapshot(run) == before


def test_eval_out_a_folder_holding_the_run_or_data_is_refused(
    trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    run, data = trained
    for parent, what in ((run.parent, "run"), (data, "data")):
        before = snapshot(parent)
        result = run_cli(["eval", str(run), "--out", str(parent), "--no-figures"], capsys)
        _refused(result, what)
        assert snapshot(parent) == before


def test_eval_out_a_folder_with_files_keeps_them(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, _ = trained
    results = tmp_path / "results"
    (results / "notes").mkdir(parents=True)
    (results / "paper.tex").write_text("my paper")
    (results / "notes" / "todo.txt").write_text("todo")
    mine = snapshot(results)
    run_before = snapshot(run)
    for _ in range(2):  # the second run replaces the first one's report, nothing else
        result = run_cli(["eval", str(run), "--out", str(results)], capsys)
        assert result.code == 0, result.err
        now = snapshot(results)
        assert {k: now[k] for k in mine} == mine
        assert {"neurons.csv", "summary.json", "report.html"} <= set(now)
        assert not [p for p in results.iterdir() if p.name.endswith(".partial")]
    assert snapshot(run) == run_before
    # A file of the user's under a name the report writes is never replaced.
    other = tmp_path / "other"
    other.mkdir()
    (other / "summary.json").write_text('{"mine": true}')
    before = snapshot(other)
    result = run_cli(["eval", str(run), "--out", str(other), "--no-figures"], capsys)
    _refused(result, "summary.json", "not written by openretina eval")
    assert snapshot(other) == before


def test_eval_report_folder_mode_follows_the_umask(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, _ = trained
    old = os.umask(0o022)
    try:
        result = run_cli(["eval", str(run), "--out", str(tmp_path / "shared" / "eval")], capsys)
    finally:
        os.umask(old)
    assert result.code == 0, result.err
    for folder in (tmp_path / "shared" / "eval", tmp_path / "shared" / "eval" / "figures"):
        assert folder.stat().st_mode & 0o777 == 0o755, folder


def test_eval_default_folder_is_replaced_but_a_users_extra_file_stays(
    trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    run, _ = trained
    (run / "eval" / "my_notes.txt").write_text("keep me")
    result = run_cli(["eval", str(run), "--split", "test"], capsys)
    assert result.code == 0, result.err
    assert (run / "eval" / "my_notes.txt").read_text() == "keep me"
    assert (run / "model" / "model.json").is_file()
    assert (run / "config.yaml").is_file()


@pytest.mark.parametrize("option", ["file", "inside_file"])
@pytest.mark.parametrize("command", ["eval", "mei"])
def test_out_a_file_is_one_message_before_work(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, command: str
) -> None:
    run, _ = trained
    existing = tmp_path / "a_file"
    existing.write_text("data")
    out = existing if option == "file" else existing / "sub"
    result = run_cli([command, str(run), "--out", str(out)], capsys)
    _refused(result, "is a file" if option == "file" else "which is a file")
    assert existing.read_text() == "data"


@pytest.mark.parametrize("command", ["eval", "mei"])
def test_a_device_typo_is_one_message(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    run, _ = trained
    result = run_cli([command, str(run), "--device", "gpu", "--out", str(tmp_path / "o")], capsys)
    _refused(result, "'gpu'", "cpu, cuda, cuda:N")
    assert not (tmp_path / "o").exists()


def test_eval_override_of_the_wrong_type_is_one_message(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, _ = trained
    result = run_cli(["eval", str(run), "dataloader.batch_size=lots", "--out", str(tmp_path / "o")], capsys)
    _refused(result, "dataloader.batch_size", "lots")
    assert not (tmp_path / "o").exists()


def _broken_model(run: Path, target: Path) -> Path:
    """A copy of the run's model whose first weight holds a NaN."""
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(run / "model", target)
    weights = target / "model.safetensors"
    tensors = load_file(str(weights))
    name = sorted(k for k, v in tensors.items() if v.is_floating_point())[0]
    tensors[name].view(-1)[0] = float("nan")
    save_file(tensors, str(weights))
    return target


def test_mei_on_nan_weights_names_the_weights(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, _ = trained
    model = _broken_model(run, tmp_path / "broken")
    result = run_cli(["mei", str(model), "--out", str(tmp_path / "o"), "--iterations", "2"], capsys)
    assert result.code != 0
    assert "NaN or infinite" in result.err
    assert "Traceback" not in result.err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "options",
    [
        ["--lr", "1e300"],
        ["--lr", "1e30"],
        ["--spatial-sigma", "1e-300"],
        ["--temporal-sigma", "1e-300"],
        ["--lr", "1e300", "--optimizer", "adam"],
    ],
)
def test_mei_never_writes_nan_or_a_stimulus_that_did_not_move(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str]
) -> None:
    import json

    from safetensors.torch import load_file

    run, _ = trained
    out = tmp_path / "o"
    result = run_cli(
        ["mei", str(run), "--out", str(out), "--iterations", "5", "--no-figures", *options], capsys
    )
    assert "Traceback" not in result.err + result.out
    if result.code != 0:
        assert not out.exists() or not any(out.iterdir())
        assert "--lr" in result.err or "--temperature" in result.err, result.err
        return
    for tensor in load_file(str(out / "meis.safetensors")).values():
        assert bool(tensor.isfinite().all())
    targets = json.loads((out / "meis.json").read_text())["targets"]
    for target, stimulus in zip(targets, load_file(str(out / "meis.safetensors"))["session_0"], strict=False):
        if "status" not in target:
            assert float(stimulus.std()) > 0


def test_import_1x_given_a_run_folder_lists_its_checkpoints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run_1x"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"not really")
    result = run_cli(["import-1x", str(run), str(tmp_path / "out")], capsys)
    assert result.code != 0
    assert "is a folder" in result.err
    assert "checkpoints/last.ckpt" in result.err
    assert not (tmp_path / "out").exists()
