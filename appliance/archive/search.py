"""C-FIND matching on the index (PS3.4 C.2.2.2), for every edge that searches (C-FIND, QIDO-RS, the
console).

A `Query` holds the level and the keys as decoded strings; `find` answers one dict per matching
entity, keyword to value, for the keys the archive knows, with the patient's INS (Other Patient IDs
Sequence items) when it may be given out. Matching rules, each citing PS3.4: single value
(C.2.2.2.1), universal (C.2.2.2.3), wildcard `*`/`?` (C.2.2.2.4), range for DA/TM (C.2.2.2.5) and
UID list (C.2.2.2.2). Person names match whatever the case, the accents and the spelling of
ligatures, on their folded key (`patients.names.person_name_match`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Engine, Select, and_, exists, func, or_, select
from sqlalchemy.sql.elements import ColumnClause

from appliance.db.schema import instance, patient, patient_identity, series, study
from appliance.patients.names import LIKE_ESCAPE, like_pattern, person_name_match
from appliance.patients.national import national_identifiers

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")


class QueryError(Exception):
    """The query cannot be answered (unknown level, bad value); the message says which key."""


@dataclass(frozen=True)
class Key:
    """One matchable attribute: where it lives and how it is matched."""

    level: str
    column: Any
    kind: str  # PN, DA, TM, UI, IS, text, list (multi-valued CS), count


KEYS: dict[str, Key] = {
    "PatientName": Key("PATIENT", patient.c.patient_name, "PN"),
    "PatientID": Key("PATIENT", patient.c.patient_id, "text"),
    "IssuerOfPatientID": Key("PATIENT", patient.c.issuer_of_patient_id, "text"),
    "PatientBirthDate": Key("PATIENT", patient.c.patient_birth_date, "DA"),
    "PatientSex": Key("PATIENT", patient.c.patient_sex, "text"),
    "StudyInstanceUID": Key("STUDY", study.c.study_instance_uid, "UI"),
    "StudyDate": Key("STUDY", study.c.study_date, "DA"),
    "StudyTime": Key("STUDY", study.c.study_time, "TM"),
    "AccessionNumber": Key("STUDY", study.c.accession_number, "text"),
    "StudyID": Key("STUDY", study.c.study_id, "text"),
    "StudyDescription": Key("STUDY", study.c.study_description, "text"),
    "ReferringPhysicianName": Key("STUDY", study.c.referring_physician_name, "PN"),
    "ModalitiesInStudy": Key("STUDY", study.c.modalities_in_study, "list"),
    "NumberOfStudyRelatedSeries": Key("STUDY", study.c.number_of_series, "count"),
    "NumberOfStudyRelatedInstances": Key("STUDY", study.c.number_of_instances, "count"),
    "SeriesInstanceUID": Key("SERIES", series.c.series_instance_uid, "UI"),
    "Modality": Key("SERIES", series.c.modality, "text"),
    "SeriesNumber": Key("SERIES", series.c.series_number, "IS"),
    "SeriesDate": Key("SERIES", series.c.series_date, "DA"),
    "SeriesTime": Key("SERIES", series.c.series_time, "TM"),
    "SeriesDescription": Key("SERIES", series.c.series_description, "text"),
    "BodyPartExamined": Key("SERIES", series.c.body_part_examined, "text"),
    "NumberOfSeriesRelatedInstances": Key("SERIES", series.c.number_of_instances, "count"),
    "SOPInstanceUID": Key("IMAGE", instance.c.sop_instance_uid, "UI"),
    "SOPClassUID": Key("IMAGE", instance.c.sop_class_uid, "UI"),
    "InstanceNumber": Key("IMAGE", instance.c.instance_number, "IS"),
    "Rows": Key("IMAGE", instance.c.rows, "count"),
    "Columns": Key("IMAGE", instance.c.columns, "count"),
    "NumberOfFrames": Key("IMAGE", instance.c.number_of_frames, "IS"),
}

NAME_KEY_COLUMNS = {
    "PatientName": patient.c.patient_name_key,
    "ReferringPhysicianName": study.c.referring_physician_name_key,
}

PATIENT_COUNTS = {
    "NumberOfPatientRelatedStudies": func.count(study.c.id.distinct()),
    "NumberOfPatientRelatedSeries": func.coalesce(func.sum(study.c.number_of_series), 0),
    "NumberOfPatientRelatedInstances": func.coalesce(func.sum(study.c.number_of_instances), 0),
}

ORDER = {"PATIENT": patient.c.id, "STUDY": study.c.id, "SERIES": series.c.id, "IMAGE": instance.c.id}

MERGED_PATIENT = and_(patient_identity.c.patient_pk == patient.c.id, patient_identity.c.merged_into.is_not(None))


@dataclass(frozen=True)
class Query:
    """A C-FIND (or QIDO) request: the level and each key's value as sent ('' = return it)."""

    level: str
    keys: dict[str, str] = field(default_factory=dict)


