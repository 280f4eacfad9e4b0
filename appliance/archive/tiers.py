"""Storage tiers (R1): every study stays on the main storage (immediate access) for at least
`tiers.immediate_years` from its exam date; after that it may move to the deferred tier
(`archive.deferred`: another mount point or an S3-compatible object store), and come back.

A move, one study at a time, under the compression lock (the lossless compressor replaces files
atomically; a move must never copy a file it is about to replace):
1. each immediate file is checked against the index's SHA-256, copied to the store, and read back
   there: its SHA-256 at the destination must be the index's own, or nothing of the study moves (the
   copies already made are removed, the originals stay);
2. one transaction points every instance at its deferred copy (`tier`, `location`), on the condition
   that its row did not change meanwhile;
3. only then are the originals removed. A crash between 2 and 3 leaves a harmless extra copy under
   `archive/` (the index reads the deferred one; bringing the study back reuses it).

Bringing a study back (`bring_back`) runs the other way: each object is fetched into `incoming/`,
checked against the index's SHA-256, linked into its place under `archive/`, the row pointed back,
and then the deferred copy removed.

With `tiers.lossy` on (off by default), step 1 makes each image a lossy copy first
(`archive.lossy`: a new instance, checked to decode to the original's rows, columns and frames),
written to the store and read back there against its own SHA-256; step 2 then points the row at the
copy under its new SOP Instance UID (`lossy`, `lossy_source_uid`, the header and DICOM JSON of the
copy). What is not an image, or is lossy already, moves bit-exact. Off, the deferred tier holds the
very bytes of the immediate one.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, or_, select, update

from appliance.archive.attributes import read_attributes
from appliance.archive.deferred import DeferredError, DeferredStore, deferred_store
from appliance.archive.index import replace_document
from appliance.archive.lossy import LossyCopyRefused, LossyPolicy, NotMadeLossy, lossy_copy
from appliance.archive.metadata import InstanceDocument
from appliance.archive.progress import ProgressCallback, quietly
from appliance.archive.storage import (
    IMMEDIATE,
    FileStore,
    link_unless_present,
    make_directories_durably,
    sha256_of_file,
    sync_directory,
)
from appliance.config import Config
from appliance.db.schema import instance, instance_header, series, study

LOGGER = logging.getLogger(__name__)
MOVING = "moving studies to the deferred tier"
BRINGING_BACK = "bringing a study back to the immediate tier"
LISTED_FAILURES = 100


class TierError(Exception):
    """A study could not change tier; the message says which and why (nothing was lost)."""


class NoDeferredTier(TierError):
    """The configuration names no deferred tier."""


@dataclass(frozen=True)
class StudyMove:
    study_instance_uid: str
    instances: int
    size_bytes: int
    lossy_copies: int = 0  # of those instances, how many became lossy copies (tiers.lossy)


@dataclass(frozen=True)
class MoveReport:
    studies: int = 0
    instances: int = 0
    size_bytes: int = 0
    failures: tuple[str, ...] = field(default_factory=tuple)  # "<Study Instance UID>: why"
    lossy_copies: int = 0


@dataclass(frozen=True)
class MadeLossy:
    """The lossy copy an instance became in the deferred tier: what its row and header become."""

    sop_instance_uid: str
    transfer_syntax_uid: str
    path: str
    sha256: str
    size_bytes: int
    header: bytes
    document: InstanceDocument | None


@dataclass(frozen=True)
class Copy:
    """An instance's verified copy in the deferred tier (its row as read before the move)."""

    row: Any
    location: str
    lossy: MadeLossy | None = None


@dataclass(frozen=True)
class TierUsage:
    """How much one tier holds."""

    tier: str
    studies: int
    instances: int
    size_bytes: int


def file_store(config: Config) -> FileStore:
    """The archive's files for `config`, with its deferred tier to read from (if any).

    Raises DeferredError when the deferred tier's credentials cannot be read.
    """
    storage = config.storage
    store = deferred_store(config.tiers, storage.data_directory)
    return FileStore(storage.data_directory, storage.minimum_free_space_mb * 1024 * 1024, store)


