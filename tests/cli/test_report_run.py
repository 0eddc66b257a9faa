"""The report of a real (tiny) run: first screen, named channels, one card per neuron, files a
colleague can open, runs under paths.log_dir/runs, and `openretina mei` adding the MEIs to it."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
from cli_helpers import run_cli
from report_support import EXP, report_run

pytestmark = pytest.mark.slow
FIXTURES = (report_run,)  # shared with the other report tests, trained once


def test_runs_go_directly_under_the_given_log_dir(report_run: Path) -> None:
    assert report_run.parent.name == EXP
    assert report_run.parent.parent.name == "runs"
    assert report_run.parent.parent.parent.name.startswith("report_logs")


def test_first_screen_states_ceiling_scores_for_what_they_are_and_the_run_facts(report_run: Path) -> None:
    page = (report_run / "eval" / "report.html").read_text()
    glance = page[page.index('id="glance"') : page.index('id="scores"')]
    for words in (
        "true-rate ceiling",
        "fraction of ceiling",
        "validation clips: against single trials",
        "against the mean of 4 trials",
        "CC_norm",
        "weights kept",
        "training stopped",
        "training time",
        "model parameters",
        "training frames",
    ):
        assert words in glance, words
    assert "at the ceiling" not in page
    assert "shape (" not in page  # no metadata-shape note dressed as a warning
    assert "all test stimuli pooled" not in page  # one test stimulus: its table once


def test_figures_are_at_least_150_dpi_and_channels_are_named(report_run: Path) -> None:
    from PIL import Image

    figures = sorted((report_run / "eval" / "figures").glob("*.png"))
    assert {p.name for p in figures} >= {
        "correlation_distributions.png",
        "correlation_vs_max.png",
        "readout_positions.png",
        "core_filters.png",
        "learning_curves.png",
    }
    for path in figures:
        dpi = Image.open(path).info.get("dpi", (0, 0))
        assert round(dpi[0]) >= 150, path.name
    meta = json.loads(str(__import__("numpy").load(report_run / "eval" / "cards.npz")["meta"]))
    assert meta["channels"] == ["green", "UV"]


def test_every_neuron_row_links_to_its_card(report_run: Path) -> None:
    page = (report_run / "eval" / "report.html").read_text()
    table = page[
        page.index('<div id="neuron-table">') : page.index("</table></div>", page.index('id="neuron-table"'))
    ]
    links = re.findall(r'href="#(n-[^"]+)"', table)
    assert len(links) == 10  # 2 sessions x 5 neurons
    for anchor in links:
        assert f'<section class="card" id="{anchor}">' in page
    assert page.count('<svg class="trace"') == 10
    assert page.count('<svg class="readout"') == 10


def test_the_report_folder_follows_the_umask(report_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    previous = os.umask(0o002)
    try:
        out = report_run.parent / "eval_shared"
        result = run_cli(["eval", str(report_run), "--out", str(out), "--split", "test"], capsys)
    finally:
        os.umask(previous)
    assert result.code == 0, result.err
    assert stat.S_IMODE(out.stat().st_mode) == 0o775
    assert stat.S_IMODE((out / "figures").stat().st_mode) == 0o775


def test_mei_on_the_run_adds_the_meis_to_its_report(
    report_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli(["mei", str(report_run), "--iterations", "3", "--neurons", "0,1"], capsys)
    assert result.code == 0, result.err
    assert "Updated the run's report" in result.out
    page = (report_run / "eval" / "report.html").read_text()
    assert 'id="meis"' in page
    assert page.count('class="mei-tile"') == 4  # neurons 0 and 1 of both sessions
    assert "green" in page[page.index('id="meis"') :]


def test_training_and_eval_draw_the_same_figures_each_once(
    report_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The training report draws every figure but the baseline's in helpers started before the
    baseline; `openretina eval` draws them all at the end: same figures, captions and notes, and no figure
    is drawn twice (each PNG is written once, by whichever process drew it)."""
    from openretina_cli.evaluation import figures

    saved: list[str] = []
    save = figures._save
    monkeypatch.setattr(figures, "_save", lambda figure, path: saved.append(path.name) or save(figure, path))
    monkeypatch.setattr(
        "openretina_cli.evaluation.figure_jobs.can_fork", lambda: False
    )  # count them all here
    result = run_cli(["eval", str(report_run), "--out", str(tmp_path / "again")], capsys)
    assert result.code == 0, result.err
    trained = json.loads((report_run / "eval" / "page.json").read_text())["figures"]
    again = json.loads((tmp_path / "again" / "page.json").read_text())["figures"]
    assert trained == again
    assert sorted(saved) == sorted(Path(name).name for name, _ in again)  # each drawn once
    notes = [
        json.loads((folder / "summary.json").read_text())["notes"]
        for folder in (report_run / "eval", tmp_path / "again")
    ]
    assert notes[0] == notes[1]
    for folder in (report_run / "eval", tmp_path / "again"):
        assert sorted(p.name for p in (folder / "figures").iterdir()) == sorted(
            Path(n).name for n, _ in again
        )