def find(engine: Engine, query: Query, limit: int, offset: int = 0) -> list[dict[str, Any]]:
    """Entities at `query.level` matching every key, in a stable order (the order they were first
    archived), skipping the first `offset`; at most `limit` + 1 (so a caller sees overflow), which
    lets QIDO-RS page through the matches (PS3.18 8.3.4.4).

    Each match also holds `PatientPK` and, when the query asks for `OtherPatientIDsSequence`, the
    patient's INS items (only for a qualified identity, see `patients.national`).
    """
    statement = find_statement(query).order_by(ORDER[query.level]).limit(limit + 1)
    if offset > 0:
        statement = statement.offset(offset)
    with engine.connect() as connection:
        rows = [dict(row._mapping) for row in connection.execute(statement)]
        if "OtherPatientIDsSequence" in query.keys:
            national = national_identifiers(connection, (row["PatientPK"] for row in rows))
            for row in rows:
                row["OtherPatientIDsSequence"] = national.get(row["PatientPK"], [])
    return rows


def find_statement(query: Query) -> Select[Any]:
    if query.level not in LEVELS:
        raise QueryError(f"QueryRetrieveLevel: unknown level {query.level!r}")
    depth = LEVELS.index(query.level)
    columns = returned_columns(query, depth)
    statement = select(*columns).select_from(joined_tables(depth))
    conditions = [
        condition for keyword, value in query.keys.items() if (condition := match(keyword, value, depth)) is not None
    ]
    statement = statement.where(and_(*conditions)) if conditions else statement
    if query.level == "PATIENT":
        purged = study.c.purge_requested_at.isnot(None)
        statement = statement.outerjoin(study, and_(study.c.patient_pk == patient.c.id, ~purged)).group_by(patient.c.id)
        statement = statement.where(~exists().where(MERGED_PATIENT))  # an A40-absorbed patient is gone
    return statement


def joined_tables(depth: int) -> Any:
    joined: Any = patient
    if depth >= 1:  # a study whose purge is confirmed is gone for every query and retrieve (R2)
        joined = joined.join(study, and_(study.c.patient_pk == patient.c.id, study.c.purge_requested_at.is_(None)))
    if depth >= 2:
        joined = joined.join(series, series.c.study_pk == study.c.id)
    if depth >= 3:
        joined = joined.join(instance, instance.c.series_pk == series.c.id)
    return joined


def returned_columns(query: Query, depth: int) -> list[Any]:
    """The identifying columns of each level down to the query's, plus every known key asked for."""
    wanted = {"PatientID", "IssuerOfPatientID", "PatientName"}
    wanted |= {"StudyInstanceUID"} if depth >= 1 else set()
    wanted |= {"SeriesInstanceUID"} if depth >= 2 else set()
    wanted |= {"SOPInstanceUID", "SOPClassUID"} if depth >= 3 else set()
    wanted |= set(query.keys)
    columns: list[Any] = [patient.c.id.label("PatientPK")]
    for keyword in sorted(wanted):
        key = KEYS.get(keyword)
        if key is not None and LEVELS.index(key.level) <= depth:
            columns.append(key.column.label(keyword))
        elif keyword in PATIENT_COUNTS and depth == 0:
            columns.append(PATIENT_COUNTS[keyword].label(keyword))
    return columns


