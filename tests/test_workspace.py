"""The workspace's promises, checked: boundaries between packages, one version per package, bounded
sibling dependencies and configs shipped with the cli. Build tests are marked slow."""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
import tarfile
import textwrap
import tomllib
import types
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {
    "openretina-data": "openretina_data",
    "openretina-models": "openretina_models",
    "openretina-cli": "openretina_cli",
}
BIN = Path(sys.executable).parent


def load_toml(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text())


def package_pyproject(distribution: str) -> dict[str, Any]:
    return load_toml(REPO_ROOT / "packages" / distribution / "pyproject.toml")


def version_file(distribution: str) -> Path:
    relative = package_pyproject(distribution)["tool"]["hatch"]["version"]["path"]
    return REPO_ROOT / "packages" / distribution / relative


def written_version(distribution: str) -> Version:
    match = re.search(r'__version__\s*=\s*"([^"]+)"', version_file(distribution).read_text())
    assert match is not None, f"{version_file(distribution)} has no __version__ line"
    return Version(match.group(1))


def sibling_requirements(distribution: str) -> list[Requirement]:
    project = package_pyproject(distribution)["project"]
    declared = list(project.get("dependencies", []))
    for group in project.get("optional-dependencies", {}).values():
        declared.extend(group)
    requirements = [Requirement(text) for text in declared]
    return [req for req in requirements if canonicalize_name(req.name) in PACKAGES]


def compatible_bounds(version: Version) -> str:
    """Mirror of tools/bump_version.py, stated independently so one cannot drift without the other."""
    major, minor = version.release[0], version.release[1]
    return f">={version},<{major}.{minor + 1}" if major == 0 else f">={version},<{major + 1}"


# --- boundaries -------------------------------------------------------------------------------------


def test_import_linter_contracts_are_kept() -> None:
    result = subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def contract_modules(contract: dict[str, Any]) -> set[str]:
    """Every module a contract names: sources and forbidden modules, or each layer in each container."""
    if contract["type"] == "layers":
        return {
            f"{container}.{name.strip(' ()')}"
            for container in contract["containers"]
            for layer in contract["layers"]
            for name in re.split(r"[|:]", layer)
        }
    return {*contract["source_modules"], *contract["forbidden_modules"]}


def test_import_linter_contracts_forbid_what_the_architecture_forbids() -> None:
    contracts = load_toml(REPO_ROOT / "pyproject.toml")["tool"]["importlinter"]["contracts"]
    forbidden: dict[str, set[str]] = {}
    for contract in contracts:
        assert contract["type"] in ("forbidden", "layers")
        if contract["type"] == "layers":
            continue
        for source in contract["source_modules"]:
            forbidden.setdefault(source, set()).update(contract["forbidden_modules"])
    assert {"lightning", "hydra", "omegaconf", "h5py", "openretina_cli"} <= forbidden["openretina_models"]
    assert {"lightning", "hydra", "openretina_models", "openretina_cli"} <= forbidden["openretina_data"]
    layered = {container for c in contracts if c["type"] == "layers" for container in c["containers"]}
    assert {"openretina_models", "openretina_data"} <= layered  # each package's order is written down


def test_import_linter_catches_a_forbidden_import(tmp_path: Path) -> None:
    """The contract bites: a models module importing lightning makes lint-imports fail."""
    package = tmp_path / "openretina_models"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "trainer.py").write_text("import lightning\n")
    contracts = load_toml(REPO_ROOT / "pyproject.toml")["tool"]["importlinter"]["contracts"]
    named = {m for c in contracts for m in contract_modules(c)}
    for module in sorted(m for m in named if m.startswith("openretina_") and m != "openretina_models"):
        parts = module.split(".")  # every module a contract names must exist, as an empty package
        for depth in range(1, len(parts) + 1):
            package = tmp_path.joinpath(*parts[:depth])
            package.mkdir(exist_ok=True)
            (package / "__init__.py").touch()
    config = (REPO_ROOT / "pyproject.toml").read_text()
    (tmp_path / "pyproject.toml").write_text(config[config.index("[tool.importlinter]") :])
    result = subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": str(BIN)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "openretina_models.trainer -> lightning" in result.stdout


# --- one version per package, bounded siblings -------------------------------------------------------


