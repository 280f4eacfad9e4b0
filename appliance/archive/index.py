"""Writes to the archive index: one transaction per received instance, and the change feed."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, select, update

from appliance.archive.attributes import InstanceAttributes
from appliance.archive.storage import WrittenFile
from appliance.archive.tables import (
    change,
    change_cursor,
    instance,
    instance_header,
    patient,
    quarantined_duplicate,
    series,
    study,
)
from appliance.patients.tables import patient_identity
from appliance.worklist.tables import scheduled_step

INSTANCE_STORED = "instance-stored"


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


@dataclass(frozen=True)
class Change:
    id: int
    kind: str
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    created_at: datetime


class Index:
    """The archive index on one engine. Writes are serialised in-process (SQLite has one writer)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.write_lock = threading.Lock()

    def stored_instance(self, sop_instance_uid: str) -> StoredInstance | None:
        """The archived instance with this SOP Instance UID, if any."""
        with self.engine.connect() as connection:
            row = connection.execute(STORED_INSTANCE_BY_UID, {"sop_instance_uid": sop_instance_uid}).first()
        return StoredInstance(**row._mapping) if row else None

    def add_instance(self, attributes: InstanceAttributes, written: WrittenFile, calling_ae_title: str) -> int:
        """Index a durably written instance (patient, study, series created as needed); return its id.

        Raises sqlalchemy.exc.IntegrityError when the SOP Instance UID is already indexed.
        """
        with self.write_lock, self.engine.begin() as connection:
            received_at = now()
            study_pk = find_or_create_study(connection, attributes, received_at)
            series_pk = find_or_create_series(connection, attributes, study_pk, received_at)
            instance_pk = insert_instance(connection, attributes, written, series_pk, calling_ae_title, received_at)
            count_instance(connection, study_pk, series_pk, written.size_bytes, received_at)
            record_change(connection, INSTANCE_STORED, attributes, received_at)
        return instance_pk

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
        self, instance_id: int, expected_sha256: str, transfer_syntax_uid: str, written: WrittenFile
    ) -> bool:
        """Point an instance at its new (compressed) file, if nobody changed it meanwhile."""
        with self.write_lock, self.engine.begin() as connection:
            result = connection.execute(
                update(instance)
                .where(instance.c.id == instance_id, instance.c.sha256 == expected_sha256)
                .values(
                    path=written.relative_path,
                    transfer_syntax_uid=transfer_syntax_uid,
                    size_bytes=written.size_bytes,
                    sha256=written.sha256,
                    compressed_at=now(),
                )
            )
            return bool(result.rowcount)

    def changes_after(self, last_id: int, kind: str, limit: int) -> list[Change]:
        query = select(change).where(change.c.id > last_id, change.c.kind == kind).order_by(change.c.id).limit(limit)
        with self.engine.connect() as connection:
            return [Change(**row._mapping) for row in connection.execute(query)]

    def cursor(self, consumer: str) -> int:
        query = select(change_cursor.c.last_change_id).where(change_cursor.c.consumer == consumer)
        with self.engine.connect() as connection:
            value = connection.execute(query).scalar()
        return int(value) if value is not None else 0

    def advance_cursor(self, consumer: str, last_change_id: int) -> None:
        with self.write_lock, self.engine.begin() as connection:
            updated = connection.execute(
                update(change_cursor)
                .where(change_cursor.c.consumer == consumer)
                .values(last_change_id=last_change_id, updated_at=now())
            )
            if not updated.rowcount:
                connection.execute(
                    insert(change_cursor).values(consumer=consumer, last_change_id=last_change_id, updated_at=now())
                )


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
    return inserted_id(connection, patient, values)


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
    return instance_pk


def count_series(connection: Connection, study_pk: int, modality: str, moment: datetime) -> None:
    """A new series: count it and add its modality to the study's Modalities In Study."""
    modalities = connection.execute(select(study.c.modalities_in_study).where(study.c.id == study_pk)).scalar() or ""
    listed = [entry for entry in modalities.split("\\") if entry]
    if modality and modality not in listed:
        listed.append(modality)
    connection.execute(
        update(study)
        .where(study.c.id == study_pk)
        .values(
            number_of_series=study.c.number_of_series + 1,
            modalities_in_study="\\".join(sorted(listed))[:64],
            updated_at=moment,
        )
    )


def count_instance(connection: Connection, study_pk: int, series_pk: int, size_bytes: int, moment: datetime) -> None:
    connection.execute(COUNT_STUDY_INSTANCE, {"study_pk": study_pk, "size_bytes": size_bytes, "moment": moment})
    connection.execute(COUNT_SERIES_INSTANCE, {"series_pk": series_pk, "moment": moment})


def record_change(connection: Connection, kind: str, attributes: InstanceAttributes, moment: datetime) -> None:
    values = {
        "kind": kind,
        "study_instance_uid": attributes.study_instance_uid,
        "series_instance_uid": attributes.series_instance_uid,
        "sop_instance_uid": attributes.sop_instance_uid,
        "created_at": moment,
    }
    connection.execute(insert(change), values)


def inserted_id(connection: Connection, table: Any, values: dict[str, Any]) -> int:
    result = connection.execute(insert(table), values)
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


STORED_INSTANCE_BY_UID = select(*STORED_INSTANCE_COLUMNS).where(
    instance.c.sop_instance_uid == bindparam("sop_instance_uid")
)
