"""What the report says, checked on hand-made summaries and run folders (no training): labels
that say what each score is measured against, no duplicate tables, the first-screen warnings, the
run's facts, and the per-neuron cards' drawings."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest
from openretina_cli.evaluation import cards
from openretina_cli.evaluation.figures import channel_names, data_limits
from openretina_cli.evaluation.html import headline, shown_splits, split_label, warnings_html
from openretina_cli.evaluation.run_facts import run_facts


def _metric(mean: float) -> dict[str, float]:
    return {"mean": mean, "median": mean, "n_defined": 4, "n_undefined": 0}


def _summary(model_val: float = 0.6, baseline_val: float = 0.4, test_stimuli: int = 1) -> dict:
    test = {
        "n_neurons": 4,
        "n_trials": {"min": 6, "max": 6},
        "metrics": {
            "correlation": _metric(0.9),
            "baseline_correlation": _metric(0.7),
            "normalised_correlation": _metric(0.93),
            "feve": _metric(0.8),
            "ceiling_correlation": _metric(0.95),
        },
        "sessions": {},
    }
    splits = {
        "val": {
            "n_neurons": 4,
            "metrics": {"correlation": _metric(model_val), "baseline_correlation": _metric(baseline_val)},
            "sessions": {},
        }
    }
    for i in range(test_stimuli):
        splits[f"test/stim{i}"] = test
    splits["test"] = test
    return {"splits": splits, "run": {"warnings": []}}


def test_each_split_says_what_it_is_scored_against() -> None:
    summary = _summary()
    assert split_label("val", summary["splits"]["val"]) == "validation clips: against single trials"
    assert "against the mean of 6 trials" in split_label("test/stim0", summary["splits"]["test/stim0"])


def test_one_test_stimulus_is_shown_once_two_are_shown_pooled_too() -> None:
    assert [key for key, _ in shown_splits(_summary(test_stimuli=1))] == ["val", "test/stim0"]
    assert [key for key, _ in shown_splits(_summary(test_stimuli=2))] == [
        "val",
        "test/stim0",
        "test/stim1",
        "test",
    ]


def test_headline_shows_the_ceiling_and_the_fraction_of_it_and_no_oracle_fraction() -> None:
    table = headline(_summary())
    assert "true-rate ceiling" in table
    assert "fraction of ceiling" in table
    assert f"{0.9 / 0.95:.3f}" in table
    assert "CC_norm" in table
    assert "FEVE" in table
    assert "baseline corr." in table
    assert "oracle" not in table


def test_a_model_that_does_not_beat_its_baseline_is_flagged_first() -> None:
    assert warnings_html(_summary(model_val=0.6, baseline_val=0.4)) == ""
    flagged = warnings_html(_summary(model_val=0.3, baseline_val=0.4))
    assert "does not beat the linear-nonlinear baseline on the validation clips" in flagged
    assert 'class="warn"' in flagged


def _run_dir(tmp_path: Path, correlations: list[float], max_epochs: int) -> Path:
    run = tmp_path / "run"
    (run / "csv").mkdir(parents=True)
    lines = ["epoch,val/correlation,train/loss_epoch"]
    lines += [f"{epoch},{value},1.0" for epoch, value in enumerate(correlations)]
    (run / "csv" / "metrics.csv").write_text("\n".join(lines) + "\n")
    (run / "config.yaml").write_text(
        f"trainer:\n  max_epochs: {max_epochs}\ntraining_callbacks:\n  early_stopping:\n    patience: 3\n"
    )
    (run / "results.json").write_text(json.dumps({"epochs": len(correlations), "timing_s": {"fit": 75.0}}))
    return run


def test_a_run_stopped_at_max_epochs_while_improving_gets_a_warning(tmp_path: Path) -> None:
    facts = run_facts(_run_dir(tmp_path, [0.2, 0.3, 0.4], max_epochs=3), None, None)
    assert facts["best_epoch"] == 2
    assert facts["epochs_run"] == 3
    assert facts["max_epochs"] == 3
    assert facts["stopped"] == "reached max_epochs (3)"
    assert facts["training_time_s"] == 75.0
    (warning,) = facts["warnings"]
    assert "still rising" in warning
    assert "trainer.max_epochs" in warning


def test_a_run_stopped_early_has_no_warning(tmp_path: Path) -> None:
    facts = run_facts(_run_dir(tmp_path, [0.2, 0.5, 0.4, 0.4, 0.4], max_epochs=20), None, None)
    assert facts["best_epoch"] == 1
    assert facts["stopped"].startswith("early stopping")
    assert facts["warnings"] == []


def test_channels_are_named_from_the_data_else_numbered() -> None:
    assert channel_names(2, {"channel_names": ["green", "UV"]}) == ["green", "UV"]
    assert channel_names(3, {"channel_names": ["green", "UV"]}) == ["channel 0", "channel 1", "channel 2"]
    assert channel_names(1, None) == ["channel 0"]


def test_correlation_axes_cover_the_data_not_minus_one_to_one() -> None:
    low, high = data_limits([np.array([0.76, 0.98, np.nan]), np.array([0.8])])
    assert 0.6 < low < 0.76
    assert 0.98 < high <= 1.05


def test_card_anchors_are_safe_html_ids() -> None:
    assert cards.anchor("session 1/a", 3) == "n-session_1_a-3"


def test_card_drawings_are_well_formed_and_the_png_decodes() -> None:
    from PIL import Image

    time = np.linspace(0.0, 10.0, 50)
    trace = cards.trace_svg(
        time, np.sin(time), np.cos(time), np.sin(time) - 1, np.sin(time) + 1, "spikes", "s"
    )
    ElementTree.fromstring(trace)
    ElementTree.fromstring(cards.readout_svg([10, 12], 3.0, 4.0, 1.5, "ro-a", (3.5, 4.5)))
    uri = cards.diverging_png(np.arange(12.0).reshape(3, 4) - 6, 6.0)
    import base64

    image = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert image.size == (4, 3)
    rgb = np.asarray(image.convert("RGB"))
    assert rgb[0, 0, 2] > rgb[0, 0, 0]  # negative: blue
    assert rgb[2, 3, 0] > rgb[2, 3, 2]  # positive: red


def test_a_constant_trace_still_draws() -> None:
    time = np.arange(5.0)
    ElementTree.fromstring(cards.trace_svg(time, np.zeros(5), np.zeros(5), None, None, "response", "frames"))


@pytest.mark.parametrize("points", [1, 7, 500])
def test_binning_keeps_the_mean(points: int) -> None:
    values = np.random.default_rng(0).normal(size=(3, 400))
    binned, starts = cards._bins(values, points)
    assert binned.shape == (3, min(points, 400))
    assert starts[0] == 0
    if points == 1:
        np.testing.assert_allclose(binned[:, 0], values.mean(axis=1))


def test_a_sessions_other_neurons_are_drawn_once_and_reused() -> None:
    others = cards.readout_others([10, 12], "ro-s", np.arange(500.0) % 10, np.arange(500.0) % 12)
    ElementTree.fromstring(others)
    assert 'id="ro-s"' in others
    card = cards.readout_svg([10, 12], 3.0, 4.0, None, "ro-s", None)
    assert '<use href="#ro-s"/>' in card
    assert len(card) < 1000  # the 500 other neurons are not repeated in every card


def test_the_eval_console_table_uses_the_reports_scores_and_rows() -> None:
    from openretina_cli.commands.eval import console_table

    header, rows = console_table(_summary(test_stimuli=1))
    assert header == ["split", "neurons", "corr.", "baseline corr.", "CC_norm", "FEVE"]
    assert [row[0] for row in rows] == ["val", "test/stim0"]  # one test stimulus: no pooled copy of it
    assert rows[0][4] == "–"  # validation has no CC_norm
    _, pooled = console_table(_summary(test_stimuli=2))
    assert [row[0] for row in pooled] == ["val", "test/stim0", "test/stim1", "test"]