@pytest.mark.parametrize("distribution", sorted(PACKAGES))
def test_version_lives_in_one_file(distribution: str) -> None:
    project = package_pyproject(distribution)["project"]
    assert "version" not in project, f"{distribution}: pyproject.toml must not repeat the version"
    assert "version" in project["dynamic"]
    written_version(distribution)  # parses
    source = REPO_ROOT / "packages" / distribution / "src" / PACKAGES[distribution]
    others = [
        path.relative_to(REPO_ROOT).as_posix()
        for path in source.rglob("*.py")
        if path != version_file(distribution)
        and re.search(r"^__version__\s*=\s*['\"]", path.read_text(), re.M)
    ]
    assert not others, f"a second version literal in {others}; import it from _version.py instead"


@pytest.mark.parametrize("distribution", sorted(PACKAGES))
def test_package_reexports_the_written_version(distribution: str) -> None:
    """``openretina_x.__version__`` comes from _version.py (read statically: importing torch is slow)."""
    package = PACKAGES[distribution]
    init = REPO_ROOT / "packages" / distribution / "src" / package / "__init__.py"
    imports = [
        node
        for node in ast.walk(ast.parse(init.read_text()))
        if isinstance(node, ast.ImportFrom)
        and node.module in (f"{package}._version", "_version")
        and any(alias.name == "__version__" for alias in node.names)
    ]
    assert imports, f"{init}: add `from {package}._version import __version__`"


@pytest.mark.parametrize("distribution", sorted(PACKAGES))
def test_sibling_bounds_match_the_siblings_versions(distribution: str) -> None:
    for requirement in sibling_requirements(distribution):
        sibling = str(canonicalize_name(requirement.name))
        expected = compatible_bounds(written_version(sibling))
        assert str(requirement.specifier) == str(Requirement(f"x{expected}").specifier), (
            f"packages/{distribution}/pyproject.toml: {requirement} should read "
            f"{requirement.name}{expected}; move versions with tools/bump_version.py, which rewrites "
            "the bounds too, instead of editing them by hand"
        )


def test_cli_depends_on_both_siblings_with_bounds() -> None:
    names = {str(canonicalize_name(req.name)) for req in sibling_requirements("openretina-cli")}
    assert names == {"openretina-data", "openretina-models"}


def test_lean_packages_do_not_depend_on_siblings() -> None:
    assert sibling_requirements("openretina-models") == []
    assert sibling_requirements("openretina-data") == []


# --- configs shipped with the cli --------------------------------------------------------------------


def load_build_hook() -> type:
    """Load hatch_build.py against a minimal stand-in for hatchling's hook base class.

    hatchling is a build-time dependency, not installed in the dev environment; the slow build test
    below runs the real thing.
    """
    interface = types.ModuleType("hatchling.builders.hooks.plugin.interface")

    class BuildHookInterface:
        def __init__(self, root: str, target_name: str) -> None:
            self.root = root
            self.target_name = target_name

    interface.BuildHookInterface = BuildHookInterface  # type: ignore[attr-defined]
    names = ["hatchling", "hatchling.builders", "hatchling.builders.hooks", "hatchling.builders.hooks.plugin"]
    stand_ins = {name: types.ModuleType(name) for name in names}
    stand_ins[interface.__name__] = interface
    saved = {name: sys.modules.get(name) for name in stand_ins}
    sys.modules.update(stand_ins)
    try:
        spec = importlib.util.spec_from_file_location(
            "hatch_build", REPO_ROOT / "packages/openretina-cli/hatch_build.py"
        )
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
    return module.CustomBuildHook


def test_cli_pyproject_registers_the_configs_hook() -> None:
    hooks = package_pyproject("openretina-cli")["tool"]["hatch"]["build"]["hooks"]["custom"]
    assert (REPO_ROOT / "packages/openretina-cli" / hooks["path"]).is_file()


@pytest.mark.parametrize(
    ("target", "version", "expected"),
    [
        ("sdist", "standard", "configs"),
        ("wheel", "standard", "openretina_cli/configs"),
        ("wheel", "editable", None),
    ],
)
def test_hook_ships_the_top_level_configs(target: str, version: str, expected: str | None) -> None:
    hook = load_build_hook()(str(REPO_ROOT / "packages/openretina-cli"), target)
    build_data: dict[str, Any] = {"force_include": {}}
    hook.initialize(version, build_data)
    if expected is None:
        assert build_data["force_include"] == {}
    else:
        assert build_data["force_include"] == {str(REPO_ROOT / "configs"): expected}


