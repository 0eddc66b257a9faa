"""Every rule of the Höfling 2024 ROI selection, and its published defaults."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures_published import HOEFLING_SESSIONS, PUBLISHED_HOEFLING_QUALITY, write_hoefling_fixture
from openretina_data.datasets import hoefling_quality_checks, read_hoefling_2024
from openretina_data.datasets.hoefling_2024.quality import select_neurons
from openretina_data.errors import DataError
from openretina_data.quality import QualityReport
from openretina_data.records import Dataset

CONFIG = Path(__file__).parents[2] / "configs/quality_checks/hoefling_2024.yaml"
LEFT, RIGHT = (name for name, _, _ in HOEFLING_SESSIONS)
OFF = {"d_qi": None, "chirp_qi": None, "classifier_confidence": None, "filter_counts": False}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    paths = write_hoefling_fixture(tmp_path_factory.mktemp("hoefling_quality"))
    return read_hoefling_2024(paths["responses"], paths["movies"])


def _ids(result: Dataset) -> dict[str, list[int]]:
    return {name: s.neuron_metadata["neuron_ids"].tolist() for name, s in result.sessions.items()}


def test_config_holds_the_published_numbers() -> None:
    yaml = pytest.importorskip("yaml")  # absent when openretina-data is tested on its own
    config = yaml.safe_load(CONFIG.read_text())
    assert config == PUBLISHED_HOEFLING_QUALITY
    assert config["filter_cell_types"] is True
    assert config["cell_types_list"] == list(range(1, 33))
    assert (config["d_qi"], config["chirp_qi"], config["qi_logic"]) == (0.6, 0.35, "or")
    assert config["classifier_confidence"] == 0.25
    assert (config["filter_counts"], config["count_threshold"]) == (False, 10)


def test_published_selection_step_by_step(dataset: Dataset) -> None:
    config = PUBLISHED_HOEFLING_QUALITY | {"verbose": False}
    result, report = hoefling_quality_checks(dataset, **config)
    assert isinstance(report, QualityReport)
    assert _ids(result) == {LEFT: [1, 2], RIGHT: [1, 2]}
    rows = {(row.session, row.check): row for row in report.rows}
    assert rows[(LEFT, "cell_type")].dropped_ids == (5,)  # type 40: an amacrine cell
    assert rows[(LEFT, "quality_index")].dropped_ids == (4,)  # fails both QIs
    assert rows[(LEFT, "classifier_confidence")].dropped_ids == (3,)
    assert [rows[(LEFT, c)].checked for c in ("cell_type", "quality_index", "classifier_confidence")] == [
        5,
        4,
        3,
    ]
    assert result.sessions[LEFT].tests["natural"].trials.shape == (3, 2, 750)
    assert result.data_info.sessions[LEFT]["n_neurons"] == 2
    assert any("10 ROIs -> 4 ROIs in 2 sessions" in note for note in result.notes)
    assert len(dataset.sessions[LEFT].neuron_metadata["neuron_ids"]) == 5  # the input is untouched


def test_cell_types_rule(dataset: Dataset) -> None:
    result, _ = hoefling_quality_checks(dataset, filter_cell_types=True, cell_types_list=[1, 12, 20], **OFF)
    assert _ids(result)[LEFT] == [1, 3, 4]
    with pytest.raises(DataError, match="cell_types_list"):
        hoefling_quality_checks(dataset, filter_cell_types=True, cell_types_list=None, **OFF)


def test_qi_logic_or_and(dataset: Dataset) -> None:
    settings = OFF | {"d_qi": 0.6, "chirp_qi": 0.35}
    either, _ = hoefling_quality_checks(dataset, qi_logic="or", **settings)
    both, _ = hoefling_quality_checks(dataset, qi_logic="and", **settings)
    assert _ids(either)[LEFT] == [1, 2, 3, 5]  # ROI 2 passes by chirp_qi alone
    assert _ids(both)[LEFT] == [1, 3, 5]  # ROI 2 fails d_qi
    with pytest.raises(DataError, match="qi_logic"):
        hoefling_quality_checks(dataset, qi_logic="xor", **settings)


def test_single_qi_threshold(dataset: Dataset) -> None:
    only_d, _ = hoefling_quality_checks(dataset, **OFF | {"d_qi": 0.6})
    only_chirp, _ = hoefling_quality_checks(dataset, **OFF | {"chirp_qi": 0.45})
    assert _ids(only_d)[LEFT] == [1, 3, 5]
    assert _ids(only_chirp)[LEFT] == [1, 2, 5]


def test_classifier_confidence_rule(dataset: Dataset) -> None:
    result, _ = hoefling_quality_checks(dataset, **OFF | {"classifier_confidence": 0.65})
    assert _ids(result)[LEFT] == [1, 4, 5]


def test_count_rule_drops_small_sessions(dataset: Dataset) -> None:
    smaller = dict(dataset.sessions)
    smaller[RIGHT] = select_neurons(smaller[RIGHT], np.array([True, True, True, False, False]))
    mixed = dataset.replace_sessions(smaller)
    result, report = hoefling_quality_checks(mixed, **OFF | {"filter_counts": True, "count_threshold": 3})
    assert list(result.sessions) == [LEFT]
    assert report.dropped_sessions == [RIGHT]
    kept, _ = hoefling_quality_checks(mixed, **OFF | {"filter_counts": True, "count_threshold": 2})
    assert sorted(kept.sessions) == sorted([LEFT, RIGHT])
    with pytest.raises(DataError, match="no ROI passes"):
        hoefling_quality_checks(mixed, **OFF | {"filter_counts": True, "count_threshold": 5})


def test_missing_field_names_the_rule(dataset: Dataset) -> None:
    session = dataset.sessions[LEFT]
    stripped = {k: v for k, v in session.neuron_metadata.items() if k != "group_confidences"}
    broken = dataset.replace_sessions(
        {
            LEFT: type(session)(
                session.name, session.train_movie, session.train_responses, session.tests, stripped
            )
        }
    )
    with pytest.raises(DataError, match="group_confidences"):
        hoefling_quality_checks(broken, **OFF | {"classifier_confidence": 0.25})


def test_nan_quality_index_fails_the_rule(dataset: Dataset) -> None:
    session = dataset.sessions[LEFT]
    metadata = dict(session.neuron_metadata)
    metadata["d_qi"] = np.full(5, np.nan, dtype=np.float32)
    changed = dict(dataset.sessions)
    changed[LEFT] = type(session)(
        session.name, session.train_movie, session.train_responses, session.tests, metadata
    )
    result, report = hoefling_quality_checks(dataset.replace_sessions(changed), **OFF | {"d_qi": 0.6})
    assert _ids(result) == {RIGHT: [1, 3, 5]}
    assert report.dropped_sessions == [LEFT]


def test_verbose_prints_the_report(dataset: Dataset, capsys: pytest.CaptureFixture[str]) -> None:
    hoefling_quality_checks(dataset, **OFF | {"d_qi": 0.6, "verbose": True})
    err = capsys.readouterr().err
    assert "quality_index" in err
    assert "ROIs ->" in err
