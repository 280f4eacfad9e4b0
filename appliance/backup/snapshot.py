"""A consistent copy of the SQLite databases, taken before borg walks the image store.

The index and the audit trail are live SQLite files in WAL mode: copying them with `cp` while the
daemons write can give a torn file. SQLite's online backup API copies every page inside one read
transaction, so the copy is the database as of one instant, while writers go on. Every file the
copied index names was already fsynced in place before its row was committed (A3), so it is in the
image store when borg walks it afterwards; files received after the snapshot are in the backup but
not in its index (`archive verify --adopt-orphans` indexes them after a restore).

The staging folder also gets the console settings file and `manifest.json` (when, which version,
which database), so that a restore knows what it holds. It is root's alone (0700): the index is
patient data.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from appliance.config import Config

INDEX = "index.sqlite"
AUDIT = "audit.sqlite"
SETTINGS = "console.yaml"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Snapshot:
    directory: Path
    index_copied: bool  # False when the index is PostgreSQL (borgmatic's pg_dump hook streams it)
    audit_copied: bool


def staging_directory(config: Config) -> Path:
    return config.backup.state_directory / "staging"


def sqlite_index_path(config: Config) -> Path | None:
    """The index file when the index is SQLite, None for PostgreSQL."""
    url = make_url(config.database_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        return None
    return Path(url.database)


def take_snapshot(config: Config, now: datetime) -> Snapshot:
    """Copy the index (when SQLite), the audit trail and the console settings into the staging
    folder, each replaced atomically, and write the manifest. Raises OSError, sqlite3.Error."""
    directory = staging_directory(config)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    index = sqlite_index_path(config)
    if index is not None:
        copy_database(index, directory / INDEX)
    audit_copied = config.audit.database.is_file()
    if audit_copied:
        copy_database(config.audit.database, directory / AUDIT)
    settings = directory / SETTINGS
    if config.console_settings_file.is_file():
        shutil.copyfile(config.console_settings_file, settings)
    else:
        settings.unlink(missing_ok=True)
    manifest = {
        "taken_at": now.isoformat(),
        "data_directory": str(config.storage.data_directory),
        "index": "sqlite" if index is not None else "postgresql",
        "audit": audit_copied,
        "console_settings": settings.exists(),
        "configuration": config.source,
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return Snapshot(directory, index is not None, audit_copied)


def copy_database(source: Path, destination: Path) -> None:
    """`source` copied page by page through the online backup API into `destination` (replaced
    only once the copy is complete and synced)."""
    partial = destination.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    reader = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    writer = sqlite3.connect(partial)
    try:
        # In one step: a stepped copy restarts whenever another process writes, which under
        # steady ingest may never end; in WAL mode the one read transaction blocks no writer.
        reader.backup(writer)
        writer.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
    finally:
        writer.close()
        reader.close()
    os.chmod(partial, 0o600)
    with open(partial, "rb") as stream:
        os.fsync(stream.fileno())
    os.replace(partial, destination)


def integrity_problems(path: Path) -> list[str]:
    """What `PRAGMA integrity_check` says is wrong with the SQLite file at `path` ([] when sound;
    an unreadable file is one problem)."""
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = connection.execute("PRAGMA integrity_check").fetchall()
        finally:
            connection.close()
    except sqlite3.Error as error:
        return [f"{path.name}: {error}"]
    found = [str(row[0]) for row in rows]
    return [] if found == ["ok"] else found