def test_hook_finds_configs_inside_an_unpacked_sdist(tmp_path: Path) -> None:
    (tmp_path / "configs").mkdir()
    build_data: dict[str, Any] = {"force_include": {}}
    load_build_hook()(str(tmp_path), "wheel").initialize("standard", build_data)
    assert build_data["force_include"] == {str(tmp_path / "configs"): "openretina_cli/configs"}


def test_hook_fails_clearly_without_configs(tmp_path: Path) -> None:
    package = tmp_path / "a" / "b"
    package.mkdir(parents=True)
    with pytest.raises(RuntimeError, match="no configs/ directory"):
        load_build_hook()(str(package), "wheel").initialize("standard", {"force_include": {}})


# --- real builds (slow) ------------------------------------------------------------------------------


@pytest.mark.slow
def test_built_wheels_carry_versions_bounds_and_configs(tmp_path: Path) -> None:
    """What a release ships: wheels from sdists, with the written versions, bounds and configs."""
    result = subprocess.run(
        ["uv", "build", "--all-packages", "--quiet", "-o", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    wheels = {}
    for path in tmp_path.glob("*.whl"):
        name, version, _, _ = parse_wheel_filename(path.name)
        wheels[str(name)] = (path, version)
    assert set(wheels) == set(PACKAGES)
    for distribution, (path, version) in wheels.items():
        assert version == written_version(distribution)
        with zipfile.ZipFile(path) as archive:
            metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            requires = [
                Requirement(line.split(":", 1)[1].strip())
                for line in archive.read(metadata).decode().splitlines()
                if line.startswith("Requires-Dist:")
            ]
        for requirement in requires:
            if canonicalize_name(requirement.name) in PACKAGES:
                assert requirement.specifier, f"{path.name}: bare sibling requirement {requirement}"

    yaml_files = {p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "configs").rglob("*.y*ml")}
    with zipfile.ZipFile(wheels["openretina-cli"][0]) as archive:
        shipped = {name.removeprefix("openretina_cli/") for name in archive.namelist()}
    assert yaml_files <= shipped
    sdist = next(tmp_path.glob("openretina_cli-*.tar.gz"))
    with tarfile.open(sdist) as archive:
        in_sdist = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert yaml_files <= in_sdist, textwrap.shorten(str(yaml_files - in_sdist), 300)


# --- README and CI agree -----------------------------------------------------------------------------


def quick_start_commands() -> list[str]:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None, "README.md: the Quick start section has no ```bash block"
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_quick_start_is_two_commands() -> None:
    train, test = quick_start_commands()
    assert train == "uv run openretina train"
    assert test.startswith("uv run pytest")


def test_ci_runs_readmes_test_command() -> None:
    script = (REPO_ROOT / ".ci" / "run").read_text()
    match = re.search(r"^TEST_COMMAND=\((.*)\)$", script, re.M)
    assert match is not None, ".ci/run: no TEST_COMMAND=(...) line"
    assert " ".join(match.group(1).split()) == quick_start_commands()[1]


def test_github_workflow_covers_the_matrix_the_gpu_and_the_wheels() -> None:
    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "ci.yml").read_text())
    jobs = workflow["jobs"]
    matrix = jobs["test"]["strategy"]["matrix"]
    assert matrix["python"] == ["3.11", "3.12", "3.13"]
    assert set(matrix["target"]) == {*PACKAGES, "all"}
    test_commands = " ".join(step.get("run", "") for step in jobs["test"]["steps"])
    assert quick_start_commands()[1] in test_commands
    assert "--package" in test_commands
    assert "gpu" in jobs["cuda"]["runs-on"]
    assert jobs["cuda"]["env"]["OPENRETINA_TEST_DEVICE"] == "cuda"
    assert any('-m "cuda or triton"' in step.get("run", "") for step in jobs["cuda"]["steps"])
    assert any("mkdocs build --strict" in step.get("run", "") for step in jobs["docs"]["steps"])
    assert any("tools/check_wheels.py" in step.get("run", "") for step in jobs["wheels"]["steps"])
