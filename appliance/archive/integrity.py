"""Integrity of the archive (Q1): files against their recorded SHA-256, and the index rebuilt from
the files.

Files are the truth for instances; patients, orders, MPPS and the audit trail come from the RIS and
from people, so a reindex keeps them: it rebuilds studies, series and instances from the files and
puts each study back with the patient it had (merges and reconciliations survive). It publishes no
change, so the RIS is not told again about studies it already knows.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select, union, update

from appliance.archive.attributes import InvalidObject, read_attributes
from appliance.archive.index import DuplicateInstance, Index, unindex_instances
from appliance.archive.progress import ProgressCallback, quietly
from appliance.archive.search import iterate_instances
from appliance.archive.storage import (
    IMMEDIATE,
    FileStore,
    WrittenFile,
    beside,
    instance_relative_path,
    placed_by_name,
    sha256_of_file,
    staged_digest,
)
from appliance.db.schema import (
    identity_change,
    instance,
    instance_header,
    instance_metadata,
    patient,
    patient_identifier,
    patient_identity,
    scheduled_step,
    series,
    study,
    unsynced_instance,
)

LOGGER = logging.getLogger(__name__)


# Damaged files are looked up this many at a time (well under SQLite's limit on bound parameters).
LOOKUP_BATCH = 500


@dataclass(frozen=True)
class DamagedFile:
    """A missing or altered file, and what the operator needs to restore it: the study (UID and
    date) and the patient's ID (IPP; no name, the report may be kept in logs)."""

    path: str
    study_instance_uid: str
    study_date: str
    patient_id: str


@dataclass
class VerifyReport:
    checked: int = 0
    missing: list[DamagedFile] = field(default_factory=list)
    altered: list[DamagedFile] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not (self.missing or self.altered or self.orphans)


def verify(engine: Engine, files: FileStore, progress: ProgressCallback = quietly) -> VerifyReport:
    """Recheck every indexed file of the main storage against its SHA-256 (those in the deferred
    tier were verified at the destination when they moved); list missing and altered files with their study and
    patient, and orphan (unindexed) files. Safe while the daemons run: a file compressed meanwhile
    is checked again under its new path, and `progress` is called after each file."""
    report = VerifyReport()
    missing: list[tuple[int, str]] = []
    altered: list[tuple[int, str]] = []
    total = indexed_instances(engine)
    for row in iterate_instances(engine):
        if row["tier"] != IMMEDIATE:  # in the deferred tier (R1): verified there when it moved
            report.checked += 1
            continue
        state, path = damage_of(engine, files, row)
        if state == MISSING:
            missing.append((row["id"], path))
        elif state == ALTERED:
            altered.append((row["id"], path))
        report.checked += 1
        progress(CHECKING_FILES, report.checked, max(total, report.checked))
    report.missing = damaged_files(engine, missing)
    report.altered = damaged_files(engine, altered)
    report.orphans = orphan_files(engine, files, progress)
    return report


CHECKING_FILES = "checking files"
LOOKING_FOR_ORPHANS = "looking for orphan files"
INTACT, MISSING, ALTERED = "intact", "missing", "altered"


def indexed_instances(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(instance)) or 0)


def damage_of(engine: Engine, files: FileStore, row: dict[str, Any]) -> tuple[str, str]:
    """(intact, missing or altered; the path checked). A damaged file is checked once more against
    the instance's current row: the compressor may have replaced it since the row was read."""
    state = file_state(files, row["path"], row["sha256"])
    if state == INTACT:
        return state, row["path"]
    statement = select(instance.c.path, instance.c.sha256).where(instance.c.id == row["id"])
    with engine.connect() as connection:
        current = connection.execute(statement).first()
    if current is None:
        return INTACT, row["path"]  # left the index meanwhile: nothing to restore
    if (current.path, current.sha256) == (row["path"], row["sha256"]):
        return state, row["path"]
    return file_state(files, current.path, current.sha256), current.path


def file_state(files: FileStore, relative: str, sha256: str) -> str:
    path = files.absolute(relative)
    if not path.is_file():
        return MISSING
    return INTACT if sha256_of_file(path) == sha256 else ALTERED


def damaged_files(engine: Engine, instances: list[tuple[int, str]]) -> list[DamagedFile]:
    """The files of these instances (id, path) with their study and patient, in the order given (an
    instance gone from the index meanwhile keeps its path, with the rest empty)."""
    instance_ids = [identifier for identifier, _ in instances]
    found: dict[int, DamagedFile] = {}
    statement = select(
        instance.c.id, instance.c.path, study.c.study_instance_uid, study.c.study_date, patient.c.patient_id
    ).select_from(
        instance.join(series, series.c.id == instance.c.series_pk)
        .join(study, study.c.id == series.c.study_pk)
        .join(patient, patient.c.id == study.c.patient_pk)
    )
    with engine.connect() as connection:
        for start in range(0, len(instance_ids), LOOKUP_BATCH):
            batch = instance_ids[start : start + LOOKUP_BATCH]
            for row in connection.execute(statement.where(instance.c.id.in_(batch))):
                found[row.id] = DamagedFile(row.path, row.study_instance_uid, row.study_date, row.patient_id)
    return [found.get(identifier, DamagedFile(path, "", "", "")) for identifier, path in instances]


