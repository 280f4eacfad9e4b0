"""Studies the RIS knows nothing about, and attaching them to the right patient (P2).

At ingest a new study joins the patient of the order with its Study Instance UID or accession
number (see `index.ordered_patient`). Studies that match no order are *unreconciled*: staff attach
them to the right patient (CLI now, console later); the files are never rewritten, what leaves the
archive is coerced (`egress`), and the change is recorded in the identity audit trail.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, and_, exists, insert, or_, select, update

from appliance.db.schema import identity_change, patient, scheduled_step, study


class AttachOutcome(enum.Enum):
    ATTACHED = "attached"
    UNKNOWN_STUDY = "unknown-study"
    UNKNOWN_PATIENT = "unknown-patient"
    ALREADY = "already-attached"


def unreconciled_studies(engine: Engine, limit: int = 500) -> list[dict[str, Any]]:
    """Studies that match no order, by Study Instance UID or accession number (newest first)."""
    ordered = exists().where(
        or_(
            scheduled_step.c.study_instance_uid == study.c.study_instance_uid,
            and_(study.c.accession_number != "", scheduled_step.c.accession_number == study.c.accession_number),
        )
    )
    statement = (
        select(
            study.c.study_instance_uid,
            study.c.study_date,
            study.c.accession_number,
            study.c.modalities_in_study,
            study.c.number_of_instances,
            patient.c.patient_id,
            patient.c.issuer_of_patient_id,
            patient.c.patient_name,
        )
        .select_from(study.join(patient, patient.c.id == study.c.patient_pk))
        .where(~ordered)
        .order_by(study.c.received_at.desc())
        .limit(limit)
    )
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(statement)]


def attach_study(engine: Engine, study_instance_uid: str, patient_id: str, issuer: str, who: str) -> AttachOutcome:
    """Re-point a study to the patient with this IPP; the change goes to the identity audit trail."""
    with engine.begin() as connection:
        current = connection.execute(
            select(study.c.id, study.c.patient_pk).where(study.c.study_instance_uid == study_instance_uid)
        ).first()
        if current is None:
            return AttachOutcome.UNKNOWN_STUDY
        target = connection.execute(
            select(patient.c.id).where(patient.c.patient_id == patient_id, patient.c.issuer_of_patient_id == issuer)
        ).scalar()
        if target is None:
            return AttachOutcome.UNKNOWN_PATIENT
        if target == current.patient_pk:
            return AttachOutcome.ALREADY
        moment = datetime.now(UTC)
        connection.execute(update(study).where(study.c.id == current.id).values(patient_pk=target, updated_at=moment))
        connection.execute(
            insert(identity_change).values(
                patient_pk=target,
                action="study-attached",
                detail=f"study {study_instance_uid} moved from patient #{current.patient_pk} to #{target}",
                source_application=who,
                source_facility="",
                source_event="reconciliation",
                source_control_id="",
                changed_at=moment,
            )
        )
    return AttachOutcome.ATTACHED
