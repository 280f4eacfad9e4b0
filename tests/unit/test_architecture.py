"""The layering of ARCHITECTURE.md stays true: imports point down only (platform <- domain <- edges <-
processes), the domain is a one-way chain (patients <- archive <- worklist) that imports neither an
edge library nor an edge package, no edge imports another, there is no package-level cycle, and the
migrations describe exactly the tables the code declares."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from appliance.db import create_index_engine, upgrade_schema
from appliance.db.schema import metadata

PACKAGE = Path(__file__).parents[2] / "appliance"
# Each top-level package or module of `appliance` and its rank: a module may import its own package
# and packages of a lower rank only. Equal ranks: the domain beside the chain may use each other
# (without cycles); edges never import each other.
RANKS = {
    "__init__": 0, "config": 0, "db": 0, "systemd": 0, "outbox": 0, "inbox": 0, "monitor": 0, "certificates": 0,
    "practice_time": 0,
    "backup": 0,
    "maintenance": 0,
    "qc": 0,
    "patients": 1, "archive": 2, "worklist": 3,
    "forward": 4, "dose": 4, "billing": 4, "audit": 4, "accounts": 4, "jobs": 4,
    "dicom": 5, "hl7": 5, "web": 5,
    "daemons": 6, "cli": 6, "backup_cli": 6, "qc_cli": 6, "dose_cli": 6,
}  # fmt: skip
DOMAIN = ["patients", "archive", "worklist", "forward", "dose", "billing", "audit", "accounts", "jobs"]
EDGES = {"dicom", "hl7", "web"}
EDGE_LIBRARIES = {"pynetdicom", "hl7apy", "flask"}


def modules() -> Iterator[Path]:
    yield from sorted(PACKAGE.rglob("*.py"))


def package_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def imports(path: Path) -> set[str]:
    """Every module name `path` imports (absolute names; the package's own relative imports too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def appliance_packages(path: Path) -> set[str]:
    """The top-level appliance packages `path` imports from (not counting its own)."""
    found = {name.split(".")[1] for name in imports(path) if name.startswith("appliance.")}
    return {name for name in found if name in RANKS} - {package_of(path)}


def test_every_package_has_a_rank() -> None:
    unknown = {package_of(path) for path in modules()} - set(RANKS)
    assert unknown == set(), "give each new package a rank in RANKS (and a place in ARCHITECTURE.md)"


def test_imports_point_down_only() -> None:
    upward = [
        f"{path.relative_to(PACKAGE)} -> appliance.{imported}"
        for path in modules()
        for imported in appliance_packages(path)
        if RANKS[imported] > RANKS[package_of(path)] or (package_of(path) in EDGES and imported in EDGES)
    ]
    assert upward == []


def test_nothing_imports_a_daemon() -> None:
    """Only the daemons' common runtime (arguments, configuration, index) is shared, with the CLI."""
    offenders = [
        f"{path.relative_to(PACKAGE)} -> {name}"
        for path in modules()
        if package_of(path) != "daemons"
        for name in imports(path)
        if name.startswith("appliance.daemons") and not name.startswith("appliance.daemons.runtime")
    ]
    assert offenders == []


@pytest.mark.parametrize("package", [name for name in DOMAIN if (PACKAGE / name).is_dir()])
def test_domain_imports_no_edge(package: str) -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            {name.split(".")[0] for name in imports(path)} & EDGE_LIBRARIES
            | {name.split(".")[1] for name in imports(path) if name.startswith("appliance.")} & EDGES
        )
        for path in (PACKAGE / package).rglob("*.py")
    }
    assert {module: found for module, found in offenders.items() if found} == {}


def test_no_package_level_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for path in modules():
        graph.setdefault(package_of(path), set()).update(appliance_packages(path))
    cycle = find_cycle(graph)
    assert cycle == [], " -> ".join(cycle)


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """A cycle of the graph as a path (first node repeated at the end), or [] when there is none."""
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str]:
        state[node] = "open"
        for successor in sorted(graph.get(node, ())):
            if state.get(successor) == "open":
                return [*path[path.index(successor) :], successor] if successor in path else [node, successor]
            if successor not in state and (found := visit(successor, [*path, successor])):
                return found
        state[node] = "done"
        return []

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return []


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) == []


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
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is None:
                missing.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}")
    assert missing == []
