"""Property-based tests of the commands' options, in the style of a fuzzer.

Hypothesis draws arbitrary values for the flags and overrides of ``eval``, ``mei``, ``import-1x``
and ``create-data`` (numbers at the float limits, NaN, empty strings, paths to files, folders and
nothing) and checks the invariants every command promises:

- exit 0, or one message with no traceback;
- no input changed, and no file written outside the output location;
- no NaN written.

Options that only size the work (``--iterations``, ``--frames``, ``--batch-size``) are drawn from a
small range, so that an example stays a fraction of a second. CI runs the fast profile; a longer
search is ``HYPOTHESIS_PROFILE=long uv run pytest tests/cli/test_cli_fuzz.py -p no:xdist``
(``tools/fuzz_commands.sh``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from robust_support import TINY, write_small_retina

pytestmark = pytest.mark.slow

settings.register_profile(
    "fast", max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("long", max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))

EXP = "simulated_retina_core_readout"
FLOATS = st.one_of(
    st.sampled_from([0.0, -0.0, 1e-300, -1.0, 1e300, 1e30, 3.5e38, math.inf, -math.inf, math.nan]),
    st.floats(allow_nan=True, allow_infinity=True),
)
TEXT = st.one_of(
    st.sampled_from(["", " ", "-", "0", "a=b", "1:2:3", "ünïcödé", "../..", "%s"]), st.text(max_size=12)
)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding one finished tiny run, its data, a file and a folder of the user's."""
    root = tmp_path_factory.mktemp("fuzz")
    data = write_small_retina(root / "data", test_trials=2)
    from openretina_cli.main import main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        main(["train", f"paths.data_dir={data}", f"paths.log_dir={root / 'logs'}", *TINY])
    (root / "user_file.txt").write_text("mine")
    (root / "user_folder").mkdir()
    (root / "user_folder" / "notes.txt").write_text("mine too")
    return root


def run_dir(root: Path) -> Path:
    (run,) = sorted((root / "logs" / "runs" / EXP).iterdir())
    return run