def orphan_files(engine: Engine, files: FileStore, progress: ProgressCallback = quietly) -> list[str]:
    """Files under archive/ that no index row points to, one day folder at a time (`progress`
    after each folder)."""
    orphans: list[str] = []
    days = day_folders(files.archive_directory)
    for done, day in enumerate(days, start=1):
        prefix = str(day.relative_to(files.archive_directory)) + "/"
        statement = select(instance.c.path).where(instance.c.path.startswith(prefix, autoescape=True))
        with engine.connect() as connection:
            indexed = set(connection.execute(statement).scalars())
        for path in sorted(day.rglob("*.dcm")):
            relative = str(path.relative_to(files.archive_directory))
            if relative not in indexed:
                orphans.append(relative)
        progress(LOOKING_FOR_ORPHANS, done, len(days))
    return orphans


def day_folders(archive_directory: Path) -> list[Path]:
    return sorted(path for path in archive_directory.glob("*/*/*") if path.is_dir())


@dataclass
class AdoptionReport:
    adopted: list[str] = field(default_factory=list)
    set_aside: list[str] = field(default_factory=list)
    indexed_meanwhile: list[str] = field(default_factory=list)  # no longer orphans: left as they are
    incomplete: list[str] = field(default_factory=list)  # pending files whose bytes never reached the disk whole


ADOPTING_ORPHANS = "indexing orphan files"


def adopt_orphans(
    engine: Engine, files: FileStore, orphans: list[str], progress: ProgressCallback = quietly
) -> AdoptionReport:
    """Index orphan files (written durably but never indexed: an interrupted ingest or a crash);
    one whose SOP Instance UID is indexed under another path, or that cannot be read, goes to
    quarantine/.

    Safe while the daemons run if the caller holds the compression lock (`lossless.compression_lock`:
    no compressed file is then waiting to be pointed at): a file an ingest indexed since the orphans
    were listed is left where it is, whichever of the ingest and this adoption indexes it first.
    """
    index = Index(engine)
    report = AdoptionReport()
    for done, relative in enumerate(orphans, start=1):
        adopt_orphan(index, files, relative, report)
        progress(ADOPTING_ORPHANS, done, len(orphans))
    return report


def adopt_orphan(index: Index, files: FileStore, relative: str, report: AdoptionReport) -> None:
    path = files.absolute(relative)
    try:
        data = path.read_bytes()
    except FileNotFoundError:  # removed meanwhile (an ingest that lost a race tidies its copy)
        return
    try:
        attributes = read_attributes(data)
    except InvalidObject as error:
        LOGGER.warning("%s cannot be read: %s", relative, error)
        set_aside(files, relative, report)
        return
    stored = index.stored_instance(attributes.sop_instance_uid)
    if stored is None:
        try:
            index.add_instance(attributes, WrittenFile(relative, len(data), sha256_of_file(path)), "")
        except DuplicateInstance:
            stored = index.stored_instance(attributes.sop_instance_uid)
        else:
            report.adopted.append(relative)
            return
    if stored is None or stored.path == relative:
        report.indexed_meanwhile.append(relative)
        return
    set_aside(files, relative, report)


def set_aside(files: FileStore, relative: str, report: AdoptionReport) -> None:
    destination = files.quarantine_directory / "orphans" / relative
    destination.parent.mkdir(parents=True, exist_ok=True)
    files.absolute(relative).rename(destination)
    report.set_aside.append(relative)


@dataclass
class ReindexReport:
    indexed: int = 0
    unreadable: list[str] = field(default_factory=list)


INDEXING_DAYS = "indexing the files, one day folder at a time"


def reindex(engine: Engine, files: FileStore, progress: ProgressCallback = quietly) -> ReindexReport:
    """Rebuild studies, series and instances from the files under archive/ (daemons stopped: the
    instance tables are emptied first, so nothing may query or ingest meanwhile).

    Patients and everything the RIS and people recorded are kept; each study returns to the
    patient it had before; patients created from images and left without a study are removed.
    `progress` is called after each day folder.
    """
    with engine.begin() as connection:
        previous = {row.study_instance_uid: row.patient_pk for row in connection.execute(select(study))}
        for table in (instance_metadata, instance_header, instance, series, study):
            connection.execute(delete(table))
    index = Index(engine, publish=False)
    report = ReindexReport()
    days = day_folders(files.archive_directory)
    for done, day in enumerate(days, start=1):
        for path in sorted(day.rglob("*.dcm")):
            index_file(index, files, path, report)
        progress(INDEXING_DAYS, done, len(days))
    with engine.begin() as connection:
        restore_study_patients(connection, previous)
        remove_patients_without_anything(connection)
    return report


def restore_study_patients(connection: Connection, previous: dict[str, int]) -> None:
    """Put each study back with the patient it had (an attach or a merge is not in the file)."""
    for row in connection.execute(select(study.c.id, study.c.study_instance_uid, study.c.patient_pk)).all():
        before = previous.get(row.study_instance_uid)
        if before is not None and before != row.patient_pk:
            connection.execute(update(study).where(study.c.id == row.id).values(patient_pk=before))