def years_before(day: date, years: int) -> date:
    """The same day `years` earlier (29 February becomes 1 March: never earlier than due)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return date(day.year - years, 3, 1)


def exam_date_before(cutoff: date) -> Any:
    """Studies whose exam date (Study Date, else the day received) is before `cutoff`."""
    text = cutoff.strftime("%Y%m%d")
    received_cutoff = datetime(cutoff.year, cutoff.month, cutoff.day, tzinfo=UTC)
    return or_(
        and_(study.c.study_date != "", study.c.study_date < text),
        and_(study.c.study_date == "", study.c.received_at < received_cutoff),
    )


def due_studies(engine: Engine, immediate_years: int, today: date, limit: int | None = None) -> list[str]:
    """Study Instance UIDs with files still on the main storage whose immediate-access period is
    over (exam date more than `immediate_years` before `today`), oldest first."""
    statement = (
        select(study.c.study_instance_uid)
        .where(
            exam_date_before(years_before(today, immediate_years)),
            study.c.purge_requested_at.is_(None),
            study.c.id.in_(
                select(series.c.study_pk)
                .join(instance, instance.c.series_pk == series.c.id)
                .where(instance.c.tier == IMMEDIATE)
            ),
        )
        .order_by(study.c.study_date, study.c.id)
        .limit(limit)
    )
    with engine.connect() as connection:
        return list(connection.execute(statement).scalars())


def instances_of(engine: Engine, study_instance_uid: str, deferred: bool) -> list[Any]:
    """The instance rows (id, path, sha256, size_bytes, tier, location) of a study on one side."""
    tier_condition = instance.c.tier != IMMEDIATE if deferred else instance.c.tier == IMMEDIATE
    statement = (
        select(
            instance.c.id,
            instance.c.sop_instance_uid,
            instance.c.path,
            instance.c.sha256,
            instance.c.size_bytes,
            instance.c.tier,
            instance.c.location,
        )
        .join(series, series.c.id == instance.c.series_pk)
        .join(study, study.c.id == series.c.study_pk)
        .where(study.c.study_instance_uid == study_instance_uid, tier_condition)
        .order_by(instance.c.id)
    )
    with engine.connect() as connection:
        return list(connection.execute(statement))


def move_study(
    engine: Engine, files: FileStore, store: DeferredStore, study_instance_uid: str, lossy: LossyPolicy | None = None
) -> StudyMove:
    """Move a study's immediate files to `store`, verified (made lossy first when `lossy` is given
    and the object is an image it may take); the caller holds the compression lock.

    Raises TierError (the originals all kept) when a source file is altered or missing, or the
    store holds other bytes than those written after the copy, or cannot be written.
    """
    rows = instances_of(engine, study_instance_uid, deferred=False)
    copies = copy_verified(files, store, study_instance_uid, rows, lossy)
    moved = point_at_copies(engine, store.kind, copies)
    for copy in copies:
        if copy.row.id not in moved:
            store.remove(copy.location)  # the row changed meanwhile: keep the original it points at
    for copy in copies:
        if copy.row.id in moved:
            files.absolute(copy.row.path).unlink(missing_ok=True)
    for directory in {files.absolute(copy.row.path).parent for copy in copies}:
        sync_directory(directory)
    size = sum(copy.row.size_bytes for copy in copies if copy.row.id in moved)
    lossy_copies = sum(1 for copy in copies if copy.row.id in moved and copy.lossy is not None)
    return StudyMove(study_instance_uid, len(moved), size, lossy_copies)


def copy_verified(
    files: FileStore, store: DeferredStore, study_instance_uid: str, rows: Sequence[Any], lossy: LossyPolicy | None
) -> list[Copy]:
    """Copy each row's file (or its lossy copy) to `store` and check its SHA-256 there; all or none
    (TierError)."""
    copies: list[Copy] = []
    try:
        for row in rows:
            source = files.absolute(row.path)
            if sha256_of_file(source) != row.sha256:
                raise TierError(f"{study_instance_uid}: {row.path} differs from its fingerprint; study not moved")
            lossy_result = made_lossy(source, row, lossy) if lossy is not None else None
            made = lossy_result[0] if lossy_result else None
            if lossy_result is None:
                location = store.put(row.path, source)
            else:
                location = put_bytes(files, store, lossy_result[0].path, lossy_result[1])
            copies.append(Copy(row, location, made))
            if store.digest(location) != (made.sha256 if made else row.sha256):
                raise TierError(f"{study_instance_uid}: the copy of {row.path} in the deferred tier differs; not moved")
    except (TierError, OSError) as error:
        for copy in copies:
            remove_quietly(store, copy.location)
        if isinstance(error, TierError):
            raise
        raise TierError(f"{study_instance_uid}: {error}; study not moved") from error
    return copies


def made_lossy(source: Path, row: Any, policy: LossyPolicy) -> tuple[MadeLossy, bytes] | None:
    """The checked lossy copy of the instance at `source` and its bytes, None when it stays as it
    is (not an image, lossy already, refused by the codec, or a copy that failed its check)."""
    try:
        copy = lossy_copy(source.read_bytes(), row.sop_instance_uid, policy)
    except NotMadeLossy as reason:
        LOGGER.debug("instance %s moves bit-exact: %s", row.sop_instance_uid, reason)
        return None
    except LossyCopyRefused as refusal:
        LOGGER.warning("instance %s: lossy copy refused (%s); it moves bit-exact", row.sop_instance_uid, refusal)
        return None
    attributes = read_attributes(copy.encoded)
    made = MadeLossy(copy.sop_instance_uid, copy.transfer_syntax_uid, lossy_path(row.path),
                     hashlib.sha256(copy.encoded).hexdigest(), len(copy.encoded), attributes.header,
                     attributes.document)  # fmt: skip
    return made, copy.encoded


def lossy_path(path: str) -> str:
    """Where a lossy copy lives (its deferred location follows it): `<name>.lossy.dcm` beside the original's."""
    name = Path(path).name.removesuffix(".dcm").removesuffix(".lossless")
    return str(Path(path).with_name(f"{name}.lossy.dcm"))


