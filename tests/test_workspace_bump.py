"""tools/bump_version.py on a copy of the workspace's package metadata in tmp_path."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {
    "openretina-data": "openretina_data",
    "openretina-models": "openretina_models",
    "openretina-cli": "openretina_cli",
}


@pytest.fixture(scope="module")
def bump() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bump_version", REPO_ROOT / "tools" / "bump_version.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """The root pyproject and each package's pyproject and _version.py, copied; nothing else."""
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for distribution, package in PACKAGES.items():
        source = REPO_ROOT / "packages" / distribution
        target = tmp_path / "packages" / distribution
        (target / "src" / package).mkdir(parents=True)
        shutil.copy(source / "pyproject.toml", target / "pyproject.toml")
        shutil.copy(source / "src" / package / "_version.py", target / "src" / package / "_version.py")
    return tmp_path


def set_version(tree: Path, distribution: str, version: str) -> None:
    path = tree / "packages" / distribution / "src" / PACKAGES[distribution] / "_version.py"
    path.write_text(f'__version__ = "{version}"\n')


def version_of(tree: Path, distribution: str) -> str:
    path = tree / "packages" / distribution / "src" / PACKAGES[distribution] / "_version.py"
    namespace: dict[str, str] = {}
    exec(path.read_text(), namespace)
    return namespace["__version__"]


def cli_dependencies(tree: Path) -> list[str]:
    text = (tree / "packages" / "openretina-cli" / "pyproject.toml").read_text()
    return tomllib.loads(text)["project"]["dependencies"]


def run(bump: ModuleType, tree: Path, *args: str) -> int:
    return bump.main([*args, "--root", str(tree), "--no-lock"])


@pytest.mark.parametrize(
    ("start", "request_", "expected", "bounds"),
    [
        ("0.1.0", "minor", "0.2.0", ">=0.2.0,<0.3"),
        ("0.1.0", "patch", "0.1.1", ">=0.1.1,<0.2"),
        ("0.1.4", "major", "1.0.0", ">=1.0.0,<2"),
        ("1.2.3", "minor", "1.3.0", ">=1.3.0,<2"),
        ("0.2.0rc1", "patch", "0.2.0", ">=0.2.0,<0.3"),
        ("0.1.0", "0.3.0b1", "0.3.0b1", ">=0.3.0b1,<0.4"),
    ],
)
def test_bump_moves_version_and_every_bound(
    bump: ModuleType, tree: Path, start: str, request_: str, expected: str, bounds: str
) -> None:
    set_version(tree, "openretina-data", start)
    assert run(bump, tree, "openretina-data", request_) == 0
    assert version_of(tree, "openretina-data") == expected
    dependencies = cli_dependencies(tree)
    assert f"openretina-data[torch]{bounds}" in dependencies
    assert "openretina-models>=0.1.0,<0.2" in dependencies  # the other sibling is left alone
    assert version_of(tree, "openretina-models") == "0.1.0"


def test_bump_accepts_import_style_names_and_keeps_layout(bump: ModuleType, tree: Path) -> None:
    before = (tree / "packages" / "openretina-cli" / "pyproject.toml").read_text()
    assert run(bump, tree, "openretina_models", "minor") == 0
    after = (tree / "packages" / "openretina-cli" / "pyproject.toml").read_text()
    changed = [
        (old, new) for old, new in zip(before.splitlines(), after.splitlines(), strict=True) if old != new
    ]
    assert changed == [('    "openretina-models>=0.1.0,<0.2",', '    "openretina-models>=0.2.0,<0.3",')]


def test_bump_keeps_extras_and_markers(bump: ModuleType, tree: Path) -> None:
    pyproject = tree / "packages" / "openretina-cli" / "pyproject.toml"
    text = pyproject.read_text().replace(
        '"openretina-models>=0.1.0,<0.2",',
        "\"openretina-models>=0.1.0,<0.2; sys_platform == 'linux'\",",
    )
    text = text.replace(
        'wandb = ["wandb>=0.17"]', 'wandb = ["wandb>=0.17", "openretina-models[triton]>=0.1.0,<0.2"]'
    )
    pyproject.write_text(text)
    assert run(bump, tree, "openretina-models", "0.2.0") == 0
    project = tomllib.loads(pyproject.read_text())["project"]
    assert "openretina-models>=0.2.0,<0.3; sys_platform == 'linux'" in project["dependencies"]
    assert project["optional-dependencies"]["wandb"] == [
        "wandb>=0.17",
        "openretina-models[triton]>=0.2.0,<0.3",
    ]


def test_dry_run_prints_a_diff_and_writes_nothing(
    bump: ModuleType, tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {path: path.read_bytes() for path in tree.rglob("*") if path.is_file()}
    assert run(bump, tree, "openretina-data", "minor", "--dry-run") == 0
    after = {path: path.read_bytes() for path in tree.rglob("*") if path.is_file()}
    assert before == after
    out = capsys.readouterr().out
    assert '-__version__ = "0.1.0"' in out
    assert '+__version__ = "0.2.0"' in out
    assert '+    "openretina-data[torch]>=0.2.0,<0.3",' in out
    assert "+++ b/packages/openretina-cli/pyproject.toml" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("openretina-foo", "minor"), "unknown package 'openretina-foo'; choose one of"),
        (("openretina-data", "0.0.9"), "0.0.9 is not greater than the current version 0.1.0"),
        (("openretina-data", "bigger"), "'bigger' is neither a version"),
    ],
)
def test_mistakes_are_explained_and_change_nothing(
    bump: ModuleType, tree: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, str], message: str
) -> None:
    before = {path: path.read_bytes() for path in tree.rglob("*") if path.is_file()}
    assert run(bump, tree, *args) == 1
    assert message in capsys.readouterr().err
    assert before == {path: path.read_bytes() for path in tree.rglob("*") if path.is_file()}


def test_missing_version_line_names_the_file(
    bump: ModuleType, tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tree / "packages" / "openretina-data" / "src" / "openretina_data" / "_version.py"
    path.write_text("VERSION = '0.1.0'\n")
    assert run(bump, tree, "openretina-data", "patch") == 1
    assert f"{path}: no line `__version__" in capsys.readouterr().err


def test_bump_runs_uv_lock_and_reports_its_failure(
    bump: ModuleType, tree: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[tuple[list[str], Path]] = []

    def fake_run(command: list[str], *, cwd: Path, check: bool) -> subprocess.CompletedProcess[str]:
        calls.append((command, cwd))
        return subprocess.CompletedProcess(command, 2)

    monkeypatch.setattr(bump.subprocess, "run", fake_run)
    assert bump.main(["openretina-data", "patch", "--root", str(tree)]) == 1
    assert calls == [(["uv", "lock"], tree)]
    assert "`uv lock` failed" in capsys.readouterr().err
    assert version_of(tree, "openretina-data") == "0.1.1"


@pytest.mark.slow
def test_bump_refreshes_the_lock(bump: ModuleType, tmp_path: Path) -> None:
    """On a full copy of the packages and lock, the bump leaves a lock that `uv lock --check` accepts."""
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    shutil.copytree(REPO_ROOT / "configs", tmp_path / "configs")
    for distribution in PACKAGES:
        shutil.copytree(
            REPO_ROOT / "packages" / distribution,
            tmp_path / "packages" / distribution,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    assert bump.main(["openretina-data", "minor", "--root", str(tmp_path)]) == 0
    check = subprocess.run(
        ["uv", "lock", "--check", "--offline"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stderr
