"""Writes to the archive index: one transaction per received instance, published on the change feed.

Several processes may index at once (the DICOM archive, later STOW-RS, the CLI): two of them creating
the same patient, study or series collide on a unique key; the loser retries and finds the row. Two
of them indexing the same instance: the second gets `DuplicateInstance` and the ingest applies the
duplicate policy.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, case, delete, func, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from appliance.archive import changes
from appliance.archive.attributes import InstanceAttributes
from appliance.archive.group_commit import GroupCommit
from appliance.archive.metadata import InstanceDocument
from appliance.archive.storage import IMMEDIATE, Unsynced, WrittenFile
from appliance.db.prepared import Prepared
from appliance.db.schema import (
    change,
    instance,
    instance_header,
    instance_metadata,
    patient,
    patient_identity,
    quarantined_duplicate,
    scheduled_step,
    series,
    study,
    unsynced_instance,
)
from appliance.patients.national import keep_received_identifiers

CONFLICT_RETRIES = 3


class DuplicateInstance(Exception):
    """Another writer indexed this SOP Instance UID first."""


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class StoredInstance:
    """What the index says about one archived file."""

    id: int
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    path: str
    size_bytes: int
    sha256: str
    received_sha256: str


class Index:
    """The archive index on one engine. Writes are serialised in-process (SQLite has one writer);
    the instances indexed at the same moment by several threads share one commit (`GroupCommit`,
    its leader waiting `commit_window_seconds` for company). With `share_flush` (the DICOM archive's
    processes, whose start checks the instances left unsynced: `integrity.recover_unsynced`), a SQLite
    index on the files' file system commits their batch without a flush of its own, the files' sync
    flushing it with them."""

    def __init__(
        self, engine: Engine, publish: bool = True, commit_window_seconds: float = 0.0, share_flush: bool = False
    ) -> None:
        self.engine = engine
        self.publish = publish
        self.write_lock = threading.Lock()
        device = database_device(engine) if share_flush else None
        unflushed = UnsyncedInstances(engine, device) if device is not None else None
        self.group = GroupCommit(engine, self.write_lock, commit_window_seconds, unflushed)

    def stored_instance(self, sop_instance_uid: str) -> StoredInstance | None:
        """The archived instance with this SOP Instance UID, if any."""
        with self.engine.connect() as connection:
            rows = STORED_INSTANCE_BY_UID.rows(connection, {"sop_instance_uid": sop_instance_uid})
        return StoredInstance(*rows[0]) if rows else None

    def add_instance(
        self,
        attributes: InstanceAttributes,
        written: WrittenFile,
        calling_ae_title: str,
        unsynced: Iterable[Unsynced] = (),
    ) -> int:
        """Index a durably written instance (patient, study, series created as needed); return its id
        once committed, what its writing left `unsynced` made durable before the commit.

        Raises DuplicateInstance when the SOP Instance UID is already indexed (by any process).
        """

        def work(connection: Connection) -> int:
            return index_instance(connection, attributes, written, calling_ae_title, self.publish)

        for attempt in range(CONFLICT_RETRIES):
            try:
                return self.group.run(work, unsynced)
            except IntegrityError:
                if self.stored_instance(attributes.sop_instance_uid) is not None:
                    raise DuplicateInstance(attributes.sop_instance_uid) from None
                if attempt == CONFLICT_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def add_quarantined(self, sop_instance_uid: str, written: WrittenFile, calling_ae_title: str) -> None:
        with self.write_lock, self.engine.begin() as connection:
            connection.execute(
                insert(quarantined_duplicate).values(
                    sop_instance_uid=sop_instance_uid,
                    path=written.relative_path,
                    size_bytes=written.size_bytes,
                    sha256=written.sha256,
                    calling_ae_title=calling_ae_title,
                    received_at=now(),
                )
            )

    def replace_file(
        self,
        instance_id: int,
        expected_sha256: str,
        transfer_syntax_uid: str,
        written: WrittenFile,
        document: InstanceDocument | None = None,
    ) -> bool:
        """Point an instance at its new (compressed) file, if nobody changed it meanwhile; its DICOM
        JSON becomes `document` (the new file's) when given."""
        with self.write_lock, self.engine.begin() as connection:
            result = connection.execute(
                update(instance)
                .where(instance.c.id == instance_id, instance.c.sha256 == expected_sha256, instance.c.tier == IMMEDIATE)
                .values(
                    path=written.relative_path,
                    transfer_syntax_uid=transfer_syntax_uid,
                    size_bytes=written.size_bytes,
                    sha256=written.sha256,
                    compressed_at=now(),
                )
            )
            if result.rowcount and document is not None:
                replace_document(connection, instance_id, document)
            return bool(result.rowcount)


def database_device(engine: Engine) -> int | None:
    """The file system a SQLite index's file is on, or None for another database (or one in memory)."""
    url = make_url(str(engine.url))
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    try:
        return os.stat(url.database).st_dev
    except OSError:
        return None


@dataclass(frozen=True)
class UnsyncedInstances:
    """The instances a batch committed before its sync returned (`unsynced_instance`), for the group
    commit (`group_commit.Unflushed`): listed with their rows, dropped by the next commit."""

    engine: Engine
    device: int

    def mark(self, connection: Connection, results: list[Any]) -> None:
        for instance_pk in results:
            MARK_UNSYNCED.run(connection, {"instance_pk": instance_pk})

    def clear(self, connection: Connection, results: list[Any]) -> None:
        for instance_pk in results:
            CLEAR_UNSYNCED.run(connection, {"instance_pk": instance_pk})

    def undo(self, results: list[Any]) -> None:
        with self.engine.begin() as connection:
            unindex_instances(connection, [int(result) for result in results])


def unindex_instances(connection: Connection, instance_pks: list[int]) -> list[str]:
    """Take instances out of the index, never acknowledged (their file could not be made durable):
    their header, DICOM JSON, unsynced mark and stored change go with them; their series and studies
    are counted again, and go too when left without instances. Returns their paths."""
    rows = connection.execute(UNINDEXED, {"instance_pks": instance_pks}).all()
    if not rows:
        return []
    found = [row.id for row in rows]
    for table in (instance_header, instance_metadata, unsynced_instance):
        connection.execute(delete(table).where(table.c.instance_pk.in_(found)))
    connection.execute(
        delete(change).where(
            change.c.study_instance_uid.in_({row.study_instance_uid for row in rows}),
            change.c.kind == changes.INSTANCE_STORED,
            change.c.sop_instance_uid.in_([row.sop_instance_uid for row in rows]),
        )
    )
    connection.execute(delete(instance).where(instance.c.id.in_(found)))
    emptied = uncount_series(connection, Counter(row.series_pk for row in rows))
    uncount_studies(connection, rows, emptied)
    return [row.path for row in rows]


def uncount_series(connection: Connection, removed: Counter[int]) -> Counter[int]:
    """Each series counted without its removed instances, removed when left empty; returns how many
    series each study lost."""
    for series_pk, count in removed.items():
        connection.execute(
            update(series)
            .where(series.c.id == series_pk)
            .values(number_of_instances=series.c.number_of_instances - count)
        )
    empty = select(series.c.id, series.c.study_pk).where(
        series.c.id.in_(list(removed)), series.c.number_of_instances <= 0
    )
    emptied = connection.execute(empty).all()
    connection.execute(delete(series).where(series.c.id.in_([row.id for row in emptied])))
    return Counter(row.study_pk for row in emptied)


def uncount_studies(connection: Connection, rows: Sequence[Any], emptied: Counter[int]) -> None:
    """Each study counted without its removed instances and series (its modalities listed again when
    it lost a series), removed when left without instances."""
    instances, sizes = Counter(row.study_pk for row in rows), Counter[int]()
    for row in rows:
        sizes[row.study_pk] += row.received_size_bytes
    for study_pk, count in instances.items():
        values: dict[str, Any] = {
            "number_of_instances": study.c.number_of_instances - count,
            "size_bytes": study.c.size_bytes - sizes[study_pk],
        }
        if emptied[study_pk]:
            values["number_of_series"] = study.c.number_of_series - emptied[study_pk]
            values["modalities_in_study"] = modalities_of(connection, study_pk)
        connection.execute(update(study).where(study.c.id == study_pk).values(**values))
    connection.execute(delete(study).where(study.c.id.in_(list(instances)), study.c.number_of_instances <= 0))


def modalities_of(connection: Connection, study_pk: int) -> str:
    """Modalities In Study from the study's series, as the ingest lists them."""
    listed = ""
    for modality in connection.execute(select(series.c.modality).where(series.c.study_pk == study_pk)).scalars():
        listed = with_modality(listed, modality)
    return listed


def replace_document(connection: Connection, instance_id: int, document: InstanceDocument) -> None:
    """The instance's DICOM JSON, written anew (or for the first time)."""
    values = {"document": document.document, "pixel_data_vr": document.pixel_data_vr}
    updated = connection.execute(
        update(instance_metadata).where(instance_metadata.c.instance_pk == instance_id).values(**values)
    )
    if not updated.rowcount:
        connection.execute(insert(instance_metadata).values(instance_pk=instance_id, **values))


# Statements built once: executing a prepared statement with a parameter dictionary skips
# SQLAlchemy's per-call construction work (about 3 ms an instance otherwise). Each one does as much
# as it can: an instance of a known series costs seven statements, the first one of a new study
# nine or ten. The writes run on SQLite's driver itself (`Prepared`: 1 to 2 µs each instead of 7 to
# 10 in SQLAlchemy; an image's statements 0.25 to 0.34 ms -> 0.18 to 0.21 ms in the serving process),
# and so do the reads before them (the study and series known, the ordered patient, the patient's
# holders) and the duplicate check: 200 two-image studies over one association, 6 alternating runs
# in the daemon, 0.84 -> 0.79 s, the serving process's user CPU 520 -> 450 ms.
MAXIMUM_MERGE_CHAIN = 16
# What an instance's rows depend on, read in its own transaction: its study (and the modalities the
# study lists) and its series, each None when not indexed yet.
THE_STUDY = study.c.study_instance_uid == bindparam("study_instance_uid")
STUDY_AND_SERIES = Prepared(
    select(
        select(study.c.id).where(THE_STUDY).scalar_subquery(),
        select(study.c.modalities_in_study).where(THE_STUDY).scalar_subquery(),
        select(series.c.id).where(series.c.series_instance_uid == bindparam("series_instance_uid")).scalar_subquery(),
    )
)
ORDERED_BY_STUDY = (
    select(scheduled_step.c.patient_pk).where(scheduled_step.c.study_instance_uid == bindparam("uid")).limit(1)
)
ORDERED_BY_ACCESSION = (
    select(scheduled_step.c.patient_pk)
    .where(scheduled_step.c.accession_number == bindparam("accession"))
    .order_by(scheduled_step.c.id.desc())
    .limit(1)
)
ORDERED_PATIENT_BY_STUDY = Prepared(select(ORDERED_BY_STUDY.scalar_subquery()))
ORDERED_PATIENT = Prepared(
    select(func.coalesce(ORDERED_BY_STUDY.scalar_subquery(), ORDERED_BY_ACCESSION.scalar_subquery()))
)
# The patients holding a Patient ID, the one under the wanted issuer first, with the patient each
# was merged into (A40): two rows are enough to tell the one holder from several.
PATIENT_HOLDERS = Prepared(
    select(patient.c.id, patient.c.issuer_of_patient_id, patient_identity.c.merged_into)
    .select_from(patient.outerjoin(patient_identity, patient_identity.c.patient_pk == patient.c.id))
    .where(patient.c.patient_id == bindparam("patient_id"))
    .order_by(case((patient.c.issuer_of_patient_id == bindparam("issuer_of_patient_id"), 0), else_=1), patient.c.id)
    .limit(2)
)
MERGED_INTO = select(patient_identity.c.merged_into).where(patient_identity.c.patient_pk == bindparam("patient_pk"))
INSERT_PATIENT = Prepared(insert(patient))
INSERT_STUDY = Prepared(insert(study))
INSERT_SERIES = Prepared(insert(series))
INSERT_INSTANCE = Prepared(insert(instance))
INSERT_HEADER = Prepared(insert(instance_header))
INSERT_DOCUMENT = Prepared(insert(instance_metadata))
COUNT_STUDY_INSTANCE = Prepared(
    update(study)
    .where(study.c.id == bindparam("study_pk"))
    .values(
        number_of_instances=study.c.number_of_instances + 1,
        size_bytes=study.c.size_bytes + bindparam("size_bytes"),
        updated_at=bindparam("moment"),
    )
)
COUNT_STUDY_SERIES_AND_INSTANCE = Prepared(
    update(study)
    .where(study.c.id == bindparam("study_pk"))
    .values(
        number_of_series=study.c.number_of_series + 1,
        modalities_in_study=bindparam("modalities"),
        number_of_instances=study.c.number_of_instances + 1,
        size_bytes=study.c.size_bytes + bindparam("size_bytes"),
        updated_at=bindparam("moment"),
    )
)
COUNT_SERIES_INSTANCE = Prepared(
    update(series)
    .where(series.c.id == bindparam("series_pk"))
    .values(number_of_instances=series.c.number_of_instances + 1, updated_at=bindparam("moment"))
)

MARK_UNSYNCED = Prepared(insert(unsynced_instance))
CLEAR_UNSYNCED = Prepared(delete(unsynced_instance).where(unsynced_instance.c.instance_pk == bindparam("instance_pk")))
UNINDEXED = (
    select(
        instance.c.id,
        instance.c.sop_instance_uid,
        instance.c.series_pk,
        instance.c.path,
        instance.c.received_size_bytes,
        series.c.study_pk,
        study.c.study_instance_uid,
    )
    .join(series, series.c.id == instance.c.series_pk)
    .join(study, study.c.id == series.c.study_pk)
    .where(instance.c.id.in_(bindparam("instance_pks", expanding=True)))
)

STORED_INSTANCE_COLUMNS = (  # in the order of `StoredInstance`'s fields
    instance.c.id,
    instance.c.sop_instance_uid,
    instance.c.sop_class_uid,
    instance.c.transfer_syntax_uid,
    instance.c.path,
    instance.c.size_bytes,
    instance.c.sha256,
    instance.c.received_sha256,
)


@dataclass(frozen=True)
class Known:
    """What the index holds of an instance's study and series before its rows are written."""

    study_pk: int | None
    modalities_in_study: str
    series_pk: int | None


def known(connection: Connection, attributes: InstanceAttributes) -> Known:
    wanted = {
        "study_instance_uid": attributes.study_instance_uid,
        "series_instance_uid": attributes.series_instance_uid,
    }
    ((study_pk, modalities, series_pk),) = STUDY_AND_SERIES.rows(connection, wanted)
    return Known(study_pk, modalities or "", series_pk)


def find_or_create_patient(connection: Connection, attributes: InstanceAttributes, moment: datetime) -> int:
    """The patient of a new study: by (Patient ID, issuer); an object without Patient ID gets a
    patient of its own (never lumped with other unidentified ones)."""
    if attributes.patient_id:
        found = known_patient(connection, attributes)
        if found is not None:
            return found
    values = {
        "patient_id": attributes.patient_id,
        "issuer_of_patient_id": attributes.issuer_of_patient_id,
        "patient_name": attributes.patient_name,
        "patient_name_key": attributes.patient_name_key,
        "patient_birth_date": attributes.patient_birth_date,
        "patient_sex": attributes.patient_sex,
        "created_at": moment,
        "updated_at": moment,
    }
    patient_pk = INSERT_PATIENT.insert(connection, values)
    keep_received_identifiers(connection, patient_pk, attributes.other_patient_ids, moment)
    return patient_pk


def known_patient(connection: Connection, attributes: InstanceAttributes) -> int | None:
    """The patient with the object's (Patient ID, issuer), or the one it was merged into; an object
    without issuer also finds the one patient holding that ID under an issuer (the RIS names the
    issuer, modalities often do not)."""
    identifier = {"patient_id": attributes.patient_id, "issuer_of_patient_id": attributes.issuer_of_patient_id}
    holders = PATIENT_HOLDERS.rows(connection, identifier)
    exact = bool(holders) and holders[0][1] == attributes.issuer_of_patient_id  # its issuer
    if not (exact or (not attributes.issuer_of_patient_id and len(holders) == 1)):
        return None
    found, _issuer, merged_into = holders[0]
    return int(found) if merged_into is None else surviving(connection, int(merged_into))


def surviving(connection: Connection, patient_pk: int) -> int:
    """The patient a merged patient was merged into (A40), following a chain of merges."""
    for _ in range(MAXIMUM_MERGE_CHAIN):
        merged_into = connection.execute(MERGED_INTO, {"patient_pk": patient_pk}).scalar()
        if merged_into is None:
            return patient_pk
        patient_pk = int(merged_into)
    return patient_pk


def ordered_patient(connection: Connection, attributes: InstanceAttributes) -> int | None:
    """Reconciliation at ingest (P2): the patient of the order with this Study Instance UID, else
    with this accession number. The order's identity wins over what the modality typed."""
    wanted = {"uid": attributes.study_instance_uid, "accession": attributes.accession_number}
    statement = ORDERED_PATIENT if attributes.accession_number else ORDERED_PATIENT_BY_STUDY
    ((found,),) = statement.rows(connection, wanted)
    return int(found) if found is not None else None


def create_study(
    connection: Connection, attributes: InstanceAttributes, counted: dict[str, Any], moment: datetime
) -> int:
    """A new study, with the counters of its first instance (`counted`) already in."""
    patient_pk = ordered_patient(connection, attributes)
    if patient_pk is None:
        patient_pk = find_or_create_patient(connection, attributes, moment)
    values = {
        "patient_pk": patient_pk,
        "study_instance_uid": attributes.study_instance_uid,
        "study_date": attributes.study_date,
        "study_time": attributes.study_time,
        "accession_number": attributes.accession_number,
        "study_id": attributes.study_id,
        "study_description": attributes.study_description,
        "referring_physician_name": attributes.referring_physician_name,
        "referring_physician_name_key": attributes.referring_physician_name_key,
        "received_at": moment,
        "updated_at": moment,
        **counted,
    }
    return INSERT_STUDY.insert(connection, values)


def create_series(connection: Connection, attributes: InstanceAttributes, study_pk: int, moment: datetime) -> int:
    """A new series, its first instance counted."""
    values = {
        "study_pk": study_pk,
        "series_instance_uid": attributes.series_instance_uid,
        "modality": attributes.modality,
        "series_number": attributes.series_number,
        "series_date": attributes.series_date,
        "series_time": attributes.series_time,
        "series_description": attributes.series_description,
        "body_part_examined": attributes.body_part_examined,
        "number_of_instances": 1,
        "received_at": moment,
        "updated_at": moment,
    }
    return INSERT_SERIES.insert(connection, values)


def with_modality(modalities: str, modality: str) -> str:
    """Modalities In Study with a new series' modality added (sorted, at most 64 characters)."""
    listed = [entry for entry in modalities.split("\\") if entry]
    if modality and modality not in listed:
        listed.append(modality)
    return "\\".join(sorted(listed))[:64]


def study_of(
    connection: Connection, attributes: InstanceAttributes, found: Known, size_bytes: int, moment: datetime
) -> int:
    """The instance's study, created or counted: one more instance, and one more series (its
    modality listed) when the instance's series is new."""
    new_series = found.series_pk is None
    modalities = with_modality(found.modalities_in_study, attributes.modality) if new_series else ""
    if found.study_pk is None:
        counted: dict[str, Any] = {"number_of_instances": 1, "size_bytes": size_bytes}
        if new_series:
            counted |= {"number_of_series": 1, "modalities_in_study": modalities}
        return create_study(connection, attributes, counted, moment)
    values = {"study_pk": found.study_pk, "size_bytes": size_bytes, "moment": moment, "modalities": modalities}
    (COUNT_STUDY_SERIES_AND_INSTANCE if new_series else COUNT_STUDY_INSTANCE).run(connection, values)
    return int(found.study_pk)


def series_of(
    connection: Connection, attributes: InstanceAttributes, found: Known, study_pk: int, moment: datetime
) -> int:
    """The instance's series, created or counted."""
    if found.series_pk is None:
        return create_series(connection, attributes, study_pk, moment)
    COUNT_SERIES_INSTANCE.run(connection, {"series_pk": found.series_pk, "moment": moment})
    return int(found.series_pk)


def insert_instance(
    connection: Connection,
    attributes: InstanceAttributes,
    written: WrittenFile,
    series_pk: int,
    calling_ae_title: str,
    moment: datetime,
) -> int:
    values = {
        "series_pk": series_pk,
        "sop_instance_uid": attributes.sop_instance_uid,
        "sop_class_uid": attributes.sop_class_uid,
        "instance_number": attributes.instance_number,
        "rows": attributes.rows,
        "columns": attributes.columns,
        "number_of_frames": attributes.number_of_frames,
        "transfer_syntax_uid": attributes.transfer_syntax_uid,
        "received_transfer_syntax_uid": attributes.transfer_syntax_uid,
        "lossy": attributes.lossy,
        "path": written.relative_path,
        "size_bytes": written.size_bytes,
        "sha256": written.sha256,
        "received_sha256": written.sha256,
        "received_size_bytes": written.size_bytes,
        "calling_ae_title": calling_ae_title,
        "received_at": moment,
    }
    instance_pk = INSERT_INSTANCE.insert(connection, values)
    INSERT_HEADER.run(connection, {"instance_pk": instance_pk, "header": attributes.header})
    if attributes.document is not None:
        document = attributes.document
        row = {"instance_pk": instance_pk, "document": document.document, "pixel_data_vr": document.pixel_data_vr}
        INSERT_DOCUMENT.run(connection, row)
    return instance_pk


def index_instance(
    connection: Connection, attributes: InstanceAttributes, written: WrittenFile, calling_ae_title: str, publish: bool
) -> int:
    """The rows of one instance (and its patient, study, series as needed, counted), its change
    published."""
    received_at = now()
    found = known(connection, attributes)
    study_pk = study_of(connection, attributes, found, written.size_bytes, received_at)
    series_pk = series_of(connection, attributes, found, study_pk, received_at)
    instance_pk = insert_instance(connection, attributes, written, series_pk, calling_ae_title, received_at)
    if not publish:
        return instance_pk
    changes.publish(
        connection,
        changes.INSTANCE_STORED,
        attributes.study_instance_uid,
        received_at,
        series_instance_uid=attributes.series_instance_uid,
        sop_instance_uid=attributes.sop_instance_uid,
        accession_number=attributes.accession_number,
    )
    return instance_pk


STORED_INSTANCE_BY_UID = Prepared(
    select(*STORED_INSTANCE_COLUMNS).where(instance.c.sop_instance_uid == bindparam("sop_instance_uid"))
)