def put_bytes(files: FileStore, store: DeferredStore, relative_path: str, encoded: bytes) -> str:
    """`encoded` into `store` as the file at `relative_path`, through a temporary file in `incoming/`."""
    temporary = files.incoming_directory / f"{uuid.uuid4().hex}.part"
    try:
        temporary.write_bytes(encoded)
        return store.put(relative_path, temporary)
    finally:
        temporary.unlink(missing_ok=True)


def point_at_copies(engine: Engine, tier: str, copies: Sequence[Copy]) -> set[int]:
    """In one transaction, point each instance at its deferred copy unless its row changed; the ids done."""
    moment = datetime.now(UTC)
    moved: set[int] = set()
    with engine.begin() as connection:
        for copy in copies:
            values: dict[str, Any] = {"tier": tier, "location": copy.location, "moved_at": moment}
            if copy.lossy is not None:
                values.update(lossy_values(copy))
            result = connection.execute(
                update(instance)
                .where(instance.c.id == copy.row.id, instance.c.sha256 == copy.row.sha256, instance.c.tier == IMMEDIATE)
                .values(**values)
            )
            if result.rowcount:
                moved.add(copy.row.id)
                if copy.lossy is not None:
                    replace_header(connection, copy.row.id, copy.lossy)
    return moved


def lossy_values(copy: Copy) -> dict[str, Any]:
    """What an instance's row becomes when its deferred copy is lossy: the copy's identity and bytes
    (`compressed_at` stays that of the verified lossless compression, if any)."""
    assert copy.lossy is not None
    made = copy.lossy
    return {"sop_instance_uid": made.sop_instance_uid, "transfer_syntax_uid": made.transfer_syntax_uid,
            "path": made.path, "sha256": made.sha256, "size_bytes": made.size_bytes, "lossy": True,
            "lossy_source_uid": copy.row.sop_instance_uid}  # fmt: skip


def replace_header(connection: Connection, instance_id: int, made: MadeLossy) -> None:
    """The lossy copy's header and DICOM JSON in place of the original's (new UID, lossy attributes)."""
    connection.execute(
        update(instance_header).where(instance_header.c.instance_pk == instance_id).values(header=made.header)
    )
    if made.document is not None:
        replace_document(connection, instance_id, made.document)


def remove_quietly(store: DeferredStore, location: str) -> None:
    with contextlib.suppress(OSError):  # an unreferenced copy in the deferred tier misleads nobody
        store.remove(location)


def move_due(
    engine: Engine,
    files: FileStore,
    store: DeferredStore,
    immediate_years: int,
    today: date,
    progress: ProgressCallback = quietly,
    lossy: LossyPolicy | None = None,
) -> MoveReport:
    """Move every study past its immediate-access period, one at a time; `progress` after each;
    images made lossy on the way when `lossy` is given (`tiers.lossy`). A study that fails is
    counted and named, and the others still move. The caller holds the compression lock."""
    due = due_studies(engine, immediate_years, today)
    moved: list[StudyMove] = []
    failures: list[str] = []
    progress(MOVING, 0, len(due))
    for position, study_instance_uid in enumerate(due, start=1):
        try:
            moved.append(move_study(engine, files, store, study_instance_uid, lossy))
        except TierError as error:
            failures.append(str(error))
        progress(MOVING, position, len(due))
    return MoveReport(
        studies=sum(1 for entry in moved if entry.instances),
        instances=sum(entry.instances for entry in moved),
        size_bytes=sum(entry.size_bytes for entry in moved),
        failures=tuple(failures),
        lossy_copies=sum(entry.lossy_copies for entry in moved),
    )


