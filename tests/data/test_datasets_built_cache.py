"""The cache of built movies replaces only folders a build wrote (their ``meta.json`` marker).

The project's write rule: a folder at a built movie's cache path that a build did not write (no
marker) is someone else's, so the build stops with one message and leaves it exactly as it was.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from openretina_data import DataError
from openretina_data.datasets.fetching import BUILT_MARKER, cached_movies


def build_movie(scratch: Path) -> dict[str, object]:
    np.save(scratch / "train.npy", np.zeros((1, 4, 3, 2), dtype=np.float32))
    return {"frames": 4}


def test_a_folder_without_the_marker_is_left_as_it_is(tmp_path: Path) -> None:
    folder = tmp_path / "cache" / "movie"
    folder.mkdir(parents=True)
    mine = folder / "notes.txt"
    mine.write_bytes(b"a user's file")
    with pytest.raises(DataError, match=f"not built by openretina \\(no {BUILT_MARKER} in it\\)") as caught:
        cached_movies(folder, {"version": 1}, ["train"], build_movie)
    assert str(folder) in str(caught.value)
    assert "Fix:" in str(caught.value)
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    assert mine.read_bytes() == b"a user's file"
    assert sorted(p.name for p in folder.parent.iterdir()) == ["movie", "movie.lock"]  # no scratch left


def test_an_earlier_build_and_an_empty_folder_are_replaced(tmp_path: Path) -> None:
    folder = tmp_path / "movie"
    folder.mkdir()  # empty: nothing of anyone's to lose
    frames, meta, built = cached_movies(folder, {"version": 1}, ["train"], build_movie)
    assert built
    assert meta["frames"] == 4
    assert frames["train"].shape == (1, 4, 3, 2)
    assert json.loads((folder / BUILT_MARKER).read_text())["source_key"] == {"version": 1}
    _, _, rebuilt = cached_movies(folder, {"version": 2}, ["train"], build_movie)  # source changed
    assert rebuilt
    assert json.loads((folder / BUILT_MARKER).read_text())["source_key"] == {"version": 2}
    _, _, again = cached_movies(folder, {"version": 2}, ["train"], build_movie)
    assert not again
