"""Modality worklist matching (PS3.4 K.6.1.2) on the scheduled steps, within a modality's profile.

The query arrives as decoded values (`WorklistQuery`); what comes back is one `WorklistItem` per
step, in the index's Unicode; the DICOM edge then writes it the way the profile says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, select

from appliance.archive.search import range_match, text_match, uid_match
from appliance.config.loader import WorklistProfile
from appliance.db.schema import patient, patient_identity, scheduled_step
from appliance.patients.names import person_name_match
from appliance.patients.national import national_identifiers
from appliance.worklist.scheduling import IN_PROGRESS, SCHEDULED


@dataclass(frozen=True)
class WorklistQuery:
    """The matching keys of an MWL C-FIND ('' = not given); dates and times may be ranges."""

    station_ae_title: str = ""
    modality: str = ""
    start_date: str = ""
    start_time: str = ""
    station_name: str = ""
    performing_physician_name: str = ""
    step_id: str = ""
    patient_name: str = ""
    patient_id: str = ""
    accession_number: str = ""
    requested_procedure_id: str = ""
    study_instance_uid: str = ""


ITEM_COLUMNS = [
    patient.c.id.label("patient_pk"),
    patient.c.patient_id,
    patient.c.issuer_of_patient_id,
    patient.c.patient_name,
    patient.c.patient_birth_date,
    patient.c.patient_sex,
    # The identity's names (NULL for a patient created from images): the name format chooses.
    patient_identity.c.birth_name,
    patient_identity.c.first_given_name,
    patient_identity.c.used_name,
    patient_identity.c.used_given_name,
    *[column for column in scheduled_step.c if column.name not in ("patient_pk", "created_at", "updated_at")],
]


def find_items(
    engine: Engine, query: WorklistQuery, profile: WorklistProfile, calling_ae_title: str, today: date
) -> list[dict[str, Any]]:
    """Scheduled or in-progress steps matching the query, the profile's defaults filled in."""
    conditions = [scheduled_step.c.status.in_([SCHEDULED, IN_PROGRESS]), *matching(query)]
    station = query.station_ae_title.strip()
    if station in ("", "*") and profile.filter_on_calling_ae:
        conditions.append(scheduled_step.c.scheduled_station_ae_title == calling_ae_title)
    if not query.start_date.strip() or query.start_date.strip() == "*":
        first, last = today - timedelta(days=profile.days_before), today + timedelta(days=profile.days_after)
        conditions.append(range_match(scheduled_step.c.scheduled_start_date, f"{first:%Y%m%d}-{last:%Y%m%d}", "DA"))
    statement = (
        select(*ITEM_COLUMNS)
        .select_from(
            scheduled_step.join(patient, patient.c.id == scheduled_step.c.patient_pk).outerjoin(
                patient_identity, patient_identity.c.patient_pk == patient.c.id
            )
        )
        .where(and_(*conditions))
        .order_by(scheduled_step.c.scheduled_start_date, scheduled_step.c.scheduled_start_time, scheduled_step.c.id)
        .limit(profile.maximum_items)
    )
    with engine.connect() as connection:
        items = [dict(row._mapping) for row in connection.execute(statement)]
        national = national_identifiers(connection, (item["patient_pk"] for item in items))
    return [{**item, "other_patient_ids": national.get(item["patient_pk"], [])} for item in items]


def matching(query: WorklistQuery) -> list[ColumnElement[bool]]:
    """PS3.4 C.2.2.2 matching for each key given (universal when empty or `*`)."""
    text_keys = [
        (scheduled_step.c.scheduled_station_ae_title, query.station_ae_title),
        (scheduled_step.c.modality, query.modality),
        (scheduled_step.c.scheduled_station_name, query.station_name),
        (scheduled_step.c.scheduled_procedure_step_id, query.step_id),
        (patient.c.patient_id, query.patient_id),
        (scheduled_step.c.accession_number, query.accession_number),
        (scheduled_step.c.requested_procedure_id, query.requested_procedure_id),
    ]
    conditions = [text_match(column, value.strip()) for column, value in text_keys if value.strip() not in ("", "*")]
    if query.patient_name.strip() not in ("", "*"):
        conditions.append(person_name_match(patient.c.patient_name_key, query.patient_name))
    if query.start_date.strip() not in ("", "*"):
        conditions.append(range_match(scheduled_step.c.scheduled_start_date, query.start_date.strip(), "DA"))
    if query.start_time.strip() not in ("", "*"):
        conditions.append(range_match(scheduled_step.c.scheduled_start_time, query.start_time.strip(), "TM"))
    if query.study_instance_uid.strip():
        conditions.append(uid_match(scheduled_step.c.study_instance_uid, query.study_instance_uid))
    return conditions
