"""Smoke-test the built wheels the way users install them: outside the workspace, one at a time.

The shared development environment hides packaging mistakes (a sibling imported by accident, a
dependency nobody declared, configs that only exist in the source tree). So this script builds all
three wheels (``uv build`` makes each wheel from its sdist, as a release does), inspects them, and
installs them into fresh virtual environments in a temporary directory:

* openretina-models alone: importing every module loads no training stack and no HDF5, none of
  which is even installed;
* openretina-data alone: likewise without torch;
* openretina-cli with its siblings from the built wheels: ``openretina --help`` and, once the
  training command exists, a one-epoch ``openretina train`` on the tutorial dataset from an empty
  directory without ``--config-path`` (the configs must come from inside the wheel).

Third-party dependencies are pinned to ``uv.lock`` (via ``uv export``) so the installs are
reproducible and come from uv's cache. Prints one PASS/FAIL/SKIPPED line per check and exits
non-zero if any check fails.

Usage::

    uv run python tools/check_wheels.py [--wheel-dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import email.message
import email.parser
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIGS_DIR = REPO_ROOT / "configs"
COMMAND_TIMEOUT_S = 600

DATA, MODELS, CLI = "openretina-data", "openretina-models", "openretina-cli"
IMPORT_NAMES = {DATA: "openretina_data", MODELS: "openretina_models", CLI: "openretina_cli"}

# Top-level modules that must be neither importable nor imported next to a lean wheel.
FORBIDDEN = {
    MODELS: (
        "lightning",
        "pytorch_lightning",
        "hydra",
        "omegaconf",
        "h5py",
        "openretina_data",
        "openretina_cli",
    ),
    DATA: (
        "torch",
        "lightning",
        "pytorch_lightning",
        "hydra",
        "omegaconf",
        "openretina_models",
        "openretina_cli",
    ),
}
# Modules that may fail to import for want of an optional extra that this check leaves out.
OPTIONAL_EXTRAS = {MODELS: ("triton",), DATA: ("torch",)}

# The 1.x tutorial (its dataset, its config), cut to one epoch on the CPU.
CREATE_TUTORIAL_DATA = ("create-data", "data", "--kind", "tutorial")
TRAIN_ONE_EPOCH = (
    "train",
    "--config-name",
    "hdf5_core_readout",
    "paths.data_dir=data",
    "data_io.test_names=[random_noise_2,random_noise_3]",
    "trainer.max_epochs=1",
    "trainer.accelerator=cpu",
)


@dataclass
class Report:
    """Collects check results so the summary lists every one, not just the first failure."""

    results: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, status: str, name: str, detail: str = "") -> None:
        self.results.append((status, name, detail))
        suffix = f": {detail}" if detail else ""
        print(f"[{status}] {name}{suffix}", flush=True)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.add("PASS" if ok else "FAIL", name, "" if ok else detail)
        return ok

    @property
    def failed(self) -> list[tuple[str, str, str]]:
        return [result for result in self.results if result[0] == "FAIL"]


@dataclass(frozen=True)
class Wheel:
    path: Path
    distribution: str
    version: Version

    def metadata(self) -> email.message.Message:
        with zipfile.ZipFile(self.path) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            return email.parser.Parser().parsestr(archive.read(name).decode())

    def names(self) -> set[str]:
        with zipfile.ZipFile(self.path) as archive:
            return set(archive.namelist())


def run(
    command: Sequence[str | Path], *, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing output; a hung command becomes a failed result, not a hung script."""
    try:
        return subprocess.run(
            [str(part) for part in command],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        return subprocess.CompletedProcess(error.cmd, 124, "", f"timed out after {COMMAND_TIMEOUT_S} s")
    except FileNotFoundError as error:
        return subprocess.CompletedProcess(command, 127, "", f"{error.filename}: command not found")


def output_tail(result: subprocess.CompletedProcess[str], lines: int = 25) -> str:
    text = (result.stdout or "") + (result.stderr or "")
    tail = "\n".join(text.strip().splitlines()[-lines:])
    return f"exit {result.returncode}; `{' '.join(map(str, result.args))}`\n{textwrap.indent(tail, '    ')}"


@functools.cache
def uv_cache_dir() -> str:
    return subprocess.run(["uv", "cache", "dir"], capture_output=True, text=True, check=True).stdout.strip()


def clean_env(workdir: Path) -> dict[str, str]:
    """An environment that cannot see the workspace: no inherited venv, no PYTHONPATH."""
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(
        {
            "HOME": str(workdir / "home"),
            "MPLBACKEND": "Agg",
            "WANDB_MODE": "disabled",
            "HYDRA_FULL_ERROR": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            # HOME moves into the temp dir (nothing lands in the user's home); uv keeps its cache.
            "UV_CACHE_DIR": uv_cache_dir(),
        }
    )
    (workdir / "home").mkdir(exist_ok=True)
    return env


def build_wheels(wheel_dir: Path, report: Report) -> dict[str, Wheel] | None:
    started = time.monotonic()
    result = run(["uv", "build", "--all-packages", "-o", wheel_dir], cwd=REPO_ROOT)
    if not report.check("build: uv build --all-packages", result.returncode == 0, output_tail(result)):
        return None
    print(f"       built in {time.monotonic() - started:.1f} s", flush=True)
    return collect_wheels(wheel_dir, report)


def collect_wheels(wheel_dir: Path, report: Report) -> dict[str, Wheel] | None:
    wheels: dict[str, Wheel] = {}
    for path in sorted(wheel_dir.glob("*.whl")):
        name, version, _build, _tags = parse_wheel_filename(path.name)
        wheels[str(name)] = Wheel(path, str(name), version)
    missing = [name for name in IMPORT_NAMES if name not in wheels]
    ok = report.check(
        "build: one wheel per package", not missing, f"no wheel for {', '.join(missing)} in {wheel_dir}"
    )
    return wheels if ok else None


def source_version(distribution: str) -> str:
    """The version as written in the package's own _version.py."""
    version_file = REPO_ROOT / "packages" / distribution / "src" / IMPORT_NAMES[distribution] / "_version.py"
    namespace: dict[str, str] = {}
    exec(version_file.read_text(), namespace)
    return namespace["__version__"]


def inspect_wheels(wheels: dict[str, Wheel], report: Report) -> None:
    """Static checks of each wheel's metadata and contents."""
    for distribution, wheel in wheels.items():
        expected = Version(source_version(distribution))
        report.check(
            f"{distribution}: wheel version matches _version.py",
            wheel.version == expected,
            f"wheel says {wheel.version}, _version.py says {expected}",
        )
        py_typed = f"{IMPORT_NAMES[distribution]}/py.typed"
        report.check(f"{distribution}: ships {py_typed}", py_typed in wheel.names(), f"{wheel.path.name}")
        for line in wheel.metadata().get_all("Requires-Dist") or []:
            requirement = Requirement(line)
            sibling = canonicalize_name(requirement.name)
            if sibling not in wheels:
                continue
            specifiers = {spec.operator for spec in requirement.specifier}
            bounded = bool(specifiers & {">=", ">", "~=", "=="}) and bool(
                specifiers & {"<", "<=", "~=", "=="}
            )
            report.check(
                f"{distribution}: Requires-Dist {line!r} is bounded",
                bounded,
                "a sibling dependency needs a lower and an upper bound (tools/bump_version.py writes them)",
            )
            report.check(
                f"{distribution}: Requires-Dist {line!r} admits {sibling} {wheels[sibling].version}",
                requirement.specifier.contains(wheels[sibling].version, prereleases=True),
                "the bound excludes the sibling being released; run tools/bump_version.py",
            )
    cli_names = wheels[CLI].names()
    sweeper = "hydra_plugins/openretina_sweeper/shared_optuna_sweeper.py"  # hydra.sweeper=shared_optuna
    report.check(f"{CLI}: ships {sweeper}", sweeper in cli_names, f"{wheels[CLI].path.name}")
    config_files = sorted(
        path.relative_to(CONFIGS_DIR).as_posix()
        for path in CONFIGS_DIR.rglob("*")
        if path.is_file() and path.suffix in (".yaml", ".yml")
    )
    missing = [name for name in config_files if f"openretina_cli/configs/{name}" not in cli_names]
    report.check(
        f"{CLI}: wheel ships all {len(config_files)} yaml files of configs/ as openretina_cli/configs/",
        bool(config_files) and not missing,
        f"missing: {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}"
        if config_files
        else f"{CONFIGS_DIR} holds no yaml files, so `openretina train` would have no configs",
    )


def export_constraints(path: Path, report: Report) -> bool:
    """Pin third-party dependencies to the lock so installs are reproducible and hit uv's cache."""
    result = run(
        [
            "uv",
            "export",
            "--frozen",
            "--all-packages",
            "--all-extras",
            "--no-hashes",
            "--no-emit-workspace",
            "--no-header",
            "--no-annotate",
            "-o",
            path,
        ],
        cwd=REPO_ROOT,
    )
    return report.check("constraints: uv export from uv.lock", result.returncode == 0, output_tail(result))


def make_venv(
    workdir: Path,
    name: str,
    requirements: Sequence[str | Path],
    constraints: Path,
    report: Report,
    *extra: str,
) -> Path | None:
    """A fresh venv outside the workspace with exactly ``requirements`` installed."""
    venv = workdir / name
    env = clean_env(workdir)
    result = run(["uv", "venv", "--quiet", "--python", sys.executable, venv], cwd=workdir, env=env)
    if not report.check(f"{name}: create venv", result.returncode == 0, output_tail(result)):
        return None
    python = venv / "bin" / "python"
    started = time.monotonic()
    result = run(
        ["uv", "pip", "install", "--python", python, "--constraints", constraints, *extra, *requirements],
        cwd=workdir,
        env=env,
    )
    installed = " ".join(Path(requirement).name for requirement in requirements)
    if not report.check(f"{name}: install {installed}", result.returncode == 0, output_tail(result)):
        return None
    print(f"       installed in {time.monotonic() - started:.1f} s", flush=True)
    return python


# Runs inside the fresh venv: import every module, then report what got loaded and what exists.
IMPORT_PROBE = """
import importlib, importlib.util, json, pkgutil, sys, traceback
package, forbidden, optional = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(",")
root = importlib.import_module(package)
imported, skipped, errors = [package], {}, {}
for info in pkgutil.walk_packages(root.__path__, prefix=package + "."):
    try:
        importlib.import_module(info.name)
        imported.append(info.name)
    except ImportError as error:
        # A missing extra, raised directly or re-raised with an install hint, is expected here.
        cause, missing = error, None
        while cause is not None and missing is None:
            if isinstance(cause, ModuleNotFoundError) and (cause.name or "").split(".")[0] in optional:
                missing = cause.name
            cause = cause.__cause__ or cause.__context__
        if missing is not None:
            skipped[info.name] = f"{missing}: {error}"
        else:
            errors[info.name] = traceback.format_exc(limit=3)
    except Exception:
        errors[info.name] = traceback.format_exc(limit=3)
loaded = sorted({name.split(".")[0] for name in sys.modules} & set(forbidden))
installed = sorted(name for name in forbidden if importlib.util.find_spec(name) is not None)
print(json.dumps({"file": root.__file__, "imported": imported, "skipped": skipped, "errors": errors,
                  "loaded": loaded, "installed": installed}))
"""


def check_lean_wheel(
    distribution: str, wheels: dict[str, Wheel], workdir: Path, constraints: Path, report: Report
) -> None:
    name = f"{distribution} alone"
    python = make_venv(workdir, f"venv-{distribution}", [wheels[distribution].path], constraints, report)
    if python is None:
        return
    package = IMPORT_NAMES[distribution]
    result = run(
        [
            python,
            "-c",
            IMPORT_PROBE,
            package,
            ",".join(FORBIDDEN[distribution]),
            ",".join(OPTIONAL_EXTRAS[distribution]),
        ],
        cwd=workdir,
        env=clean_env(workdir),
    )
    if not report.check(f"{name}: import {package}", result.returncode == 0, output_tail(result)):
        return
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    report.check(
        f"{name}: imported from the venv, not the workspace",
        str(workdir) in probe["file"] and str(REPO_ROOT) not in probe["file"],
        f"{package} came from {probe['file']}",
    )
    errors = probe["errors"]
    report.check(
        f"{name}: all {len(probe['imported']) + len(errors)} modules import",
        not errors,
        "\n".join(f"{module}:\n{textwrap.indent(trace, '    ')}" for module, trace in errors.items()),
    )
    if probe["skipped"]:
        skipped = "; ".join(f"{module} ({reason})" for module, reason in probe["skipped"].items())
        report.add("INFO", f"{name}: modules left out for want of an optional extra", skipped)
    report.check(
        f"{name}: loads none of {', '.join(FORBIDDEN[distribution])}",
        not probe["loaded"],
        f"loaded: {', '.join(probe['loaded'])}",
    )
    report.check(
        f"{name}: installs none of them",
        not probe["installed"],
        f"installed: {', '.join(probe['installed'])} (a runtime dependency pulls them in)",
    )


def training_available(python: Path, help_text: str, workdir: Path, env: dict[str, str]) -> bool:
    """Training exists once the wheel has a training module or ``openretina --help`` lists ``train``.

    Only then is a failing training run a failure; before, the run is reported as skipped.
    """
    probe = (
        "import importlib.util, sys; "
        "sys.exit(all(importlib.util.find_spec(m) is None "
        "for m in ('openretina_cli.train', 'openretina_cli.train_app', 'openretina_cli.commands.train')))"
    )
    if run([python, "-c", probe], cwd=workdir, env=env).returncode == 0:
        return True
    return re.search(r"^\s+train\b|[{,]train[,}]", help_text, re.MULTILINE) is not None


def check_cli_wheel(
    wheels: dict[str, Wheel], wheel_dir: Path, workdir: Path, constraints: Path, report: Report
) -> None:
    name = f"{CLI} with siblings"
    # Pin the siblings to the versions just built so the resolver must take them from --find-links.
    sibling_pins = workdir / "siblings.txt"
    sibling_pins.write_text("".join(f"{wheel.distribution}=={wheel.version}\n" for wheel in wheels.values()))
    python = make_venv(
        workdir,
        f"venv-{CLI}",
        [wheels[CLI].path],
        constraints,
        report,
        "--find-links",
        str(wheel_dir),
        "--constraints",
        str(sibling_pins),
    )
    if python is None:
        return
    openretina = python.parent / "openretina"
    env = clean_env(workdir)
    result = run([openretina, "--help"], cwd=workdir, env=env)
    report.check(f"{name}: openretina --help", result.returncode == 0, output_tail(result))

    if not training_available(python, result.stdout, workdir, env):
        report.add("SKIPPED", f"{name}: one-epoch openretina train", "SKIPPED: training not available yet")
        return
    run_dir = workdir / "empty-dir"
    run_dir.mkdir()
    started = time.monotonic()
    result = run([openretina, *CREATE_TUTORIAL_DATA], cwd=run_dir, env=env)
    if not report.check(
        f"{name}: openretina {' '.join(CREATE_TUTORIAL_DATA)}", result.returncode == 0, output_tail(result)
    ):
        return
    result = run([openretina, *TRAIN_ONE_EPOCH], cwd=run_dir, env=env)
    report.check(
        f"{name}: one-epoch openretina train from an empty directory, no --config-path "
        f"({time.monotonic() - started:.0f} s)",
        result.returncode == 0,
        output_tail(result, lines=40),
    )


def timed(label: str, step: Callable[[], None]) -> None:
    started = time.monotonic()
    step()
    print(f"       ({label}: {time.monotonic() - started:.1f} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel-dir", type=Path, help="use wheels already built there instead of building")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory for inspection")
    args = parser.parse_args(argv)

    started = time.monotonic()
    report = Report()
    workdir = Path(tempfile.mkdtemp(prefix="openretina-wheels-")).resolve()
    try:
        if args.wheel_dir is not None:
            wheel_dir = args.wheel_dir.resolve()
            wheels = collect_wheels(wheel_dir, report)
        else:
            wheel_dir = workdir / "dist"
            wheels = build_wheels(wheel_dir, report)
        if wheels is not None:
            inspect_wheels(wheels, report)
            constraints = workdir / "constraints.txt"
            if export_constraints(constraints, report):
                timed("models venv", lambda: check_lean_wheel(MODELS, wheels, workdir, constraints, report))
                timed("data venv", lambda: check_lean_wheel(DATA, wheels, workdir, constraints, report))
                timed("cli venv", lambda: check_cli_wheel(wheels, wheel_dir, workdir, constraints, report))
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    counts = {
        status: sum(1 for result in report.results if result[0] == status)
        for status in ("PASS", "FAIL", "SKIPPED")
    }
    print()
    print(
        f"check_wheels: {counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIPPED']} skipped "
        f"in {time.monotonic() - started:.0f} s"
    )
    for _status, name, detail in report.failed:
        print(f"  FAIL {name}\n{textwrap.indent(detail, '       ')}")
    for status, name, detail in report.results:
        if status == "SKIPPED":
            print(f"  SKIPPED {name}: {detail}")
    print("RESULT: FAIL" if report.failed else "RESULT: PASS")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
