"""A study as a viewer opens it: the patient's current identity, the study, and each series with its
instances in display order (series number, instance number), from the index alone (no file read).

Used by the console's built-in viewer (the series list and the image addresses) and by the Weasis
manifest (Patient / Study / Series / Instance). `patient_studies` gives the studies of the patient
of one study, for the "whole patient" buttons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, select

from appliance.db.schema import instance, patient, series, study


@dataclass(frozen=True)
class StackImage:
    sop_instance_uid: str
    sop_class_uid: str
    instance_number: int | None
    frames: int  # 1 for a single-frame image; 0 for an object without pixels (SR, KOS, PR)


@dataclass(frozen=True)
class Stack:
    """One series: its images, in order."""

    series_instance_uid: str
    number: int | None
    modality: str
    description: str
    images: tuple[StackImage, ...]

    @property
    def has_pixels(self) -> bool:
        return any(image.frames > 0 for image in self.images)

    @property
    def frames(self) -> int:
        return sum(image.frames for image in self.images)


@dataclass(frozen=True)
class StudyStacks:
    """A study with its patient's current identity (as the index holds it, after merges and updates)."""

    study_instance_uid: str
    study_date: str
    study_time: str
    accession_number: str
    study_description: str
    patient_id: str
    issuer_of_patient_id: str
    patient_name: str
    patient_birth_date: str
    patient_sex: str
    stacks: tuple[Stack, ...]


def study_stacks(engine: Engine, study_instance_uid: str) -> StudyStacks | None:
    """The study with its series and instances; None when the archive does not hold it."""
    with engine.connect() as connection:
        head = connection.execute(
            select(
                study.c.id,
                study.c.study_instance_uid,
                study.c.study_date,
                study.c.study_time,
                study.c.accession_number,
                study.c.study_description,
                patient.c.patient_id,
                patient.c.issuer_of_patient_id,
                patient.c.patient_name,
                patient.c.patient_birth_date,
                patient.c.patient_sex,
            )
            .select_from(study.join(patient, patient.c.id == study.c.patient_pk))
            .where(study.c.study_instance_uid == study_instance_uid)
        ).first()
        if head is None:
            return None
        stacks = series_of(connection, int(head.id))
    values: dict[str, Any] = {key: str(value or "") for key, value in head._mapping.items() if key != "id"}
    return StudyStacks(**values, stacks=stacks)


def series_of(connection: Connection, study_pk: int) -> tuple[Stack, ...]:
    rows = connection.execute(
        select(
            series.c.series_instance_uid,
            series.c.series_number,
            series.c.modality,
            series.c.series_description,
            instance.c.sop_instance_uid,
            instance.c.sop_class_uid,
            instance.c.instance_number,
            instance.c.rows,
            instance.c.number_of_frames,
        )
        .select_from(series.join(instance, instance.c.series_pk == series.c.id))
        .where(series.c.study_pk == study_pk)
        .order_by(series.c.series_number, series.c.id, instance.c.instance_number, instance.c.id)
    )
    grouped: dict[str, tuple[Any, list[StackImage]]] = {}
    for row in rows:
        frames = 0 if row.rows is None else max(1, int(row.number_of_frames or 1))
        image = StackImage(row.sop_instance_uid, row.sop_class_uid, row.instance_number, frames)
        grouped.setdefault(row.series_instance_uid, (row, []))[1].append(image)
    return tuple(
        Stack(uid, row.series_number, row.modality, row.series_description, tuple(images))
        for uid, (row, images) in grouped.items()
    )


def patient_studies(engine: Engine, study_instance_uid: str) -> list[str]:
    """The Study Instance UIDs of the patient who owns this study (itself included), newest first."""
    owner = select(study.c.patient_pk).where(study.c.study_instance_uid == study_instance_uid).scalar_subquery()
    statement = (
        select(study.c.study_instance_uid)
        .where(study.c.patient_pk == owner)
        .order_by(study.c.study_date.desc(), study.c.study_time.desc(), study.c.id.desc())
    )
    with engine.connect() as connection:
        return [str(uid) for uid in connection.execute(statement).scalars()]