def match(keyword: str, value: str, depth: int) -> ColumnElement[bool] | None:
    """The SQL condition for one key, or None for universal matching (PS3.4 C.2.2.2.3)."""
    key = KEYS.get(keyword)
    if key is None or LEVELS.index(key.level) > depth:
        return None
    value = value.strip()
    if value in ("", "*") or key.kind == "count":
        return None
    if key.kind == "UI":
        return uid_match(key.column, value)
    if key.kind in ("DA", "TM"):
        return range_match(key.column, value, key.kind)
    if key.kind == "PN":
        return person_name_match(NAME_KEY_COLUMNS[keyword], value)
    if key.kind == "list":
        return modality_match(value)
    if key.kind == "IS":
        return integer_match(keyword, key.column, value)
    return text_match(key.column, value)


def uid_match(column: Any, value: str) -> ColumnElement[bool]:
    """PS3.4 C.2.2.2.2: a backslash-separated list of UIDs matches any of them."""
    uids = [uid.strip() for uid in value.split("\\") if uid.strip()]
    condition: ColumnElement[bool] = column == uids[0] if len(uids) == 1 else column.in_(uids)
    return condition


def text_match(column: Any, value: str) -> ColumnElement[bool]:
    """PS3.4 C.2.2.2.1 single value and C.2.2.2.4 wildcards (* any run, ? one character)."""
    if "*" not in value and "?" not in value:
        return column == value  # type: ignore[no-any-return]
    return column.like(like_pattern(value), escape=LIKE_ESCAPE)  # type: ignore[no-any-return]


def range_match(column: ColumnClause[Any], value: str, kind: str) -> ColumnElement[bool]:
    """PS3.4 C.2.2.2.5 range matching: `A-B`, `A-`, `-B`, or a single value."""
    if "-" not in value:
        if kind == "TM":
            return and_(column >= pad_time(value, upper=False), column <= pad_time(value, upper=True))
        return column == value
    lower, upper = (part.strip() for part in value.split("-", 1))
    if kind == "TM":
        lower, upper = pad_time(lower, upper=False) if lower else "", pad_time(upper, upper=True) if upper else ""
    conditions = [column != ""]
    if lower:
        conditions.append(column >= lower)
    if upper:
        conditions.append(column <= upper)
    return and_(*conditions)


def pad_time(value: str, upper: bool) -> str:
    """A partial TM bound made comparable with stored times: 10 -> 100000 (or 105959.999999)."""
    digits = value.replace(":", "")
    whole, _, fraction = digits.partition(".")
    filler = "595959"[len(whole) - 2 :] if upper and len(whole) < 6 else "000000"[len(whole) :]
    whole = (whole + filler)[:6]
    if upper and not fraction:
        return whole + ".999999"
    return whole + (f".{fraction}" if fraction else "")


def modality_match(value: str) -> ColumnElement[bool]:
    """Modalities In Study: one of the study's series has any of the listed modalities."""
    wanted = [entry.strip() for entry in value.split("\\") if entry.strip()]
    inner = series.alias("modality_series")
    alternatives = [text_match(inner.c.modality, entry) for entry in wanted]
    condition: ColumnElement[bool] = exists().where(inner.c.study_pk == study.c.id, or_(*alternatives))
    return condition


def integer_match(keyword: str, column: Any, value: str) -> ColumnElement[bool]:
    try:
        return column == int(value)  # type: ignore[no-any-return]
    except ValueError as error:
        raise QueryError(f"{keyword}: {value!r} is not a number") from error


def iterate_instances(engine: Engine, batch: int = 1000) -> Iterator[dict[str, Any]]:
    """Every indexed instance (id, path, sha256, UIDs, tier), in id order, fetched in batches."""
    last_id = 0
    while True:
        statement = (
            select(instance.c.id, instance.c.path, instance.c.sha256, instance.c.sop_instance_uid, instance.c.tier)
            .where(instance.c.id > last_id)
            .order_by(instance.c.id)
            .limit(batch)
        )
        with engine.connect() as connection:
            rows = [dict(row._mapping) for row in connection.execute(statement)]
        if not rows:
            return
        yield from rows
        last_id = rows[-1]["id"]
