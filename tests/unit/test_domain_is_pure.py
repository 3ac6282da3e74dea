"""STYLE: ``services/interviews/domain`` imports the standard library and
``eventsourcing.domain``, nothing else (no FastAPI, Kafka, SQL or HTTP)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import services.interviews.domain as domain_package

DOMAIN = "services.interviews.domain"
DOMAIN_DIR = Path(domain_package.__file__).parent
ALLOWED_THIRD_PARTY = {"eventsourcing.domain"}
SOURCES = sorted(DOMAIN_DIR.rglob("*.py"))


def package_of(path: Path) -> list[str]:
    return [*DOMAIN.split("."), *path.parent.relative_to(DOMAIN_DIR).parts]


def imported_modules(source: str, package: list[str]) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import in ``source``; relative
    imports are resolved against ``package``; dynamic imports are reported too."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.append((node.lineno, module))
        elif isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name in ("__import__", "import_module"):
                found.append((node.lineno, f"<dynamic import via {name}>"))
    return found


def is_allowed(module: str) -> bool:
    root = module.split(".")[0]
    if root == "__future__" or root in sys.stdlib_module_names:
        return True
    if module in ALLOWED_THIRD_PARTY:
        return True
    return module == DOMAIN or module.startswith(DOMAIN + ".")


def test_the_domain_has_sources() -> None:
    assert {"__init__.py", "interview.py", "job.py", "errors.py"} <= {p.name for p in SOURCES}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_domain_module_imports_only_stdlib_and_eventsourcing_domain(path: Path) -> None:
    offending = [
        f"line {line}: {module}"
        for line, module in imported_modules(path.read_text(), package_of(path))
        if not is_allowed(module)
    ]

    assert offending == [], f"{path.name} imports outside the pure domain: {offending}"


def test_the_check_catches_infrastructure_imports() -> None:
    source = (
        "import json\n"
        "import fastapi\n"
        "from eventsourcing.domain import Aggregate\n"
        "from eventsourcing.postgres import PostgresDatastore\n"
        "from ..application import InterviewsApplication\n"
        "from . import errors\n"
        "from .hashing import chain_hash\n"
        "importlib.import_module('psycopg')\n"
    )

    found = imported_modules(source, DOMAIN.split("."))

    assert [m for _, m in found if not is_allowed(m)] == [
        "fastapi",
        "eventsourcing.postgres",
        "services.interviews.application",
        "<dynamic import via import_module>",
    ]
