"""The report's figures drawn by two processes: same files, captions, notes and errors as drawing
them all here, torch figures drawn here, and a helper that fails, crashes or hangs costs nothing
but time (its figures are drawn here again)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from openretina_cli.evaluation import figure_jobs
from openretina_cli.evaluation.figure_jobs import Background, FigureJob, draw_all, share

needs_fork = pytest.mark.skipif(
    not figure_jobs.can_fork(), reason="figures are shared only where fork is safe"
)


def _writer(path: Path, note: str | None = None, applies: bool = True) -> FigureJob:
    def draw(notes: list[str]) -> Path | None:
        if note:
            notes.append(note)
        if not applies:
            return None
        path.write_text(str(os.getpid()))
        return path

    return FigureJob(draw)


@pytest.mark.parametrize("parallel", [False, True])
def test_results_come_back_in_order_with_their_notes(tmp_path: Path, parallel: bool) -> None:
    if parallel and not figure_jobs.can_fork():
        pytest.skip("no fork here")
    jobs = [
        _writer(tmp_path / "a.png", "note a"),
        _writer(tmp_path / "b.png", "b does not apply", applies=False),
        _writer(tmp_path / "c.png"),
        _writer(tmp_path / "d.png", "note d"),
    ]
    results = draw_all(jobs, parallel=parallel)
    assert results == [
        (tmp_path / "a.png", ["note a"]),
        (None, ["b does not apply"]),
        (tmp_path / "c.png", []),
        (tmp_path / "d.png", ["note d"]),
    ]
    writers = {Path(p).read_text() for p in ("a.png", "c.png", "d.png") for p in [tmp_path / p]}
    assert (len(writers) == 2) == parallel  # shared between two processes only when asked


def test_torch_figures_stay_here_and_the_work_is_shared_evenly() -> None:
    jobs = [FigureJob(lambda _: None, cost) for cost in (1.0, 1.5, 1.5, 0.7, 1.2)]
    jobs.append(FigureJob(lambda _: None, 2.0, uses_torch=True))
    mine, theirs = share(jobs, extra_cost=0.5)
    assert 5 in mine
    assert 5 not in theirs
    assert sorted(mine + theirs) == list(range(len(jobs)))
    load_here = 0.5 + sum(jobs[i].cost for i in mine)
    load_there = sum(jobs[i].cost for i in theirs)
    assert abs(load_here - load_there) <= 1.5


@needs_fork
def test_a_figure_that_fails_in_the_helper_is_drawn_here(tmp_path: Path) -> None:
    here = os.getpid()

    def flaky(notes: list[str]) -> Path:
        if os.getpid() != here:
            raise RuntimeError("only in the helper")
        (tmp_path / "flaky.png").write_text("here")
        return tmp_path / "flaky.png"

    jobs = [FigureJob(flaky, cost=5.0), _writer(tmp_path / "x.png"), _writer(tmp_path / "y.png")]
    jobs.insert(0, FigureJob(lambda _: None, cost=6.0, uses_torch=True))  # the flaky one goes to the helper
    results = draw_all(jobs, parallel=True)
    assert results[1] == (tmp_path / "flaky.png", [])
    assert (tmp_path / "flaky.png").read_text() == "here"


@needs_fork
def test_an_error_is_raised_here_as_if_drawn_here(tmp_path: Path) -> None:
    def broken(notes: list[str]) -> Path:
        raise ValueError("this figure cannot be drawn")

    jobs = [_writer(tmp_path / "x.png"), FigureJob(broken, cost=3.0), _writer(tmp_path / "y.png")]
    with pytest.raises(ValueError, match="cannot be drawn"):
        draw_all(jobs, parallel=True)


@needs_fork
def test_a_helper_that_dies_or_hangs_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    here = os.getpid()

    def dies(notes: list[str]) -> Path:
        if os.getpid() != here:
            os._exit(3)
        (tmp_path / "dies.png").write_text("here")
        return tmp_path / "dies.png"

    jobs = [FigureJob(lambda _: None, cost=6.0, uses_torch=True), FigureJob(dies, cost=5.0)]
    assert draw_all(jobs, parallel=True)[1] == (tmp_path / "dies.png", [])

    def hangs(notes: list[str]) -> Path:
        if os.getpid() != here:
            import time

            time.sleep(60)
        (tmp_path / "hangs.png").write_text("here")
        return tmp_path / "hangs.png"

    monkeypatch.setattr(figure_jobs, "MIN_PATIENCE_S", 0.5)
    jobs = [FigureJob(lambda _: None, cost=6.0, uses_torch=True), FigureJob(hangs, cost=5.0)]
    assert draw_all(jobs, parallel=True)[1] == (tmp_path / "hangs.png", [])
    assert (tmp_path / "hangs.png").read_text() == "here"


@pytest.mark.parametrize("parallel", [False, True])
def test_background_jobs_share_two_helpers_and_keep_torch_here(tmp_path: Path, parallel: bool) -> None:
    if parallel and not figure_jobs.can_fork():
        pytest.skip("no fork here")
    jobs = [_writer(tmp_path / f"{i}.png", f"note {i}") for i in range(4)]
    jobs.append(FigureJob(_writer(tmp_path / "torch.png").draw, uses_torch=True))
    background = Background(jobs, parallel=parallel)
    results = background.results()
    assert results == [(tmp_path / f"{i}.png", [f"note {i}"]) for i in range(4)] + [
        (tmp_path / "torch.png", [])
    ]
    writers = {(tmp_path / f"{i}.png").read_text() for i in range(4)}
    assert len(writers) == (2 if parallel else 1)
    assert (tmp_path / "torch.png").read_text() == str(os.getpid())
