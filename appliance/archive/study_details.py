"""Everything the console's study page shows about one study (H5): its patient (identity, IPP and
issuer, INS with the identity's status), the study, its series (images, size on disk, transfer
syntaxes), who sent it and when, the patient's identity history (`identity_change`: creations,
HL7 updates, merges, attachments) and the order it belongs to.

A handful of grouped queries on the study's own rows (a 600-image CT reads 600 instance rows once).
The INS is shown to staff whatever the identity's status, saying whether it may be given out
(`patients.national.is_qualified`); the edges give it out only when it may.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pydicom.uid import UID
from sqlalchemy import Connection, Engine, case, func, or_, select

from appliance.archive.study_list import clock_of, day_of
from appliance.db.schema import (
    identity_change,
    instance,
    patient,
    patient_identifier,
    patient_identity,
    scheduled_step,
    series,
    study,
)
from appliance.patients.names import french_name
from appliance.patients.national import INS_NIA_OID, INS_NIR_OID, INS_TYPE, is_qualified

HISTORY_LIMIT = 200
OID = frozenset("0123456789.")


@dataclass(frozen=True)
class NationalIdentifier:
    """An INS of the patient: value, kind (NIR, NIA, test), where it was learnt, whether it may be given out."""

    value: str
    kind: str  # INS-NIR, INS-NIA, other (a test OID)
    universal_id: str
    source: str  # hl7 (the RIS) or dicom (an image)
    given_out: bool


@dataclass(frozen=True)
class PatientRecord:
    pk: int
    patient_id: str
    issuer_of_patient_id: str
    name: str  # DICOM PN as recorded
    birth_date: date | None
    sex: str
    identity_status: tuple[str, ...]  # PID-32 values (empty for a patient known from images only)
    national_identifiers: tuple[NationalIdentifier, ...]

    @property
    def display_name(self) -> str:
        return french_name(self.name)

    @property
    def qualified(self) -> bool:
        return is_qualified(self.identity_status)

    @property
    def identifier_cx(self) -> str:
        """The IPP in HL7 CX form with its issuer (`ID^^^ISSUER`, `ID^^^&OID&ISO`), for the audit trail."""
        issuer = self.issuer_of_patient_id
        if issuer and set(issuer) <= OID:
            return f"{self.patient_id}^^^&{issuer}&ISO"
        return f"{self.patient_id}^^^{issuer}" if issuer else self.patient_id


@dataclass(frozen=True)
class TransferSyntax:
    uid: str
    name: str
    compressed: bool
    instances: int
    lossy_instances: int


@dataclass(frozen=True)
class SeriesRecord:
    series_instance_uid: str
    number: int | None
    modality: str
    description: str
    body_part: str
    instances: int
    size_bytes: int
    transfer_syntaxes: tuple[TransferSyntax, ...]


@dataclass(frozen=True)
class Sender:
    """An AE title that sent images of the study, how many, first and last time."""

    ae_title: str
    instances: int
    first_received: datetime
    last_received: datetime


@dataclass(frozen=True)
class IdentityEvent:
    """One line of the identity history; `detail` may hold patient data (shown, never logged)."""

    action: str
    detail: str
    source_application: str
    source_facility: str
    source_event: str
    source_control_id: str
    changed_at: datetime


@dataclass(frozen=True)
class LinkedOrder:
    placer_order_number: str
    filler_order_number: str
    accession_number: str
    requested_procedure_description: str
    procedure_code: str
    modality: str
    station_ae_title: str
    scheduled_date: date | None
    scheduled_time: str
    status: str
    referring_physician_name: str
    requesting_physician_name: str
    same_patient: bool  # False: the order is another patient's (to reconcile)


@dataclass(frozen=True)
class StudyDetails:
    study_instance_uid: str
    study_date: date | None
    study_time: str
    study_description: str
    accession_number: str
    study_id: str
    referring_physician_name: str
    modalities: tuple[str, ...]
    patient: PatientRecord
    series: tuple[SeriesRecord, ...]
    senders: tuple[Sender, ...]
    history: tuple[IdentityEvent, ...]
    order: LinkedOrder | None
    sop_classes: tuple[tuple[str, int], ...]  # (SOP Class UID, instances): the audit record's description

    @property
    def instances(self) -> int:
        return sum(entry.instances for entry in self.series)

    @property
    def size_bytes(self) -> int:
        return sum(entry.size_bytes for entry in self.series)

    @property
    def referring_physician_display_name(self) -> str:
        return french_name(self.referring_physician_name)


def study_details(engine: Engine, study_instance_uid: str) -> StudyDetails | None:
    """The study page's content for `study_instance_uid`; None when the index has no such study."""
    with engine.connect() as connection:
        confirmed_purge = study.c.purge_requested_at.isnot(None)  # hidden from then on (R2)
        statement = select(study).where(study.c.study_instance_uid == study_instance_uid, ~confirmed_purge)
        row = connection.execute(statement).first()
        if row is None:
            return None
        found = row._mapping
        return StudyDetails(
            study_instance_uid=found["study_instance_uid"],
            study_date=day_of(found["study_date"]),
            study_time=clock_of(found["study_time"]),
            study_description=found["study_description"],
            accession_number=found["accession_number"],
            study_id=found["study_id"],
            referring_physician_name=found["referring_physician_name"],
            modalities=tuple(entry for entry in str(found["modalities_in_study"]).split("\\") if entry),
            patient=patient_record(connection, found["patient_pk"]),
            series=series_records(connection, found["id"]),
            senders=senders(connection, found["id"]),
            history=identity_history(connection, found["patient_pk"]),
            order=linked_order(connection, found["study_instance_uid"], found["accession_number"], found["patient_pk"]),
            sop_classes=sop_classes(connection, found["id"]),
        )


