"""Bump one workspace package's version and every sibling bound that points at it.

Each package keeps its version in one file (``[tool.hatch.version] path``). Siblings depend on it
through compatible-release bounds (``>=X.Y.Z,<X.(Y+1)`` below 1.0, ``>=X.Y.Z,<X+1`` from 1.0 on),
so a version bump and the bounds must move together or the published wheels stop installing
together. This script moves both, then refreshes ``uv.lock``.

Usage::

    uv run python tools/bump_version.py openretina-data minor
    uv run python tools/bump_version.py openretina-models 0.3.0 --dry-run
"""

from __future__ import annotations

import argparse
import difflib
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

REPO_ROOT = Path(__file__).resolve().parent.parent
BUMP_KINDS = ("major", "minor", "patch")
VERSION_LINE = re.compile(r"""^(__version__\s*=\s*)(["'])([^"']+)\2""", re.MULTILINE)
QUOTED_STRING = re.compile(r""""([^"\n]*)"|'([^'\n]*)'""")


class BumpError(Exception):
    """A problem the user can fix; the message says which file and what to do."""


@dataclass(frozen=True)
class Member:
    """One workspace package: where it lives and where its version is written."""

    directory: Path
    name: str
    version_file: Path

    @property
    def pyproject(self) -> Path:
        return self.directory / "pyproject.toml"


@dataclass(frozen=True)
class FileChange:
    path: Path
    old_text: str
    new_text: str

    def diff(self, root: Path) -> str:
        relative = self.path.relative_to(root).as_posix()
        lines = difflib.unified_diff(
            self.old_text.splitlines(keepends=True),
            self.new_text.splitlines(keepends=True),
            fromfile=f"a/{relative}",
            tofile=f"b/{relative}",
        )
        return "".join(lines)


def workspace_members(root: Path) -> list[Member]:
    """Read the members from the root pyproject's ``[tool.uv.workspace]`` globs."""
    root_pyproject = root / "pyproject.toml"
    config = tomllib.loads(root_pyproject.read_text())
    patterns = config.get("tool", {}).get("uv", {}).get("workspace", {}).get("members", [])
    if not patterns:
        raise BumpError(f"{root_pyproject}: no [tool.uv.workspace] members; is this the repository root?")
    members = []
    for pattern in patterns:
        for directory in sorted(root.glob(pattern)):
            pyproject = directory / "pyproject.toml"
            if not pyproject.is_file():
                continue
            project = tomllib.loads(pyproject.read_text())
            version_path = project.get("tool", {}).get("hatch", {}).get("version", {}).get("path")
            if version_path is None:
                raise BumpError(
                    f"{pyproject}: no [tool.hatch.version] path; every package keeps its version in one "
                    "file named there"
                )
            members.append(Member(directory, project["project"]["name"], directory / version_path))
    return members


def find_member(members: list[Member], wanted: str) -> Member:
    """Accept a directory name (``openretina-cli``) or a distribution name in any spelling."""
    for member in members:
        if wanted in (member.directory.name, member.name) or canonicalize_name(wanted) == canonicalize_name(
            member.name
        ):
            return member
    known = ", ".join(member.name for member in members)
    raise BumpError(f"unknown package {wanted!r}; choose one of: {known}")


def read_version(member: Member) -> Version:
    text = member.version_file.read_text()
    match = VERSION_LINE.search(text)
    if match is None:
        raise BumpError(f'{member.version_file}: no line `__version__ = "X.Y.Z"` to bump')
    try:
        return Version(match.group(3))
    except InvalidVersion as error:
        raise BumpError(f"{member.version_file}: {match.group(3)!r} is not a valid version") from error


def next_version(current: Version, request: str) -> Version:
    """Turn ``major``/``minor``/``patch`` or an explicit version into the new version."""
    if request in BUMP_KINDS:
        major, minor, patch = (*current.release, 0, 0)[:3]
        if request == "major":
            return Version(f"{major + 1}.0.0")
        if request == "minor":
            return Version(f"{major}.{minor + 1}.0")
        # A patch bump of a pre-release finishes it (0.2.0rc1 -> 0.2.0), like other release tools.
        return Version(f"{major}.{minor}.{patch if current.is_prerelease else patch + 1}")
    try:
        new = Version(request)
    except InvalidVersion as error:
        raise BumpError(
            f"{request!r} is neither a version (like 0.2.0) nor one of {', '.join(BUMP_KINDS)}"
        ) from error
    if new <= current:
        raise BumpError(f"new version {new} is not greater than the current version {current}")
    return new


