"""The structure of ``services/``: dependencies that point one way, modules a reader
can take in.

The import graph is built from the source with ``ast``: every ``import`` and
``from … import`` statement, at module level and inside functions (an import
moved into a function to dodge a cycle is still a cycle), relative imports
resolved. ``services/interviews/domain`` staying pure is
``test_domain_is_pure.py``'s.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

from tests.readme import ROOT

pytestmark = pytest.mark.unit

SERVICES = ROOT / "services"
MAX_LINES = 500
# Modules allowed past MAX_LINES, each with its reason. An entry that no longer
# exists or is back under the limit fails the test: take it out.
LONG_MODULES: dict[str, str] = {
    "services/interviews/domain/interview.py": "one aggregate: the Interview's events and "
    "their guards are one state machine, read together",
    "services/interviews/entrypoints/api.py": "one route per command of the HTTP contract, "
    "each with the docstring OpenAPI shows",
    "services/notifications/reminders.py": "the deadline index and the worker that settles "
    "it share one table and its status and version rules, read together",
    "services/notifications/rules.py": "RULES, the table of who is told what, is one literal "
    "read top to bottom",
}
SERVICE_PACKAGES = ("interviews", "projections", "notifications")

Graph = dict[str, dict[str, int]]  # module -> {imported module: line}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(sources: Mapping[str, tuple[str, bool]]) -> Graph:
    """``sources``: module name -> (source, is a package). The edges go to modules of
    ``sources`` only; ``from package import name`` goes to ``package.name`` when
    that is a module, else to ``package``."""
    graph: Graph = {}
    for name, (source, is_package) in sources.items():
        package = name if is_package else name.rpartition(".")[0]
        edges: dict[str, int] = {}
        for node in ast.walk(ast.parse(source)):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + [base] * bool(base))
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in sources else base
                    for alias in node.names
                ]
            for target in targets:
                if target in sources and target != name:
                    edges.setdefault(target, node.lineno)
        graph[name] = edges
    return graph


def services_graph() -> Graph:
    paths = sorted(SERVICES.rglob("*.py"))
    return import_graph(
        {
            module_name(path, ROOT): (path.read_text(encoding="utf-8"), path.name == "__init__.py")
            for path in paths
        }
    )


def cycles(graph: Graph) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module, as
    ``[a, b, …, a]`` (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return [_cycle_through(graph, set(c)) for c in components]


def _cycle_through(graph: Graph, members: set[str]) -> list[str]:
    """A shortest path from the component's first module back to itself."""
    start = min(members)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child == start:
                    return [*paths[node], start]
                if child in members and child not in paths:
                    paths[child] = [*paths[node], child]
                    following.append(child)
        frontier = following
    raise AssertionError(f"no cycle through {start}")


def describe(cycle: Iterable[str], graph: Graph) -> str:
    steps = list(cycle)
    return (
        " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(steps, steps[1:], strict=False))
        + f" -> {steps[-1]}"
    )


def test_no_import_cycle_under_services() -> None:
    graph = services_graph()
    assert len(graph) > 100 and any(graph.values())

    found = [describe(cycle, graph) for cycle in cycles(graph)]

    assert found == [], "import cycles:\n" + "\n".join(found)


def test_a_cycle_hidden_in_a_function_is_found_and_named() -> None:
    sources = {
        "svc": ("", True),
        "svc.bootstrap": ("def create_app():\n    from .entrypoints.worker import Worker\n", False),
        "svc.entrypoints": ("", True),
        "svc.entrypoints.worker": ("from ..bootstrap import Container\n", False),
        "svc.domain": ("import json\nfrom svc import entrypoints\n", False),
    }
    graph = import_graph(sources)

    found = [describe(cycle, graph) for cycle in cycles(graph)]

    assert graph["svc.domain"] == {"svc.entrypoints": 2}
    assert found == ["svc.bootstrap (line 2) -> svc.entrypoints.worker (line 1) -> svc.bootstrap"]


def test_no_service_imports_another() -> None:
    graph = services_graph()
    crossing = [
        f"{module} imports {target}"
        for module, targets in graph.items()
        for target in targets
        for service in SERVICE_PACKAGES
        if module.startswith(f"services.{service}.")
        and target.startswith("services.")
        and target.split(".")[1] in SERVICE_PACKAGES
        and target.split(".")[1] != service
    ]

    assert crossing == []


@pytest.mark.parametrize("service", SERVICE_PACKAGES)
def test_a_bootstrap_takes_only_http_routes_from_its_entrypoints(service: str) -> None:
    """Processes and CLIs (entrypoints) import the composition root, never the reverse;
    what the root takes from ``entrypoints/`` is the routers its HTTP app includes."""
    graph = services_graph()
    package = f"services.{service}.entrypoints"
    taken = [
        target for target in graph[f"services.{service}.bootstrap"] if target.startswith(package)
    ]
    not_routes = [
        target
        for target in taken
        if "router" not in {n.id for n in ast.walk(_parse(target)) if isinstance(n, ast.Name)}
    ]

    assert taken, "the HTTP app includes its routers"
    assert not_routes == []


def _parse(module: str) -> ast.Module:
    path = ROOT.joinpath(*module.split(".")).with_suffix(".py")
    return ast.parse(path.read_text(encoding="utf-8"))


def long_modules(root: Path, limit: int) -> dict[str, int]:
    return {
        path.relative_to(root.parent).as_posix(): lines
        for path in sorted(root.rglob("*.py"))
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > limit
    }


def test_no_module_is_longer_than_500_lines_without_a_reason() -> None:
    long = long_modules(SERVICES, MAX_LINES)

    unexplained = {path: lines for path, lines in long.items() if path not in LONG_MODULES}
    stale = sorted(set(LONG_MODULES) - set(long))

    assert unexplained == {}, f"over {MAX_LINES} lines: split them, or say why in LONG_MODULES"
    assert stale == [], "no longer over the limit (or gone): take them out of LONG_MODULES"
    assert all(reason.strip() for reason in LONG_MODULES.values())


def test_the_length_check_counts_lines(tmp_path: Path) -> None:
    root = tmp_path / "services"
    (root / "a").mkdir(parents=True)
    (root / "a" / "long.py").write_text("x = 1\n" * 501)
    (root / "a" / "short.py").write_text("x = 1\n" * 500)

    assert long_modules(root, MAX_LINES) == {"services/a/long.py": 501}
