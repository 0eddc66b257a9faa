"""The figure zygote (issue 24): a process forked at start-up with matplotlib loaded, whose drawers
draw the report's figures from plain data, so that a training run never imports matplotlib. Same
results, notes and errors as drawing here; a drawer that fails, dies or hangs costs only time; no
process outlives the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from openretina_cli.evaluation import figure_jobs, figure_zygote
from openretina_cli.evaluation.figure_jobs import Background, FigureCall, FigureJob, draw_all

needs_fork = pytest.mark.skipif(not figure_jobs.can_fork(), reason="the zygote runs only where fork is safe")
HERE = f"{__name__}:"


def write_pids(path: Path, note: str | None = None, notes: list[str] | None = None) -> Path:
    """A figure job as plain data: writes who drew it (pid and parent pid)."""
    if note and notes is not None:
        notes.append(note)
    path.write_text(f"{os.getpid()} {os.getppid()}")
    return path


def only_here(path: Path, here: int, how: str) -> Path:
    """Fails (`how`: raise, die, hang) anywhere but in process `here`."""
    if os.getpid() != here:
        if how == "raise":
            raise RuntimeError("only here")
        if how == "die":
            os._exit(3)
        time.sleep(60)
    path.write_text("here")
    return path


def broken(path: Path) -> Path:
    raise ValueError("this figure cannot be drawn")


def _job(path: Path, note: str | None = None, cost: float = 1.0) -> FigureJob:
    return FigureJob(FigureCall(HERE + "write_pids", (path, note), notes=True), cost)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _gone(pid: int, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def zygote() -> object:
    started = figure_zygote.start(__name__)
    assert started is not None
    yield started
    figure_zygote.stop()
    assert figure_zygote.current() is None
    assert _gone(started.pid)


@needs_fork
def test_background_jobs_are_drawn_by_two_of_its_drawers(tmp_path: Path, zygote: object) -> None:
    jobs = [_job(tmp_path / f"{i}.png", f"note {i}") for i in range(4)]
    results = Background(jobs).results()
    assert results == [(tmp_path / f"{i}.png", [f"note {i}"]) for i in range(4)]
    drawers = {tuple(map(int, (tmp_path / f"{i}.png").read_text().split())) for i in range(4)}
    assert {parent for _, parent in drawers} == {zygote.pid}  # type: ignore[attr-defined]
    assert len({pid for pid, _ in drawers}) == 2
    assert os.getpid() not in {pid for pid, _ in drawers}


@needs_fork
def test_draw_all_leaves_nothing_but_torch_figures_here(tmp_path: Path, zygote: object) -> None:
    torch_job = FigureJob(FigureCall(HERE + "write_pids", (tmp_path / "torch.png",)), uses_torch=True)
    jobs = [_job(tmp_path / "a.png", "a"), torch_job, _job(tmp_path / "b.png")]
    assert draw_all(jobs) == [
        (tmp_path / "a.png", ["a"]),
        (tmp_path / "torch.png", []),
        (tmp_path / "b.png", []),
    ]
    assert (tmp_path / "torch.png").read_text().split()[0] == str(os.getpid())
    for name in ("a.png", "b.png"):
        assert (tmp_path / name).read_text().split()[1] == str(zygote.pid)  # type: ignore[attr-defined]


@needs_fork
@pytest.mark.parametrize("how", ["raise", "die", "hang"])
def test_what_a_drawer_does_not_deliver_is_drawn_here(
    tmp_path: Path, zygote: object, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(figure_jobs, "MIN_PATIENCE_S", 0.5)
    flaky = FigureJob(FigureCall(HERE + "only_here", (tmp_path / "flaky.png", os.getpid(), how)), cost=5.0)
    background = Background([flaky, _job(tmp_path / "x.png")])
    drawers = [helper.pid for helper in background.helpers]
    assert background.results() == [(tmp_path / "flaky.png", []), (tmp_path / "x.png", [])]
    assert (tmp_path / "flaky.png").read_text() == "here"
    assert all(_gone(pid) for pid in drawers)  # the hung one was killed


@needs_fork
def test_a_dead_zygote_is_replaced_by_copies_of_this_process(tmp_path: Path, zygote: object) -> None:
    os.kill(zygote.pid, 9)  # type: ignore[attr-defined]
    jobs = [_job(tmp_path / f"{i}.png", f"note {i}") for i in range(3)]
    assert Background(jobs).results() == [(tmp_path / f"{i}.png", [f"note {i}"]) for i in range(3)]
    assert figure_zygote.current() is None  # stopped and reaped when it did not answer
    assert {(tmp_path / f"{i}.png").read_text().split()[1] for i in range(3)} == {str(os.getpid())}


@needs_fork
def test_an_error_is_raised_here_as_if_drawn_here(tmp_path: Path, zygote: object) -> None:
    jobs = [_job(tmp_path / "x.png"), FigureJob(FigureCall(HERE + "broken", (tmp_path / "b.png",)))]
    with pytest.raises(ValueError, match="cannot be drawn"):
        draw_all(jobs)


@needs_fork
def test_jobs_that_are_not_plain_data_are_drawn_by_a_copy_of_this_process(
    tmp_path: Path, zygote: object
) -> None:
    jobs = [FigureJob(lambda notes, i=i: write_pids(tmp_path / f"{i}.png", None, notes)) for i in range(3)]
    assert Background(jobs).results() == [(tmp_path / f"{i}.png", []) for i in range(3)]
    parents = {(tmp_path / f"{i}.png").read_text().split()[1] for i in range(3)}
    assert parents == {str(os.getpid())}


@needs_fork
def test_a_forked_copy_of_the_run_does_not_use_its_zygote(zygote: object) -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write_end, b"none" if figure_zygote.current() is None else b"some")
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    assert os.read(read_end, 4) == b"none"
    os.close(read_end)
    assert figure_zygote.current() is zygote


@needs_fork
def test_the_zygote_ends_with_the_process_that_started_it(tmp_path: Path) -> None:
    script = (
        "import os, sys\n"
        "from openretina_cli.evaluation import figure_zygote\n"
        "z = figure_zygote.start('json')\n"
        "print(z.pid, flush=True)\n"
        "os._exit(0)\n"  # no stop(), no exit handlers: as if the run were killed
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert _gone(int(out.stdout.split()[0]))


def test_no_zygote_where_fork_is_not_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    from openretina_cli.commands import train

    seen: list[object] = []
    monkeypatch.setattr(train, "_run_hydra_app", lambda args, prog: seen.append(figure_zygote.current()))
    monkeypatch.setattr(figure_jobs, "can_fork", lambda: False)
    train.run_train(["seed=1"])
    assert seen == [None]


@needs_fork
def test_a_training_command_starts_one_and_stops_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from openretina_cli.commands import train

    seen: list[object] = []
    monkeypatch.setattr(train, "_run_hydra_app", lambda args, prog: seen.append(figure_zygote.current()))
    train.run_train(["--cfg", "job"])
    train.run_train(["seed=1"])
    assert seen[0] is None
    assert seen[1] is not None
    assert figure_zygote.current() is None
    assert _gone(seen[1].pid)  # type: ignore[attr-defined]


RUN = """
import json, sys
sys.path.insert(0, {tests!r})
if {no_fork}:
    from openretina_cli.evaluation import figure_jobs
    figure_jobs.can_fork = lambda: False
