"""openretina_models and openretina_data have no import cycle.

What is checked, per package, on the import graph grimp (the library under import-linter) builds
from the source without importing it:

- every ``import`` statement counts, wherever it stands: at the top of a module, inside a function
  (a "lazy" import is still a dependency), or under ``if TYPE_CHECKING``;
- module level: no chain of imports leads from a module back to itself (a package's
  ``__init__`` is a module like any other, so a submodule that imports its own package's
  ``__init__``, which imports the submodule, is a cycle);
- subpackage level: with each top-level subpackage taken as one unit (``openretina_models.readouts``
  is everything under ``readouts/``), no two units import each other, directly or through others.

A cycle is reported as the chain of imports, with the line of each, so it can be cut where it
should not be. The written order of the layers is in the root ``pyproject.toml``
(``[tool.importlinter]``, checked by ``uv run lint-imports``); this test is the plain "no circle"
guarantee the layers imply, with messages that show the loop.
"""

from __future__ import annotations

import itertools

import pytest

grimp = pytest.importorskip("grimp")  # installed with import-linter (the dev group)

PACKAGES = ("openretina_data", "openretina_models", "openretina_cli")


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """The groups of nodes that reach each other (Tarjan, iterative): every group of two or more,
    or one node importing itself, is a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1 or node in edges[node]:
                    groups.append(sorted(group))
    return groups


def module_edges(graph, package: str) -> dict[str, set[str]]:
    """``{module: modules of the same package it imports}`` for every module of ``package``."""
    modules = {m for m in graph.modules if m == package or m.startswith(package + ".")}
    return {m: {t for t in graph.find_modules_directly_imported_by(m) if t in modules} for m in modules}


def unit_edges(edges: dict[str, set[str]], package: str) -> dict[str, set[str]]:
    """The same graph with each top-level subpackage squashed into one node (the root left out)."""

    def unit(module: str) -> str:
        return ".".join(module.split(".")[:2])

    units: dict[str, set[str]] = {unit(m): set() for m in edges if m != package}
    for source, targets in edges.items():
        if source == package:
            continue
        for target in targets:
            if target != package and unit(target) != unit(source):
                units[unit(source)].add(unit(target))
    return units


def describe(graph, group: list[str], edges: dict[str, set[str]]) -> str:
    """One loop through ``group`` as ``a -> b (a.py line n) -> ... -> a``."""
    members = set(group)
    path = [group[0]]
    seen = {group[0]: 0}
    while True:
        following = sorted(t for t in edges[path[-1]] if t in members)
        step = next((t for t in following if t == group[0]), following[0])
        if step in seen:
            loop = [*path[seen[step] :], step]
            break
        seen[step] = len(path)
        path.append(step)
    hops = []
    for source, target in itertools.pairwise(loop):
        lines = [d["line_number"] for d in graph.get_import_details(importer=source, imported=target)]
        where = f" (line {', '.join(map(str, lines))})" if lines else ""
        hops.append(f"{source} -> {target}{where}")
    return "; ".join(hops)


@pytest.fixture(scope="module", params=PACKAGES)
def package_graph(request: pytest.FixtureRequest):
    return request.param, grimp.build_graph(request.param)


def test_no_import_cycle_between_modules(package_graph) -> None:
    package, graph = package_graph
    edges = module_edges(graph, package)
    cycles = strongly_connected(edges)
    assert not cycles, f"{package} has import cycles:\n" + "\n".join(
        describe(graph, group, edges) for group in cycles
    )


def test_no_import_cycle_between_subpackages(package_graph) -> None:
    package, graph = package_graph
    units = unit_edges(module_edges(graph, package), package)
    cycles = strongly_connected(units)
    assert not cycles, f"{package}'s top-level modules and subpackages import each other in a circle: " + (
        "; ".join(" <-> ".join(group) for group in cycles)
    )


def test_the_checker_finds_cycles() -> None:
    """The checks above would fail on a package with a loop, function-level imports included."""
    graph = grimp.ImportGraph()
    for name in ("pkg", "pkg.a", "pkg.b", "pkg.c", "pkg.sub", "pkg.sub.x"):
        graph.add_module(name)
    graph.add_import(importer="pkg.a", imported="pkg.b", line_number=3, line_contents="import pkg.b")
    graph.add_import(importer="pkg.b", imported="pkg.a", line_number=9, line_contents="    import pkg.a")
    graph.add_import(importer="pkg.c", imported="pkg.sub.x", line_number=1, line_contents="import pkg.sub.x")
    graph.add_import(importer="pkg.sub.x", imported="pkg.c", line_number=2, line_contents="import pkg.c")
    edges = module_edges(graph, "pkg")
    cycles = strongly_connected(edges)
    assert cycles == [["pkg.a", "pkg.b"], ["pkg.c", "pkg.sub.x"]]
    assert describe(graph, cycles[0], edges) == "pkg.a -> pkg.b (line 3); pkg.b -> pkg.a (line 9)"
    assert strongly_connected(unit_edges(edges, "pkg")) == [["pkg.a", "pkg.b"], ["pkg.c", "pkg.sub"]]