def patient_record(connection: Connection, patient_pk: int) -> PatientRecord:
    row = connection.execute(
        select(patient, patient_identity.c.identity_status)
        .select_from(patient.outerjoin(patient_identity, patient_identity.c.patient_pk == patient.c.id))
        .where(patient.c.id == patient_pk)
    ).one()
    values = row._mapping
    status = tuple(value for value in str(values["identity_status"] or "").split("~") if value)
    return PatientRecord(
        pk=patient_pk,
        patient_id=values["patient_id"],
        issuer_of_patient_id=values["issuer_of_patient_id"],
        name=values["patient_name"],
        birth_date=day_of(values["patient_birth_date"]),
        sex=values["patient_sex"],
        identity_status=status,
        national_identifiers=ins_of(connection, patient_pk, is_qualified(status)),
    )


def ins_of(connection: Connection, patient_pk: int, qualified: bool) -> tuple[NationalIdentifier, ...]:
    rows = connection.execute(
        select(patient_identifier)
        .where(patient_identifier.c.patient_pk == patient_pk, patient_identifier.c.type_code == INS_TYPE)
        .order_by(patient_identifier.c.id)
    )
    kinds = {INS_NIR_OID: "INS-NIR", INS_NIA_OID: "INS-NIA"}
    return tuple(
        NationalIdentifier(
            value=row.identifier,
            kind=kinds.get(row.universal_id, "other"),
            universal_id=row.universal_id,
            source=row.source,
            given_out=qualified,
        )
        for row in rows
    )


def series_records(connection: Connection, study_pk: int) -> tuple[SeriesRecord, ...]:
    """The study's series in series number order, each with its images, size and transfer syntaxes."""
    totals = (
        select(
            instance.c.series_pk,
            instance.c.transfer_syntax_uid,
            func.count().label("instances"),
            func.coalesce(func.sum(instance.c.size_bytes), 0).label("size_bytes"),
            func.sum(case((instance.c.lossy, 1), else_=0)).label("lossy_instances"),
        )
        .join(series, series.c.id == instance.c.series_pk)
        .where(series.c.study_pk == study_pk)
        .group_by(instance.c.series_pk, instance.c.transfer_syntax_uid)
    )
    syntaxes: dict[int, list[TransferSyntax]] = {}
    sizes: dict[int, int] = {}
    for row in connection.execute(totals):
        syntaxes.setdefault(row.series_pk, []).append(transfer_syntax(row.transfer_syntax_uid, row))
        sizes[row.series_pk] = sizes.get(row.series_pk, 0) + int(row.size_bytes)
    rows = connection.execute(
        select(series).where(series.c.study_pk == study_pk).order_by(series.c.series_number, series.c.id)
    )
    return tuple(
        SeriesRecord(
            series_instance_uid=row.series_instance_uid,
            number=row.series_number,
            modality=row.modality,
            description=row.series_description,
            body_part=row.body_part_examined,
            instances=row.number_of_instances,
            size_bytes=sizes.get(row.id, 0),
            transfer_syntaxes=tuple(syntaxes.get(row.id, [])),
        )
        for row in rows
    )


