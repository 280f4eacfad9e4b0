"""A throwaway PostgreSQL server for the tests that prove the index is not SQLite-only.

It runs as the `postgres` system user, listens on a Unix socket in a temporary folder only (no TCP),
and is stopped at the end. Where PostgreSQL's server binaries are missing, tests that need it skip.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine


def server_binaries() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


def as_postgres(*command: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)


@contextmanager
def postgresql_server() -> Iterator[str]:
    """Start a server; yield a SQLAlchemy URL of an empty database; stop and remove it afterwards."""
    binaries = server_binaries()
    if binaries is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        raise RuntimeError("PostgreSQL server binaries not installed")
    root = Path(tempfile.mkdtemp(prefix="appliance-pg-"))
    data, socket_directory = root / "data", root / "socket"
    socket_directory.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(socket_directory, "postgres")
    run = {"check": True, "capture_output": True}
    subprocess.run(
        as_postgres(str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8"), **run
    )
    options = f"-c listen_addresses='' -k {socket_directory} -c fsync=off"
    subprocess.run(
        as_postgres(str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l", str(root / "log"), "start"),
        **run,
    )
    try:
        subprocess.run(
            as_postgres(str(binaries / "createdb"), "-h", str(socket_directory), "-U", "postgres", "appliance"), **run
        )
        yield f"postgresql+psycopg://postgres@/appliance?host={socket_directory}"
    finally:
        subprocess.run(
            as_postgres(str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"), capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


def database_of_its_own(url: str, name: str) -> str:
    """The URL of a new, empty database `name` on the server of `url` (whose database other tests share)."""
    from sqlalchemy import create_engine, make_url, text

    server = create_engine(url, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        connection.execute(text(f"CREATE DATABASE {name}"))
    server.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def empty_index(request: Any, tmp_path_factory: Any, name: str) -> Engine:
    """An index with every migration applied and nothing in it, on the backend `request.param`
    names (a parametrized fixture's request): a SQLite file of its own, or a PostgreSQL database
    `name` of its own on the tests' server."""
    from appliance.db import create_index_engine, upgrade_schema

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('index') / 'index.sqlite'}"
    else:
        url = database_of_its_own(request.getfixturevalue("postgresql_url"), name)
    engine = create_index_engine(url)
    upgrade_schema(engine)
    return engine
