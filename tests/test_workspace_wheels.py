"""tools/check_wheels.py's static wheel checks, on small hand-made wheels in tmp_path.

The full smoke test (build, fresh venvs, a training run) is what CI runs; here we make sure its
checks fail on the mistakes they exist for: a bare sibling requirement, a bound that excludes the
sibling, a missing py.typed, configs left out of the cli wheel.
"""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import pytest
from packaging.version import Version

REPO_ROOT = Path(__file__).resolve().parent.parent
IMPORT_NAMES = {
    "openretina-data": "openretina_data",
    "openretina-models": "openretina_models",
    "openretina-cli": "openretina_cli",
}


@pytest.fixture(scope="module")
def check_wheels() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_wheels", REPO_ROOT / "tools" / "check_wheels.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def configs(tmp_path: Path, check_wheels: ModuleType, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "configs"
    (directory / "model").mkdir(parents=True)
    (directory / "train.yaml").write_text("a: 1\n")
    (directory / "model" / "core.yaml").write_text("b: 2\n")
    monkeypatch.setattr(check_wheels, "CONFIGS_DIR", directory)
    return directory


def make_wheel(
    directory: Path,
    distribution: str,
    version: str,
    requires: Sequence[str] = (),
    files: Sequence[str] = (),
    py_typed: bool = True,
) -> Path:
    package = IMPORT_NAMES[distribution]
    path = directory / f"{package}-{version}-py3-none-any.whl"
    metadata = ["Metadata-Version: 2.4", f"Name: {distribution}", f"Version: {version}"]
    metadata += [f"Requires-Dist: {requirement}" for requirement in requires]
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{package}/__init__.py", "")
        if py_typed:
            archive.writestr(f"{package}/py.typed", "")
        for name in files:
            archive.writestr(name, "")
        archive.writestr(f"{package}-{version}.dist-info/METADATA", "\n".join(metadata) + "\n")
    return path


def inspect(check_wheels: ModuleType, wheel_dir: Path) -> dict[str, str]:
    report = check_wheels.Report()
    wheels = check_wheels.collect_wheels(wheel_dir, report)
    assert wheels is not None
    check_wheels.inspect_wheels(wheels, report)
    return {name: status for status, name, _ in report.results}


def within_minor(version: str) -> str:
    """``>=0.1.0,<0.2``-style bounds that admit ``version`` (0.x versions, as ours are)."""
    major, minor = Version(version).release[:2]
    return f">={version},<{major}.{minor + 1}"


def good_set(
    check_wheels: ModuleType,
    wheel_dir: Path,
    cli_requires: Sequence[str] | None = None,
    files: Sequence[str] = ("openretina_cli/configs/train.yaml", "openretina_cli/configs/model/core.yaml"),
    py_typed: bool = True,
) -> None:
    versions = {name: check_wheels.source_version(name) for name in IMPORT_NAMES}
    make_wheel(wheel_dir, "openretina-data", versions["openretina-data"], ["numpy>=1.26", "h5py>=3.10"])
    make_wheel(wheel_dir, "openretina-models", versions["openretina-models"], ["torch>=2.3"])
    if cli_requires is None:
        cli_requires = [
            f"openretina-data[torch]{within_minor(versions['openretina-data'])}",
            f"openretina-models{within_minor(versions['openretina-models'])}",
            "hydra-core>=1.3.2",
        ]
    # The cli wheel also ships the sweeper plugin that `hparams_search=optuna` uses (issue 23).
    plugin = "hydra_plugins/openretina_sweeper/shared_optuna_sweeper.py"
    make_wheel(
        wheel_dir, "openretina-cli", versions["openretina-cli"], cli_requires, [*files, plugin], py_typed
    )


def failed(results: dict[str, str]) -> list[str]:
    return [name for name, status in results.items() if status == "FAIL"]


def test_a_correct_set_of_wheels_passes(check_wheels: ModuleType, configs: Path, tmp_path: Path) -> None:
    good_set(check_wheels, tmp_path)
    results = inspect(check_wheels, tmp_path)
    assert failed(results) == []
    assert any("ships all 2 yaml files" in name for name in results)


def test_a_bare_sibling_requirement_fails(check_wheels: ModuleType, configs: Path, tmp_path: Path) -> None:
    models = f"openretina-models{within_minor(check_wheels.source_version('openretina-models'))}"
    good_set(check_wheels, tmp_path, cli_requires=["openretina-data[torch]", models])
    assert failed(inspect(check_wheels, tmp_path)) == [
        "openretina-cli: Requires-Dist 'openretina-data[torch]' is bounded"
    ]


def test_a_bound_excluding_the_built_sibling_fails(
    check_wheels: ModuleType, configs: Path, tmp_path: Path
) -> None:
    models = f"openretina-models{within_minor(check_wheels.source_version('openretina-models'))}"
    good_set(check_wheels, tmp_path, cli_requires=["openretina-data[torch]>=9.0,<10", models])
    failures = failed(inspect(check_wheels, tmp_path))
    assert len(failures) == 1
    assert "'openretina-data[torch]>=9.0,<10' admits openretina-data" in failures[0]


def test_missing_configs_and_py_typed_fail(check_wheels: ModuleType, configs: Path, tmp_path: Path) -> None:
    good_set(check_wheels, tmp_path, files=["openretina_cli/configs/train.yaml"], py_typed=False)
    assert sorted(failed(inspect(check_wheels, tmp_path))) == [
        "openretina-cli: ships openretina_cli/py.typed",
        "openretina-cli: wheel ships all 2 yaml files of configs/ as openretina_cli/configs/",
    ]


def test_a_missing_wheel_is_reported(check_wheels: ModuleType, tmp_path: Path) -> None:
    make_wheel(tmp_path, "openretina-data", "0.1.0")
    report = check_wheels.Report()
    assert check_wheels.collect_wheels(tmp_path, report) is None
    assert report.failed[0][2].startswith("no wheel for openretina-models, openretina-cli")