def compatible_bounds(version: Version) -> str:
    """``>=0.2.0,<0.3`` below 1.0 (every minor may break), ``>=1.2.0,<2`` from 1.0 on."""
    major = version.release[0]
    minor = version.release[1] if len(version.release) > 1 else 0
    upper = f"{major}.{minor + 1}" if major == 0 else f"{major + 1}"
    return f">={version},<{upper}"


def rebound_requirement(text: str, distribution: str, bounds: str) -> str | None:
    """The requirement string with new bounds if it names ``distribution``, else None."""
    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        return None
    if canonicalize_name(requirement.name) != canonicalize_name(distribution):
        return None
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    # Keep the marker text as written: packaging would re-quote it, which can clash with TOML quotes.
    marker = f"; {text.split(';', 1)[1].strip()}" if requirement.marker else ""
    return f"{requirement.name}{extras}{bounds}{marker}"


def rewrite_dependencies(pyproject_text: str, distribution: str, bounds: str) -> str:
    """Rewrite quoted requirement strings in place, keeping the file's layout and comments."""
    project = tomllib.loads(pyproject_text).get("project", {})
    declared = list(project.get("dependencies", []))
    for group in project.get("optional-dependencies", {}).values():
        declared.extend(group)
    replacements = {}
    for requirement in declared:
        new = rebound_requirement(requirement, distribution, bounds)
        if new is not None and new != requirement:
            replacements[requirement] = new
    if not replacements:
        return pyproject_text

    def substitute(match: re.Match[str]) -> str:
        quote = match.group(0)[0]
        value = match.group(1) if quote == '"' else match.group(2)
        if value in replacements:
            return f"{quote}{replacements[value]}{quote}"
        return match.group(0)

    return QUOTED_STRING.sub(substitute, pyproject_text)


def plan_bump(root: Path, package: str, request: str) -> tuple[Member, Version, Version, list[FileChange]]:
    """Work out every file change without writing anything."""
    members = workspace_members(root)
    member = find_member(members, package)
    current = read_version(member)
    new = next_version(current, request)
    changes = []

    version_text = member.version_file.read_text()
    new_version_text = VERSION_LINE.sub(lambda m: f"{m.group(1)}{m.group(2)}{new}{m.group(2)}", version_text)
    changes.append(FileChange(member.version_file, version_text, new_version_text))

    bounds = compatible_bounds(new)
    for sibling in members:
        if sibling is member:
            continue
        text = sibling.pyproject.read_text()
        new_text = rewrite_dependencies(text, member.name, bounds)
        if new_text != text:
            changes.append(FileChange(sibling.pyproject, text, new_text))
    return member, current, new, changes


def refresh_lock(root: Path) -> None:
    result = subprocess.run(["uv", "lock"], cwd=root, check=False)
    if result.returncode != 0:
        raise BumpError(
            f"`uv lock` failed in {root} (exit {result.returncode}); the version files are already "
            "rewritten: fix the error above and run `uv lock` again"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("package", help="package directory or distribution name, e.g. openretina-data")
    parser.add_argument("version", help="new version (e.g. 0.2.0) or one of: major, minor, patch")
    parser.add_argument("--dry-run", action="store_true", help="print the diff and change nothing")
    parser.add_argument("--no-lock", action="store_true", help="do not run `uv lock` afterwards")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="workspace root (default: this repo)")
    args = parser.parse_args(argv)

    root = args.root.resolve()
    try:
        member, current, new, changes = plan_bump(root, args.package, args.version)
        if args.dry_run:
            for change in changes:
                sys.stdout.write(change.diff(root))
            print(f"dry run: {member.name} {current} -> {new}; nothing written")
            return 0
        for change in changes:
            change.path.write_text(change.new_text)
        print(f"{member.name} {current} -> {new}")
        for change in changes:
            print(f"  rewrote {change.path.relative_to(root).as_posix()}")
        if not args.no_lock:
            refresh_lock(root)
    except BumpError as error:
        print(f"bump_version: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
