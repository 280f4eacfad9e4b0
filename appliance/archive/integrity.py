"""Integrity of the archive (Q1): files against their recorded SHA-256, and the index rebuilt from
the files alone."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, delete, select

from appliance.archive.attributes import InvalidObject, read_attributes
from appliance.archive.index import Index
from appliance.archive.search import iterate_instances
from appliance.archive.storage import FileStore, WrittenFile, sha256_of_file
from appliance.archive.tables import change, change_cursor, instance, instance_header, patient, series, study

LOGGER = logging.getLogger(__name__)


@dataclass
class VerifyReport:
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    altered: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not (self.missing or self.altered or self.orphans)


def verify(engine: Engine, files: FileStore, progress: Callable[[int], None] | None = None) -> VerifyReport:
    """Recheck every indexed file's SHA-256; list missing, altered and orphan (unindexed) files."""
    report = VerifyReport()
    for row in iterate_instances(engine):
        path = files.absolute(row["path"])
        report.checked += 1
        if not path.is_file():
            report.missing.append(row["path"])
        elif sha256_of_file(path) != row["sha256"]:
            report.altered.append(row["path"])
        if progress and report.checked % 1000 == 0:
            progress(report.checked)
    report.orphans = orphan_files(engine, files)
    return report


def orphan_files(engine: Engine, files: FileStore) -> list[str]:
    """Files under archive/ that no index row points to, one day folder at a time."""
    orphans: list[str] = []
    for day in day_folders(files.archive_directory):
        prefix = str(day.relative_to(files.archive_directory)) + "/"
        statement = select(instance.c.path).where(instance.c.path.startswith(prefix, autoescape=True))
        with engine.connect() as connection:
            indexed = set(connection.execute(statement).scalars())
        for path in sorted(day.rglob("*.dcm")):
            relative = str(path.relative_to(files.archive_directory))
            if relative not in indexed:
                orphans.append(relative)
    return orphans


def day_folders(archive_directory: Path) -> list[Path]:
    return sorted(path for path in archive_directory.glob("*/*/*") if path.is_dir())


@dataclass
class AdoptionReport:
    adopted: list[str] = field(default_factory=list)
    set_aside: list[str] = field(default_factory=list)


def adopt_orphans(engine: Engine, files: FileStore, orphans: list[str]) -> AdoptionReport:
    """Index orphan files (written durably but never indexed: an interrupted ingest or a crash);
    one whose SOP Instance UID is already indexed, or that cannot be read, goes to quarantine/."""
    index = Index(engine)
    report = AdoptionReport()
    for relative in orphans:
        path = files.absolute(relative)
        data = path.read_bytes()
        try:
            attributes = read_attributes(data)
            if index.stored_instance(attributes.sop_instance_uid) is None:
                index.add_instance(attributes, WrittenFile(relative, len(data), sha256_of_file(path)), "")
                report.adopted.append(relative)
                continue
        except InvalidObject as error:
            LOGGER.warning("%s cannot be read: %s", relative, error)
        destination = files.quarantine_directory / "orphans" / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        path.rename(destination)
        report.set_aside.append(relative)
    return report


@dataclass
class ReindexReport:
    indexed: int = 0
    unreadable: list[str] = field(default_factory=list)


def reindex(engine: Engine, files: FileStore) -> ReindexReport:
    """Empty the archive index and rebuild it from the files under archive/ (daemons stopped)."""
    with engine.begin() as connection:
        for table in (instance_header, instance, series, study, patient, change, change_cursor):
            connection.execute(delete(table))
    index = Index(engine)
    report = ReindexReport()
    for day in day_folders(files.archive_directory):
        for path in sorted(day.rglob("*.dcm")):
            index_file(index, files, path, report)
    return report


def index_file(index: Index, files: FileStore, path: Path, report: ReindexReport) -> None:
    relative = str(path.relative_to(files.archive_directory))
    data = path.read_bytes()
    try:
        attributes = read_attributes(data)
    except InvalidObject as error:
        LOGGER.warning("%s not indexed: %s", relative, error)
        report.unreadable.append(relative)
        return
    written = WrittenFile(relative, len(data), sha256_of_file(path))
    index.add_instance(attributes, written, calling_ae_title="")
    report.indexed += 1
