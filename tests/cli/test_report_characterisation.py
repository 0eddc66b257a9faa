"""The run report's characterisation section (issue 22): the figures and a line per neuron from
``<run>/characterisation/`` when ``openretina characterise`` wrote one, otherwise how to make it."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from cli_helpers import run_cli
from openretina_cli.evaluation.characterisation_view import load_characterisation_view, neuron_line
from openretina_cli.evaluation.html import characterisation_html, render
from report_support import report_run

FIXTURES = (report_run,)  # shared with the other report tests, trained once
# small stimuli for the tiny run's 8 x 8 frames (the data stores no pixel size)
FAST = [
    "--pixel-size-um",
    "25",
    "--noise-seconds",
    "4",
    "--temporal-frequencies",
    "2",
    "--directions",
    "4",
    "--bar-width-um",
    "75",
]
PNG = b"\x89PNG\r\n\x1a\n"  # the page embeds the bytes as they are


def _folder(tmp_path: Path) -> Path:
    """A characterisation folder as the command writes it, made by hand."""
    folder = tmp_path / "characterisation"
    (folder / "figures").mkdir(parents=True)
    settings = {
        "command": "openretina characterise",
        "sessions": {"s0": [0, 1]},
        "stimuli": {"chirp": {}, "bars": {}},
        "skipped": {"gratings": "the frame is one pixel"},
        "functional_types": {"n_types": 2, "chosen_by": "BIC"},
    }
    (folder / "characterisation.json").write_text(json.dumps(settings))
    with (folder / "neurons.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "session",
                "neuron",
                "neuron_id",
                "functional_type",
                "on_off_index",
                "transience_index",
                "dsi",
                "ds_p_value",
                "preferred_direction_deg",
                "rf_sigma_major_um",
                "rf_sigma_minor_um",
                "rf_fit_r2",
                "chromatic_preference_green",
                "chromatic_preference_UV",
                "preferred_channel",
            ]
        )
        writer.writerow(["s0", 0, 10, 1, 0.8, 0.3, 0.6, 0.001, 90, 60, 40, 0.9, 0.7, 0.3, 0])
        writer.writerow(["s0", 1, 11, 0, -0.9, "", 0.1, 0.01, 10, "", "", "", 0.2, 0.8, 1])
    for name in ("chirp_by_type.png", "rf_mosaic_s0.png", "direction_selectivity.png"):
        (folder / "figures" / name).write_bytes(PNG)
    return folder


def test_a_characterisation_folder_gives_counts_figures_and_a_line_per_neuron(tmp_path: Path) -> None:
    view = load_characterisation_view(_folder(tmp_path))
    assert view is not None
    assert view.summary["neurons"] == 2
    assert (view.summary["on_cells"], view.summary["off_cells"]) == (1, 1)
    assert view.summary["direction_selective"]["count"] == 1
    assert [p.name for p, _ in view.figures] == [
        "chirp_by_type.png",
        "rf_mosaic_s0.png",
        "direction_selectivity.png",
    ]
    first = view.lines[("s0", 0)]
    assert "functional type 1" in first
    assert "ON (ON-OFF index +0.80)" in first
    assert "DSI 0.60 (p 0.001), prefers 90°" in first
    assert "RF σ 60 × 40 µm (fit r² 0.90)" in first
    assert "prefers green" in first
    second = view.lines[("s0", 1)]
    assert "OFF" in second
    assert "prefers UV" in second
    assert "RF" not in second
    assert "transience" not in second
    assert "prefers 10°" not in second  # significant, but DSI 0.1 is not direction selective
    page = characterisation_html(view, has_run=True)
    assert page.count("<img") == 3
    assert "not shown: gratings" in page
    assert "the frame is one pixel" in page


def test_no_characterisation_says_how_to_make_one(tmp_path: Path) -> None:
    assert load_characterisation_view(tmp_path / "characterisation") is None
    assert neuron_line({}) == ""
    hint = characterisation_html(None, has_run=True)
    assert "openretina characterise RUN" in hint
    assert "characterisation/" in hint
    page = render(
        title="t",
        summary={"splits": {}, "run": {"warnings": []}},
        figures=[],
        notes=[],
        config_text=None,
        versions={},
        files=[],
    )
    assert 'id="characterisation"' in page
    assert "openretina characterise RUN" in page


@pytest.mark.slow
def test_characterise_on_a_run_adds_its_section_and_card_lines_to_the_report(
    report_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (report_run / "eval" / "report.html").read_text()
    if not (report_run / "characterisation").exists():
        assert "Not characterised yet" in before
    run = tmp_path / "run"
    shutil.copytree(report_run, run)
    shutil.rmtree(run / "characterisation", ignore_errors=True)
    result = run_cli(["characterise", str(run), *FAST], capsys)
    assert result.code == 0, result.err
    assert "Updated the run's report with the characterisation" in result.out
    page = (run / "eval" / "report.html").read_text()
    section = page[page.index('<h2 id="characterisation">') : page.index('<h2 id="notes">')]
    assert "Not characterised yet" not in section
    assert section.count("<img") >= 3  # chirp by type, direction selectivity, a mosaic per session
    with (run / "characterisation" / "neurons.csv").open() as handle:
        count = len(list(csv.DictReader(handle)))
    assert page.count('<a href="#characterisation">Characterised</a>:') == count
    # the MEIs' refresh of the page keeps the characterisation
    mei = run_cli(["mei", str(run), "--iterations", "2", "--neurons", "0"], capsys)
    assert mei.code == 0, mei.err
    assert "Not characterised yet" not in (run / "eval" / "report.html").read_text()
