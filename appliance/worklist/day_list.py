"""The day's worklist as staff see it (W2): every scheduled procedure step of a day, whatever its
status (scheduled, in progress after the modality's MPPS, completed, discontinued, cancelled), per
modality and station; and, for one modality, its worklist exactly as the worklist SCP answers it
(`profiles.answers`: the modality's profile, name format, lengths and character set).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from pydicom.dataset import Dataset
from sqlalchemy import Engine, exists, select

from appliance.archive.study_list import clock_of, day_of
from appliance.config.loader import WorklistConfig, WorklistProfile
from appliance.db.schema import patient, scheduled_step, study
from appliance.patients.names import french_name
from appliance.worklist.profiles import answers, typical_query

DAY_LIMIT = 2000  # far more steps than a practice schedules in a day


@dataclass(frozen=True)
class DayStep:
    """One scheduled procedure step of the day."""

    start_time: str  # HH:MM
    status: str  # SCHEDULED, IN PROGRESS, COMPLETED, DISCONTINUED, CANCELLED
    modality: str
    station_ae_title: str
    station_name: str
    procedure: str
    accession_number: str
    study_instance_uid: str
    patient_name: str  # as recorded
    patient_id: str
    patient_birth_date: date | None
    images_stored: bool = False  # the archive holds images of the step's study (a page to open)

    @property
    def patient_display_name(self) -> str:
        return french_name(self.patient_name)


@dataclass(frozen=True)
class PreviewItem:
    """One worklist item as the modality receives it: the values as sent, after its profile."""

    patient_name: str
    patient_id: str
    patient_birth_date: str
    patient_sex: str
    accession_number: str
    requested_procedure: str
    step_description: str
    start_date: str
    start_time: str
    station_ae_title: str


@dataclass(frozen=True)
class ModalityPreview:
    calling_ae_title: str
    profile: WorklistProfile
    has_own_profile: bool
    items: tuple[PreviewItem, ...]


def day_steps(engine: Engine, day: date, modality: str = "", station_ae_title: str = "") -> list[DayStep]:
    """The steps scheduled on `day` (of one modality and station when given), by start time."""
    conditions = [scheduled_step.c.scheduled_start_date == f"{day:%Y%m%d}"]
    if modality:
        conditions.append(scheduled_step.c.modality == modality)
    if station_ae_title:
        conditions.append(scheduled_step.c.scheduled_station_ae_title == station_ae_title)
    statement = (
        select(
            scheduled_step,
            patient.c.patient_name,
            patient.c.patient_id,
            patient.c.patient_birth_date,
            exists().where(study.c.study_instance_uid == scheduled_step.c.study_instance_uid).label("images_stored"),
        )
        .join(patient, patient.c.id == scheduled_step.c.patient_pk)
        .where(*conditions)
        .order_by(scheduled_step.c.scheduled_start_time, scheduled_step.c.id)
        .limit(DAY_LIMIT)
    )
    with engine.connect() as connection:
        return [day_step(row._mapping) for row in connection.execute(statement)]


def day_step(row: Any) -> DayStep:
    return DayStep(
        start_time=clock_of(row["scheduled_start_time"]),
        status=row["status"],
        modality=row["modality"],
        station_ae_title=row["scheduled_station_ae_title"],
        station_name=row["scheduled_station_name"],
        procedure=row["requested_procedure_description"] or row["scheduled_procedure_step_description"],
        accession_number=row["accession_number"],
        study_instance_uid=row["study_instance_uid"],
        patient_name=row["patient_name"],
        patient_id=row["patient_id"],
        patient_birth_date=day_of(row["patient_birth_date"]),
        images_stored=bool(row["images_stored"]),
    )


def day_stations(engine: Engine, day: date, config: WorklistConfig) -> list[str]:
    """The station AE titles a preview can be asked for: those scheduled on `day` and those with a
    profile of their own, sorted."""
    statement = (
        select(scheduled_step.c.scheduled_station_ae_title)
        .where(scheduled_step.c.scheduled_start_date == f"{day:%Y%m%d}")
        .distinct()
    )
    with engine.connect() as connection:
        scheduled = {str(value) for value in connection.execute(statement).scalars() if value}
    return sorted(scheduled | {profile.ae_title for profile in config.profiles if profile.ae_title})


def modality_preview(
    engine: Engine, config: WorklistConfig, calling_ae_title: str, day: date, modality: str = ""
) -> ModalityPreview:
    """What the modality calling as `calling_ae_title` receives for its usual query about `day`
    (`profiles.typical_query` with that date): the worklist SCP's own answers."""
    query = typical_query(modality)
    query.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate = f"{day:%Y%m%d}"
    found = answers(engine, config, query, calling_ae_title, day)
    profile = config.profile_for(calling_ae_title)
    has_own = any(entry.ae_title == calling_ae_title for entry in config.profiles)
    return ModalityPreview(calling_ae_title, profile, has_own, tuple(preview_item(answer) for answer in found))


def preview_item(answer: Dataset) -> PreviewItem:
    sequence = answer.get("ScheduledProcedureStepSequence")
    step = sequence[0] if sequence else Dataset()
    return PreviewItem(
        patient_name=value_of(answer, "PatientName"),
        patient_id=value_of(answer, "PatientID"),
        patient_birth_date=value_of(answer, "PatientBirthDate"),
        patient_sex=value_of(answer, "PatientSex"),
        accession_number=value_of(answer, "AccessionNumber"),
        requested_procedure=value_of(answer, "RequestedProcedureDescription"),
        step_description=value_of(step, "ScheduledProcedureStepDescription"),
        start_date=value_of(step, "ScheduledProcedureStepStartDate"),
        start_time=value_of(step, "ScheduledProcedureStepStartTime"),
        station_ae_title=value_of(step, "ScheduledStationAETitle"),
    )


def value_of(dataset: Dataset, keyword: str) -> str:
    value = dataset.get(keyword)
    return "" if value is None else str(value)