def remove_patients_without_anything(connection: Connection, among: set[int] | None = None) -> None:
    """Patients no study, order, identity or audit row refers to (created from images now gone);
    only those `among` when given."""
    referred = [
        select(study.c.patient_pk),
        select(scheduled_step.c.patient_pk),
        select(patient_identity.c.patient_pk),
        select(patient_identifier.c.patient_pk),
        select(identity_change.c.patient_pk).where(identity_change.c.patient_pk.is_not(None)),
        select(patient_identity.c.merged_into).where(patient_identity.c.merged_into.is_not(None)),
    ]
    used = union(*referred).subquery()
    unused = delete(patient).where(patient.c.id.not_in(select(used.c[0])))
    connection.execute(unused if among is None else unused.where(patient.c.id.in_(among)))


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


def recover_unsynced(engine: Engine, files: FileStore) -> list[str]:
    """At start-up, before `adopt_pending`: the instances a batch indexed before its sync returned
    (`group_commit`, `unsynced_instance`) whose next commit never came. One whose file is whole was
    made durable: it stays. One whose file is missing or holds other bytes was cut short by a crash
    before the sync, so before any acknowledgement: its rows and what is left of its file are removed,
    and the sender's retry is stored anew. Returns the paths removed."""
    listed = (
        select(instance.c.id, instance.c.path, instance.c.sha256, instance.c.tier, study.c.patient_pk)
        .join(unsynced_instance, unsynced_instance.c.instance_pk == instance.c.id)
        .join(series, series.c.id == instance.c.series_pk)
        .join(study, study.c.id == series.c.study_pk)
        .order_by(instance.c.id)
    )
    with engine.connect() as connection:
        rows = connection.execute(listed).all()
    if not rows:
        return []
    lost = [row for row in rows if row.tier == IMMEDIATE and file_state(files, row.path, row.sha256) != INTACT]
    with engine.begin() as connection:
        removed = unindex_instances(connection, [row.id for row in lost])
        connection.execute(delete(unsynced_instance))
        if removed:
            remove_patients_without_anything(connection, among={row.patient_pk for row in lost})
    for relative in removed:
        LOGGER.warning("removing %s: the crash came before its sync (never acknowledged)", relative)
        files.absolute(relative).unlink(missing_ok=True)
    return removed


def adopt_pending(engine: Engine, files: FileStore) -> AdoptionReport:
    """At start-up: index the files an interrupted ingest linked into place but never indexed
    (`FileStore.pending_files`; never acknowledged, but valid objects), then drop their pending
    links. A pending file whose place cannot be found is left to `archive verify`. One whose bytes
    differ from the digest its staged name gives (`storage.staged_digest`) was cut short by the
    crash before its batch was synced, so before any acknowledgement: it is removed, from its
    place too, and named in `incomplete`."""
    placed, incomplete = [], []
    for pending in files.pending_files():
        relative = placed_path(files, pending)
        if not whole(pending):
            incomplete.append(remove_incomplete(files, pending, relative))
        elif relative is not None:
            placed.append(relative)
    report = adopt_orphans(engine, files, placed)
    report.incomplete = incomplete
    for pending in files.pending_files():
        pending.unlink(missing_ok=True)
    return report


def whole(pending: Path) -> bool:
    """Whether a pending file holds the bytes its staged name gives the digest of (True when its
    name gives none: it was synced before it was linked)."""
    expected = staged_digest(pending)
    return expected is None or sha256_of_file(pending) == expected


def remove_incomplete(files: FileStore, pending: Path, relative: str | None) -> str:
    """Remove a pending file that never reached the disk whole, and its place when known; returns
    what the log names it by."""
    LOGGER.warning("removing %s: its bytes never reached the disk whole (never acknowledged)", relative or pending.name)
    if relative is not None:
        files.absolute(relative).unlink(missing_ok=True)
    pending.unlink(missing_ok=True)
    return relative or pending.name


def placed_path(files: FileStore, pending: Path) -> str | None:
    """Where under archive/ the file `pending` is also linked: the place its name gives, else the
    place its study date (else the day it was written) and UIDs give, or the digest-named one
    beside it."""
    named = placed_by_name(pending)
    if named is not None and same_file(files.absolute(named), pending):
        return named
    try:
        data = pending.read_bytes()
        attributes = read_attributes(data)
    except (OSError, InvalidObject):
        return None
    written_on = date.fromtimestamp(pending.stat().st_mtime)
    digest = staged_digest(pending) or hashlib.sha256(data).hexdigest()  # the name it was placed by
    for day in (written_on, written_on - timedelta(days=1), written_on + timedelta(days=1)):
        relative = instance_relative_path(attributes.study_date, day, attributes.study_instance_uid,
                                          attributes.series_instance_uid, attributes.sop_instance_uid)  # fmt: skip
        for candidate in (relative, beside(relative, digest)):
            if same_file(files.absolute(candidate), pending):
                return candidate
    return None


def same_file(path: Path, other: Path) -> bool:
    return path.exists() and os.path.samefile(path, other)
