"""The dataset cache replaces only folders it built (they hold their meta.json)."""

from __future__ import annotations

from pathlib import Path

import pytest
from openretina_data.datasets.cache import remove_stale_build
from openretina_data.errors import DataError


def test_a_stale_build_is_removed(tmp_path: Path) -> None:
    built = tmp_path / "movie"
    built.mkdir()
    (built / "meta.json").write_text("{}")
    (built / "train.npy").write_bytes(b"x")
    remove_stale_build(built)
    assert not built.exists()
    remove_stale_build(built)  # nothing there: nothing to do


def test_a_folder_openretina_did_not_build_is_left_alone(tmp_path: Path) -> None:
    mine = tmp_path / "movie"
    mine.mkdir()
    (mine / "thesis.tex").write_text("mine")
    with pytest.raises(DataError, match="not built by openretina"):
        remove_stale_build(mine)
    assert (mine / "thesis.tex").read_text() == "mine"
