"""The layering of ARCHITECTURE.md stays true: the domain never imports the edge libraries, and the
migrations describe exactly the tables the code declares."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import appliance.archive.tables
import appliance.hl7.tables
import appliance.patients.tables
import appliance.worklist.tables  # noqa: F401
from appliance.db import create_index_engine, upgrade_schema
from appliance.db.metadata import metadata

PACKAGE = Path(__file__).parents[2] / "appliance"
DOMAIN = ["archive", "patients", "worklist", "forward", "dose", "billing", "audit"]
EDGE_LIBRARIES = {"pynetdicom", "hl7apy", "flask"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", [name for name in DOMAIN if (PACKAGE / name).is_dir()])
def test_domain_does_not_import_edge_libraries(package: str) -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(imported_modules(path) & EDGE_LIBRARIES)
        for path in (PACKAGE / package).rglob("*.py")
        if imported_modules(path) & EDGE_LIBRARIES
    }
    assert offenders == {}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrations_match_the_declared_tables(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'index.sqlite'}" if backend == "sqlite" else request.getfixturevalue("postgresql_url")
    engine = create_index_engine(url)
    upgrade_schema(engine)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []


def test_every_function_in_the_package_is_annotated() -> None:
    missing = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is None:
                missing.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}")
    assert missing == []
