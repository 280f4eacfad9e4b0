"""What the register could not give: reports that could not be read (with the reason) and CT
studies with only a dose screen ("dose not readable"), each with its current patient."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Engine, and_, exists, select

from appliance.db.schema import dose_report, patient, study
from appliance.dose.register import READ, SCREEN, UNREADABLE


@dataclass(frozen=True)
class NotRead:
    study_instance_uid: str
    exam_date: str
    study_description: str
    status: str  # unreadable or screen
    problem: str
    detail: str
    patient_id: str
    issuer: str
    patient_name: str
    accession_number: str


def not_read(engine: Engine, first: date, last: date, limit: int = 200) -> list[NotRead]:
    """Unreadable reports, and dose screens of studies without a report read, newest first."""
    other = dose_report.alias("other")
    read_elsewhere = exists().where(
        and_(other.c.study_instance_uid == dose_report.c.study_instance_uid, other.c.status == READ)
    )
    statement = (
        select(
            dose_report.c.study_instance_uid,
            dose_report.c.exam_date,
            dose_report.c.study_description,
            dose_report.c.status,
            dose_report.c.problem,
            dose_report.c.detail,
            patient.c.patient_id,
            patient.c.issuer_of_patient_id.label("issuer"),
            patient.c.patient_name,
            study.c.accession_number,
        )
        .join(study, study.c.study_instance_uid == dose_report.c.study_instance_uid)
        .join(patient, patient.c.id == study.c.patient_pk)
        .where(
            (dose_report.c.status == UNREADABLE) | ((dose_report.c.status == SCREEN) & ~read_elsewhere),
            dose_report.c.exam_date >= first.strftime("%Y%m%d"),
            dose_report.c.exam_date <= last.strftime("%Y%m%d"),
        )
        .order_by(dose_report.c.exam_date.desc(), dose_report.c.id.desc())
        .limit(limit)
    )
    with engine.connect() as connection:
        return [NotRead(**row._mapping) for row in connection.execute(statement)]
