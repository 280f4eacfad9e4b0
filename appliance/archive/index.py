"""Writes to the archive index: one transaction per received instance, published on the change feed.

Several processes may index at once (the DICOM archive, later STOW-RS, the CLI): two of them creating
the same patient, study or series collide on a unique key; the loser retries and finds the row. Two
of them indexing the same instance: the second gets `DuplicateInstance` and the ingest applies the
duplicate policy.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from appliance.archive import changes
from appliance.archive.attributes import InstanceAttributes
from appliance.archive.group_commit import GroupCommit
from appliance.archive.metadata import InstanceDocument
from appliance.archive.storage import IMMEDIATE, WrittenFile
from appliance.db.schema import (
    instance,
    instance_header,
    instance_metadata,
    patient,
    patient_identity,
    quarantined_duplicate,
    scheduled_step,
    series,
    study,
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
    its leader waiting `commit_window_seconds` for company)."""

    def __init__(self, engine: Engine, publish: bool = True, commit_window_seconds: float = 0.0) -> None:
        self.engine = engine
        self.publish = publish
        self.write_lock = threading.Lock()
        self.group = GroupCommit(engine, self.write_lock, commit_window_seconds)

    def stored_instance(self, sop_instance_uid: str) -> StoredInstance | None:
        """The archived instance with this SOP Instance UID, if any."""
        with self.engine.connect() as connection:
            row = connection.execute(STORED_INSTANCE_BY_UID, {"sop_instance_uid": sop_instance_uid}).first()
        return StoredInstance(**row._mapping) if row else None

    def add_instance(
        self,
        attributes: InstanceAttributes,
        written: WrittenFile,
        calling_ae_title: str,
        folders: Iterable[Path] = (),
    ) -> int:
        """Index a durably written instance (patient, study, series created as needed); return its id
        once committed, `folders` synced before the commit.

        Raises DuplicateInstance when the SOP Instance UID is already indexed (by any process).
        """

        def work(connection: Connection) -> int:
            return index_instance(connection, attributes, written, calling_ae_title, self.publish)

        for attempt in range(CONFLICT_RETRIES):
            try:
                return self.group.run(work, folders)
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


def replace_document(connection: Connection, instance_id: int, document: InstanceDocument) -> None:
    """The instance's DICOM JSON, written anew (or for the first time)."""
    values = {"document": document.document, "pixel_data_vr": document.pixel_data_vr}
    updated = connection.execute(
        update(instance_metadata).where(instance_metadata.c.instance_pk == instance_id).values(**values)
    )
    if not updated.rowcount:
        connection.execute(insert(instance_metadata).values(instance_pk=instance_id, **values))


# Statements built once: executing a prepared statement with a parameter dictionary skips
# SQLAlchemy's per-call construction work (about 3 ms an instance otherwise).
PATIENT_BY_IDENTIFIER = select(patient.c.id).where(
    patient.c.patient_id == bindparam("patient_id"),
    patient.c.issuer_of_patient_id == bindparam("issuer_of_patient_id"),
)
PATIENTS_BY_ID = select(patient.c.id).where(patient.c.patient_id == bindparam("patient_id")).limit(2)
MERGED_INTO = select(patient_identity.c.merged_into).where(patient_identity.c.patient_pk == bindparam("patient_pk"))
MAXIMUM_MERGE_CHAIN = 16
ORDERED_PATIENT_BY_STUDY = (
    select(scheduled_step.c.patient_pk).where(scheduled_step.c.study_instance_uid == bindparam("uid")).limit(1)
)
ORDERED_PATIENT_BY_ACCESSION = (
    select(scheduled_step.c.patient_pk)
    .where(scheduled_step.c.accession_number == bindparam("accession"))
    .order_by(scheduled_step.c.id.desc())
    .limit(1)
)
STUDY_BY_UID = select(study.c.id).where(study.c.study_instance_uid == bindparam("study_instance_uid"))
SERIES_BY_UID = select(series.c.id).where(series.c.series_instance_uid == bindparam("series_instance_uid"))
COUNT_STUDY_INSTANCE = (
    update(study)
    .where(study.c.id == bindparam("study_pk"))
    .values(
        number_of_instances=study.c.number_of_instances + 1,
        size_bytes=study.c.size_bytes + bindparam("size_bytes"),
        updated_at=bindparam("moment"),
    )
)
MODALITIES_OF_STUDY = select(study.c.modalities_in_study).where(study.c.id == bindparam("study_pk"))
COUNT_STUDY_SERIES = (
    update(study)
    .where(study.c.id == bindparam("study_pk"))
    .values(
        number_of_series=study.c.number_of_series + 1,
        modalities_in_study=bindparam("modalities"),
        updated_at=bindparam("moment"),
    )
)
COUNT_SERIES_INSTANCE = (
    update(series)
    .where(series.c.id == bindparam("series_pk"))
    .values(number_of_instances=series.c.number_of_instances + 1, updated_at=bindparam("moment"))
)