from robust_support import TINY
from openretina_cli.commands.train import run_train
run_train(["paths.data_dir={data}", "paths.log_dir={log}", *TINY, "trainer.max_epochs=1"])
print(json.dumps({{"matplotlib": "matplotlib" in sys.modules}}))
"""


@pytest.mark.slow
@needs_fork
def test_a_training_run_never_imports_matplotlib_and_reports_the_same(tmp_path: Path) -> None:
    """A whole `openretina train` in a fresh process: with the zygote its own process never
    imports matplotlib, and the report's files are those of drawing every figure in it."""
    from robust_support import write_small_retina

    data = write_small_retina(tmp_path / "data", neurons_per_session=5, num_colors=2, test_trials=4)
    reports, imported = [], []
    for no_fork in (False, True):
        log = tmp_path / f"log_{no_fork}"
        code = RUN.format(tests=str(Path(__file__).parent), no_fork=no_fork, data=data, log=log)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600
        )
        assert out.returncode == 0, out.stderr[-3000:]
        imported.append(json.loads(out.stdout.strip().splitlines()[-1])["matplotlib"])
        (run,) = (log / "runs").glob("*/*")
        reports.append(run / "eval")
    assert imported == [False, True]
    zygote, here = reports
    names = sorted(p.name for p in (here / "figures").iterdir())
    assert len(names) >= 7
    assert sorted(p.name for p in (zygote / "figures").iterdir()) == names
    for name in names:
        assert (zygote / "figures" / name).read_bytes() == (here / "figures" / name).read_bytes(), name
    for name in ("summary.json", "page.json"):
        ours, theirs = (json.loads((folder / name).read_text()) for folder in (zygote, here))
        assert ours.get("notes") == theirs.get("notes")
        assert ours.get("figures") == theirs.get("figures")
    assert (zygote / "cards.npz").read_bytes() == (here / "cards.npz").read_bytes()