def bring_back(
    engine: Engine,
    files: FileStore,
    store: DeferredStore,
    study_instance_uid: str,
    progress: ProgressCallback = quietly,
) -> StudyMove:
    """Bring a study's deferred files back under `archive/`, each checked against the index's SHA-256.

    Raises TierError when an object cannot be fetched or differs (what came back stays back), or
    StorageFull when the main storage has no room.
    """
    rows = instances_of(engine, study_instance_uid, deferred=True)
    files.check_space(sum(row.size_bytes for row in rows))
    progress(BRINGING_BACK, 0, len(rows))
    size = 0
    for position, row in enumerate(rows, start=1):
        try:
            restore_file(files, store, row)
        except OSError as error:
            raise TierError(f"{study_instance_uid}: {row.location}: {error}") from error
        if point_back(engine, row):
            remove_quietly(store, row.location)
            size += row.size_bytes
        progress(BRINGING_BACK, position, len(rows))
    return StudyMove(study_instance_uid, len(rows), size)


def restore_file(files: FileStore, store: DeferredStore, row: Any) -> None:
    """Fetch one deferred object into `incoming/`, check it, link it at its path under `archive/`."""
    temporary = files.incoming_directory / f"{uuid.uuid4().hex}.part"
    try:
        store.fetch(row.location, temporary)
        if sha256_of_file(temporary) != row.sha256:
            raise DeferredError(f"{row.location}: the deferred tier returned other bytes than those archived")
        destination = files.absolute(row.path)
        make_directories_durably(destination.parent)
        if not link_unless_present(temporary, destination) and sha256_of_file(destination) != row.sha256:
            raise DeferredError(f"{row.path}: another file is in the way under archive/")
        sync_directory(destination.parent)
    finally:
        temporary.unlink(missing_ok=True)


def point_back(engine: Engine, row: Any) -> bool:
    with engine.begin() as connection:
        result = connection.execute(
            update(instance)
            .where(instance.c.id == row.id, instance.c.tier == row.tier, instance.c.location == row.location)
            .values(tier=IMMEDIATE, location="", moved_at=None)
        )
    return bool(result.rowcount)


def usage(engine: Engine) -> list[TierUsage]:
    """How many studies, instances and bytes each tier holds (a study split between two counts in both)."""
    statement = (
        select(
            instance.c.tier,
            func.count(func.distinct(series.c.study_pk)),
            func.count(instance.c.id),
            func.coalesce(func.sum(instance.c.size_bytes), 0),
        )
        .join(series, series.c.id == instance.c.series_pk)
        .group_by(instance.c.tier)
        .order_by(instance.c.tier)
    )
    with engine.connect() as connection:
        rows = list(connection.execute(statement))
    found = {row[0]: TierUsage(row[0], int(row[1]), int(row[2]), int(row[3])) for row in rows}
    found.setdefault(IMMEDIATE, TierUsage(IMMEDIATE, 0, 0, 0))
    return sorted(found.values(), key=lambda entry: (entry.tier != IMMEDIATE, entry.tier))


def deferred_instances(engine: Engine, study_instance_uid: str) -> int:
    """How many of a study's instances are in the deferred tier (the study page says so)."""
    statement = (
        select(func.count(instance.c.id))
        .join(series, series.c.id == instance.c.series_pk)
        .join(study, study.c.id == series.c.study_pk)
        .where(study.c.study_instance_uid == study_instance_uid, instance.c.tier != IMMEDIATE)
    )
    with engine.connect() as connection:
        return int(connection.scalar(statement) or 0)


def lossy_copies(engine: Engine, study_instance_uid: str) -> int:
    """How many of a study's instances are lossy copies the deferred tier made (the study page says so)."""
    statement = (
        select(func.count(instance.c.id))
        .join(series, series.c.id == instance.c.series_pk)
        .join(study, study.c.id == series.c.study_pk)
        .where(study.c.study_instance_uid == study_instance_uid, instance.c.lossy_source_uid.is_not(None))
    )
    with engine.connect() as connection:
        return int(connection.scalar(statement) or 0)
