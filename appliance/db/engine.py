"""Create the engine of the index and bring its schema up to date."""

from __future__ import annotations

import fcntl
import logging
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, overload

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

LOGGER = logging.getLogger(__name__)


@overload
def as_utc(moment: datetime) -> datetime: ...
@overload
def as_utc(moment: None) -> None: ...
def as_utc(moment: datetime | None) -> datetime | None:
    """A time read back from a `DateTime(timezone=True)` column, aware: SQLite gives it back naive,
    and it was stored in UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def create_index_engine(url: str) -> Engine:
    """An engine for `url`; SQLite files get WAL, full sync and a generous busy timeout."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        pool_size=20,
        max_overflow=40,
    )
    event.listen(engine, "connect", configure_sqlite_connection)
    return engine


def configure_sqlite_connection(connection: Any, _record: Any) -> None:
    """Per-connection SQLite settings.

    WAL lets queries run while images are being indexed; synchronous=FULL makes every commit
    durable before the archive answers success (A3): the ingest's batches whose files' sync flushes
    their commit set NORMAL for that one commit (`group_commit`); case_sensitive_like makes LIKE
    follow DICOM (case-sensitive except person names, which are matched on a folded key) and use
    the indexes.
    """
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA case_sensitive_like=ON")
    cursor.close()


def alembic_config(engine: Engine) -> AlembicConfig:
    config = AlembicConfig()
    location = resources.files("appliance.db").joinpath("migrations")
    config.set_main_option("script_location", str(location))
    config.attributes["engine"] = engine
    return config


def upgrade_schema(engine: Engine, lock_directory: Path | None = None) -> None:
    """Apply every pending migration; several daemons starting at once take turns on a lock file.
    One log line says what was upgraded, if anything (alembic's own lines are left at WARNING)."""
    if lock_directory is None:
        upgrade_to_head(engine)
        return
    lock_directory.mkdir(parents=True, exist_ok=True)
    with open(lock_directory / "migrate.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        upgrade_to_head(engine)


def upgrade_to_head(engine: Engine) -> None:
    before = current_revision(engine)
    command.upgrade(alembic_config(engine), "head")
    after = current_revision(engine)
    if after != before:
        LOGGER.info("index schema upgraded from %s to %s", before or "nothing", after)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