STORED_INSTANCE_COLUMNS = (
    instance.c.id,
    instance.c.sop_instance_uid,
    instance.c.sop_class_uid,
    instance.c.transfer_syntax_uid,
    instance.c.path,
    instance.c.size_bytes,
    instance.c.sha256,
    instance.c.received_sha256,
)


def find_or_create_patient(connection: Connection, attributes: InstanceAttributes, moment: datetime) -> int:
    """The patient of a new study: by (Patient ID, issuer); an object without Patient ID gets a
    patient of its own (never lumped with other unidentified ones)."""
    if attributes.patient_id:
        found = known_patient(connection, attributes)
        if found is not None:
            return surviving(connection, found)
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
    patient_pk = inserted_id(connection, patient, values)
    keep_received_identifiers(connection, patient_pk, attributes.other_patient_ids, moment)
    return patient_pk


def known_patient(connection: Connection, attributes: InstanceAttributes) -> int | None:
    """The patient with the object's (Patient ID, issuer); an object without issuer also finds the
    one patient holding that ID under an issuer (the RIS names the issuer, modalities often do not)."""
    identifier = {"patient_id": attributes.patient_id, "issuer_of_patient_id": attributes.issuer_of_patient_id}
    found = connection.execute(PATIENT_BY_IDENTIFIER, identifier).scalar()
    if found is None and not attributes.issuer_of_patient_id:
        holders = list(connection.execute(PATIENTS_BY_ID, {"patient_id": attributes.patient_id}).scalars())
        found = holders[0] if len(holders) == 1 else None
    return int(found) if found is not None else None


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
    found = connection.execute(ORDERED_PATIENT_BY_STUDY, {"uid": attributes.study_instance_uid}).scalar()
    if found is None and attributes.accession_number:
        found = connection.execute(ORDERED_PATIENT_BY_ACCESSION, {"accession": attributes.accession_number}).scalar()
    return int(found) if found is not None else None


def find_or_create_study(connection: Connection, attributes: InstanceAttributes, moment: datetime) -> int:
    found = connection.execute(STUDY_BY_UID, {"study_instance_uid": attributes.study_instance_uid}).scalar()
    if found is not None:
        return int(found)
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
    }
    return inserted_id(connection, study, values)


def find_or_create_series(
    connection: Connection, attributes: InstanceAttributes, study_pk: int, moment: datetime
) -> int:
    found = connection.execute(SERIES_BY_UID, {"series_instance_uid": attributes.series_instance_uid}).scalar()
    if found is not None:
        return int(found)
    values = {
        "study_pk": study_pk,
        "series_instance_uid": attributes.series_instance_uid,
        "modality": attributes.modality,
        "series_number": attributes.series_number,
        "series_date": attributes.series_date,
        "series_time": attributes.series_time,
        "series_description": attributes.series_description,
        "body_part_examined": attributes.body_part_examined,
        "received_at": moment,
        "updated_at": moment,
    }
    series_pk = inserted_id(connection, series, values)
    count_series(connection, study_pk, attributes.modality, moment)
    return series_pk


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
    instance_pk = inserted_id(connection, instance, values)
    connection.execute(insert(instance_header), {"instance_pk": instance_pk, "header": attributes.header})
    if attributes.document is not None:
        document = attributes.document
        row = {"instance_pk": instance_pk, "document": document.document, "pixel_data_vr": document.pixel_data_vr}
        connection.execute(insert(instance_metadata), row)
    return instance_pk


def count_series(connection: Connection, study_pk: int, modality: str, moment: datetime) -> None:
    """A new series: count it and add its modality to the study's Modalities In Study."""
    modalities = connection.execute(MODALITIES_OF_STUDY, {"study_pk": study_pk}).scalar() or ""
    listed = [entry for entry in modalities.split("\\") if entry]
    if modality and modality not in listed:
        listed.append(modality)
    values = {"study_pk": study_pk, "modalities": "\\".join(sorted(listed))[:64], "moment": moment}
    connection.execute(COUNT_STUDY_SERIES, values)


def count_instance(connection: Connection, study_pk: int, series_pk: int, size_bytes: int, moment: datetime) -> None:
    connection.execute(COUNT_STUDY_INSTANCE, {"study_pk": study_pk, "size_bytes": size_bytes, "moment": moment})
    connection.execute(COUNT_SERIES_INSTANCE, {"series_pk": series_pk, "moment": moment})


def index_instance(
    connection: Connection, attributes: InstanceAttributes, written: WrittenFile, calling_ae_title: str, publish: bool
) -> int:
    """The rows of one instance (and its patient, study, series as needed), its change published."""
    received_at = now()
    study_pk = find_or_create_study(connection, attributes, received_at)
    series_pk = find_or_create_series(connection, attributes, study_pk, received_at)
    instance_pk = insert_instance(connection, attributes, written, series_pk, calling_ae_title, received_at)
    count_instance(connection, study_pk, series_pk, written.size_bytes, received_at)
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


def inserted_id(connection: Connection, table: Any, values: dict[str, Any]) -> int:
    result = connection.execute(insert(table), values)
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


STORED_INSTANCE_BY_UID = select(*STORED_INSTANCE_COLUMNS).where(
    instance.c.sop_instance_uid == bindparam("sop_instance_uid")
)
