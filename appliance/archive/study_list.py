"""The console's study list (H5): studies found by patient name, IPP, INS, accession number, date
range and modality, newest first, one page at a time.

Pages are cut by position (keyset pagination on study date, study time and key), never by OFFSET:
the hundredth page costs what the first one does. Every condition is one the index serves: names
on the folded key (`patients.names.typed_name_match`, case, accents and ligatures ignored), IPP and
accession number by equality (or DICOM wildcards), INS through the identifiers of qualified
identities only (`patients.national.holders_of`), modality through the series' modality index.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Engine, Select, literal, select, tuple_

from appliance.archive.search import modality_match, text_match
from appliance.db.schema import patient, study
from appliance.patients.names import french_name, typed_name_match
from appliance.patients.national import holders_of

PAGE_SIZE = 50
POSITION = re.compile(r"^(\d{0,8})_([0-9.:]{0,16})_(\d{1,18})$")


@dataclass(frozen=True)
class StudyCriteria:
    """What the person looks for ('' or None = anything)."""

    patient_name: str = ""
    patient_id: str = ""
    national_identifier: str = ""  # INS
    accession_number: str = ""
    first_day: date | None = None
    last_day: date | None = None
    modality: str = ""


@dataclass(frozen=True)
class Position:
    """Where a page ends: the last study's date, time and key (the next page starts after it)."""

    study_date: str
    study_time: str
    study_pk: int

    @property
    def token(self) -> str:
        """The position as a URL parameter: `date_time_key`."""
        return f"{self.study_date}_{self.study_time}_{self.study_pk}"

    @classmethod
    def parse(cls, token: str) -> Position | None:
        """The position of a token made by `token`; None for anything else."""
        found = POSITION.match(token.strip())
        if found is None:
            return None
        return cls(found.group(1), found.group(2), int(found.group(3)))


@dataclass(frozen=True)
class ListedStudy:
    """One line of the study list."""

    study_instance_uid: str
    study_date: date | None
    study_time: str  # HH:MM, '' when unknown
    accession_number: str
    study_description: str
    modalities: tuple[str, ...]
    number_of_series: int
    number_of_instances: int
    patient_name: str  # as recorded (DICOM PN)
    patient_id: str
    issuer_of_patient_id: str
    patient_birth_date: date | None
    patient_sex: str

    @property
    def patient_display_name(self) -> str:
        """NOM Prénom."""
        return french_name(self.patient_name)


@dataclass(frozen=True)
class StudyPage:
    studies: list[ListedStudy]
    next_position: Position | None  # None on the last page


COLUMNS = (
    study.c.id,
    study.c.study_instance_uid,
    study.c.study_date,
    study.c.study_time,
    study.c.accession_number,
    study.c.study_description,
    study.c.modalities_in_study,
    study.c.number_of_series,
    study.c.number_of_instances,
    patient.c.patient_name,
    patient.c.patient_id,
    patient.c.issuer_of_patient_id,
    patient.c.patient_birth_date,
    patient.c.patient_sex,
)


def console_search(
    engine: Engine, criteria: StudyCriteria, after: Position | None = None, limit: int = PAGE_SIZE
) -> StudyPage:
    """The studies matching `criteria`, newest first (study date, time, then arrival), at most
    `limit`, starting after `after`; the page says where the next one starts."""
    statement = search_statement(criteria, after).limit(limit + 1)
    with engine.connect() as connection:
        rows = list(connection.execute(statement))
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows and more else None
    next_position = Position(last.study_date, last.study_time, last.id) if last is not None else None
    return StudyPage([listed(row._mapping) for row in rows], next_position)


def search_statement(criteria: StudyCriteria, after: Position | None) -> Select[Any]:
    """The SELECT of one page (without its LIMIT)."""
    study_date, study_time, study_pk = sort_keys(criteria)
    statement = (
        select(*COLUMNS)
        .select_from(study.join(patient, patient.c.id == study.c.patient_pk))
        .where(*conditions(criteria))
        .order_by(study_date.desc(), study_time.desc(), study_pk.desc())
    )
    if after is not None:
        position = tuple_(literal(after.study_date), literal(after.study_time), literal(after.study_pk))
        statement = statement.where(tuple_(study_date, study_time, study_pk) < position)
    return statement


def sort_keys(criteria: StudyCriteria) -> tuple[ColumnElement[Any], ColumnElement[Any], ColumnElement[Any]]:
    """What the list is ordered by. A search by patient (name, IPP, INS) or accession number finds
    its few studies through that key's index, then sorts them: the order index is hidden from the
    planner (`study_date || ''`), which, without statistics, would rather walk every study newest
    first, checking each one's patient."""
    keyed = (criteria.patient_name, criteria.patient_id, criteria.national_identifier, criteria.accession_number)
    if any(value.strip() for value in keyed):
        return study.c.study_date.concat(""), study.c.study_time, study.c.id
    return study.c.study_date, study.c.study_time, study.c.id


def conditions(criteria: StudyCriteria) -> list[ColumnElement[bool]]:
    found: list[ColumnElement[bool]] = [study.c.purge_requested_at.is_(None)]  # a confirmed purge hides it (R2)
    if criteria.patient_name.strip():
        found.append(typed_name_match(patient.c.patient_name_key, criteria.patient_name))
    if criteria.patient_id.strip():
        found.append(text_match(patient.c.patient_id, criteria.patient_id.strip()))
    if criteria.national_identifier.strip():
        found.append(patient.c.id.in_(holders_of(criteria.national_identifier)))
    if criteria.accession_number.strip():
        found.append(text_match(study.c.accession_number, criteria.accession_number.strip()))
    if criteria.first_day is not None:
        found.append(study.c.study_date >= f"{criteria.first_day:%Y%m%d}")
    if criteria.last_day is not None:
        found.append(study.c.study_date <= f"{criteria.last_day:%Y%m%d}")
    if criteria.modality.strip():
        found.append(modality_match(criteria.modality.strip()))
    return found


def listed(row: Any) -> ListedStudy:
    return ListedStudy(
        study_instance_uid=row["study_instance_uid"],
        study_date=day_of(row["study_date"]),
        study_time=clock_of(row["study_time"]),
        accession_number=row["accession_number"],
        study_description=row["study_description"],
        modalities=tuple(entry for entry in str(row["modalities_in_study"]).split("\\") if entry),
        number_of_series=row["number_of_series"],
        number_of_instances=row["number_of_instances"],
        patient_name=row["patient_name"],
        patient_id=row["patient_id"],
        issuer_of_patient_id=row["issuer_of_patient_id"],
        patient_birth_date=day_of(row["patient_birth_date"]),
        patient_sex=row["patient_sex"],
    )


def day_of(value: str) -> date | None:
    """A DICOM DA value (YYYYMMDD) as a date; None when it is not one."""
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:8])) if len(value) == 8 else None
    except ValueError:
        return None


def clock_of(value: str) -> str:
    """A DICOM TM value (HHMMSS.FFFFFF, or the old HH:MM:SS) as HH:MM; '' when it is not one."""
    digits = value.replace(":", "").split(".")[0]
    if len(digits) < 4 or not digits[:4].isdigit():
        return ""
    return f"{digits[:2]}:{digits[2:4]}"