def transfer_syntax(uid: str, row: Any) -> TransferSyntax:
    known = UID(uid)
    name = known.name if known.is_transfer_syntax else uid
    compressed = known.is_compressed if known.is_transfer_syntax else False
    return TransferSyntax(uid, name, compressed, int(row.instances), int(row.lossy_instances or 0))


def senders(connection: Connection, study_pk: int) -> tuple[Sender, ...]:
    rows = connection.execute(
        select(
            instance.c.calling_ae_title,
            func.count().label("instances"),
            func.min(instance.c.received_at).label("first_received"),
            func.max(instance.c.received_at).label("last_received"),
        )
        .join(series, series.c.id == instance.c.series_pk)
        .where(series.c.study_pk == study_pk)
        .group_by(instance.c.calling_ae_title)
        .order_by(func.min(instance.c.received_at))
    )
    return tuple(Sender(row.calling_ae_title, row.instances, row.first_received, row.last_received) for row in rows)


def identity_history(connection: Connection, patient_pk: int) -> tuple[IdentityEvent, ...]:
    """The identity changes of the patient and of the patients merged into it, newest first."""
    merged = select(patient_identity.c.patient_pk).where(patient_identity.c.merged_into == patient_pk)
    rows = connection.execute(
        select(identity_change)
        .where(or_(identity_change.c.patient_pk == patient_pk, identity_change.c.patient_pk.in_(merged)))
        .order_by(identity_change.c.changed_at.desc(), identity_change.c.id.desc())
        .limit(HISTORY_LIMIT)
    )
    return tuple(
        IdentityEvent(
            action=row.action,
            detail=row.detail,
            source_application=row.source_application,
            source_facility=row.source_facility,
            source_event=row.source_event,
            source_control_id=row.source_control_id,
            changed_at=row.changed_at,
        )
        for row in rows
    )


def linked_order(
    connection: Connection, study_instance_uid: str, accession_number: str, patient_pk: int
) -> LinkedOrder | None:
    """The order naming the study by its Study Instance UID, else by its accession number (newest)."""
    named = scheduled_step.c.study_instance_uid == study_instance_uid
    if accession_number:
        named = or_(named, scheduled_step.c.accession_number == accession_number)
    preferred = case((scheduled_step.c.study_instance_uid == study_instance_uid, 0), else_=1)
    row = connection.execute(
        select(scheduled_step).where(named).order_by(preferred, scheduled_step.c.id.desc()).limit(1)
    ).first()
    if row is None:
        return None
    code = " ".join(part for part in (row.procedure_code_value, row.procedure_code_meaning) if part)
    return LinkedOrder(
        placer_order_number=row.placer_order_number,
        filler_order_number=row.filler_order_number,
        accession_number=row.accession_number,
        requested_procedure_description=row.requested_procedure_description,
        procedure_code=code,
        modality=row.modality,
        station_ae_title=row.scheduled_station_ae_title,
        scheduled_date=day_of(row.scheduled_start_date),
        scheduled_time=clock_of(row.scheduled_start_time),
        status=row.status,
        referring_physician_name=french_name(row.referring_physician_name),
        requesting_physician_name=french_name(row.requesting_physician_name),
        same_patient=row.patient_pk == patient_pk,
    )


def sop_classes(connection: Connection, study_pk: int) -> tuple[tuple[str, int], ...]:
    rows = connection.execute(
        select(instance.c.sop_class_uid, func.count().label("instances"))
        .join(series, series.c.id == instance.c.series_pk)
        .where(series.c.study_pk == study_pk)
        .group_by(instance.c.sop_class_uid)
        .order_by(instance.c.sop_class_uid)
    )
    return tuple((row.sop_class_uid, int(row.instances)) for row in rows)