@contextlib.contextmanager
def copy_of(sandbox: Path) -> Iterator[Path]:
    """A throw-away copy, so one example's outputs never reach the next."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "box"
        shutil.copytree(sandbox, root, symlinks=True)
        yield root


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def out_value(root: Path, choice: str) -> str | None:
    """An --out drawn among the awkward places: none, new, a file, a folder with files, the run..."""
    run = run_dir(root)
    return {
        "none": None,
        "new": str(root / "new_out"),
        "file": str(root / "user_file.txt"),
        "inside_file": str(root / "user_file.txt" / "x"),
        "user_folder": str(root / "user_folder"),
        "run": str(run),
        "model": str(run / "model"),
        "data": str(root / "data"),
        "root": str(root),
    }[choice]


OUTS = st.sampled_from(["none", "new", "file", "inside_file", "user_folder", "run", "model", "data", "root"])


def run_command(args: list[str]) -> tuple[int, str]:
    from openretina_cli.main import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(args)
        except SystemExit as ex:
            code = ex.code if isinstance(ex.code, int) else (0 if ex.code is None else 1)
    return code, out.getvalue() + err.getvalue()


def check_invariants(
    root: Path, before: dict[str, str], allowed: Path | None, code: int, output: str
) -> None:
    assert "Traceback" not in output, output
    if code != 0:
        assert output.strip(), "a failure must say why"
    after = snapshot(root)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    if code != 0:
        assert not changed, f"a failed command changed {sorted(changed)}"
        return
    outside = [
        k for k in changed if allowed is None or not (root / k).resolve().is_relative_to(allowed.resolve())
    ]
    assert not outside, f"written outside the output location: {outside}"
    for name in changed:
        path = root / name
        if path.suffix == ".json" and path.exists():
            json.loads(path.read_text(), parse_constant=_no_nan)
        if path.suffix == ".safetensors" and path.exists():
            from safetensors.torch import load_file

            assert all(bool(t.isfinite().all()) for t in load_file(str(path)).values()), name


def _no_nan(name: str) -> None:
    raise AssertionError(f"{name} written into strict JSON")


def allowed_out(root: Path, out: str | None, default: str) -> Path:
    return Path(out) if out is not None else run_dir(root) / default


@given(
    out=OUTS,
    device=st.one_of(st.sampled_from(["cpu", "gpu", "cuda", "cuda:7", "mps", "", "cpu:0"]), TEXT),
    split=st.one_of(st.none(), st.sampled_from(["val", "test", "all", "natural_test", "nope", ""]), TEXT),
    cutoff=FLOATS,
    override=st.one_of(
        st.none(),
        st.sampled_from(
            ["dataloader.batch_size=lots", "dataloader.batch_size=0", "seed=1e400", "nope=1", "=", "paths"]
        ),
        TEXT,
    ),
)
def test_eval_options(
    sandbox: Path, out: str, device: str, split: str | None, cutoff: float, override: str | None
) -> None:
    with copy_of(sandbox) as root:
        target = out_value(root, out)
        args = [
            "eval",
            str(run_dir(root)),
            "--no-figures",
            "--device",
            device,
            f"--var-ratio-cutoff={cutoff}",
        ]
        args += [] if target is None else ["--out", target]
        args += [] if split is None else [f"--split={split}"]
        args += [] if override is None else [override]
        before = snapshot(root)
        code, output = run_command(args)
        check_invariants(root, before, allowed_out(root, target, "eval"), code, output)


@given(
    out=OUTS,
    lr=FLOATS,
    norm=st.one_of(st.none(), FLOATS),
    spatial=FLOATS,
    temporal=FLOATS,
    iterations=st.integers(-2, 3),
    frames=st.one_of(st.none(), st.integers(-1, 40)),
    neurons=st.one_of(st.none(), st.sampled_from(["0", "0-1", "3-1", "99", "-1", "a", ""]), TEXT),
    window=st.one_of(st.none(), st.sampled_from(["0:1", "5:2", "0:999", "x"]), TEXT),
    value_range=st.one_of(st.none(), st.sampled_from(["-3:3", "3:-3", "0:0", "nan:1", "-inf:inf"]), TEXT),
)
def test_mei_options(
    sandbox: Path,
    out: str,
    lr: float,
    norm: float | None,
    spatial: float,
    temporal: float,
    iterations: int,
    frames: int | None,
    neurons: str | None,
    window: str | None,
    value_range: str | None,
) -> None:
    with copy_of(sandbox) as root:
        target = out_value(root, out)
        args = ["mei", str(run_dir(root)), "--no-figures", f"--lr={lr}", f"--iterations={iterations}"]
        args += [f"--spatial-sigma={spatial}", f"--temporal-sigma={temporal}", "--session", "session_0"]
        args += [] if target is None else ["--out", target]
        args += [] if norm is None else [f"--norm={norm}"]
        args += [] if frames is None else [f"--frames={frames}"]
        args += [] if neurons is None else [f"--neurons={neurons}"]
        args += [] if window is None else [f"--window={window}"]
        args += [] if value_range is None else [f"--range={value_range}"]
        before = snapshot(root)
        code, output = run_command(args)
        check_invariants(root, before, allowed_out(root, target, "mei"), code, output)


@given(source=st.sampled_from(["run", "model", "file", "folder", "missing", "", "name"]), out=OUTS)
def test_import_1x_options(sandbox: Path, source: str, out: str) -> None:
    with copy_of(sandbox) as root:
        run = run_dir(root)
        checkpoint = {
            "run": str(run),
            "model": str(run / "model" / "model.safetensors"),
            "file": str(root / "user_file.txt"),
            "folder": str(root / "user_folder"),
            "missing": str(root / "missing.ckpt"),
            "": "",
            "name": "not_a_published_model",
        }[source]
        target = out_value(root, out) or str(root / "imported")
        before = snapshot(root)
        code, output = run_command(["import-1x", checkpoint, target])
        check_invariants(root, before, Path(target), code, output)


@given(
    out=OUTS,
    kind=st.sampled_from(["tutorial", "retina"]),
    number=st.one_of(st.none(), st.integers(-3, 3)),
    option=st.one_of(
        st.none(), st.sampled_from(["num_neurons=0", "seed=x", "nope=1", "height=-1", "=", "a"]), TEXT
    ),
)
def test_create_data_options(
    sandbox: Path, out: str, kind: str, number: int | None, option: str | None
) -> None:
    with copy_of(sandbox) as root:
        target = out_value(root, out) or str(root / "created")
        args = ["create-data", target, "--kind", kind, "--num-stimuli=1", "--clip-length=4"]
        args += [] if number is None else [f"--num-sessions={number}"]
        args += [] if option is None else ["--option", option]
        before = snapshot(root)
        code, output = run_command(args)
        check_invariants(root, before, Path(target), code, output)
