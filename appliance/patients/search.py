"""Finding patients by identifier and demographics (IHE PDQ, the console): merged-away patients are
never returned, and an INS only for a qualified identity (`national.is_qualified`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Engine, Select, and_, or_, select

from appliance.db.schema import patient, patient_identifier, patient_identity
from appliance.patients.names import person_name_match
from appliance.patients.national import INS_TYPE, QUALIFIED, is_qualified


@dataclass(frozen=True)
class Criteria:
    """What to look for ('' = anything); a trailing `*` on a name asks for its beginning;
    `national_identifier` is an INS, found only for a qualified identity (the INS rule)."""

    identifier: str = ""
    authority: str = ""
    family: str = ""
    given: str = ""
    birth_date: str = ""
    sex: str = ""
    national_identifier: str = ""


@dataclass(frozen=True)
class FoundPatient:
    """One patient: the index's values and French identity traits (column name to value), and the
    identifiers that may be given out."""

    values: dict[str, Any]
    identifiers: list[dict[str, Any]] = field(default_factory=list)


def find_patients(engine: Engine, criteria: Criteria, limit: int) -> list[FoundPatient]:
    with engine.connect() as connection:
        rows = [dict(row._mapping) for row in connection.execute(patient_query(criteria).limit(limit))]
        found = []
        for row in rows:
            identifiers = connection.execute(
                select(patient_identifier)
                .where(patient_identifier.c.patient_pk == row["id"])
                .order_by(patient_identifier.c.id)
            )
            given_out = [dict(item._mapping) for item in identifiers if may_give_out(dict(item._mapping), row)]
            found.append(FoundPatient(row, given_out))
    return found


def may_give_out(identifier: dict[str, Any], row: dict[str, Any]) -> bool:
    return identifier["type_code"] != INS_TYPE or is_qualified(str(row.get("identity_status") or ""))


def patient_query(criteria: Criteria) -> Select[tuple[object, ...]]:
    query = (
        select(patient, patient_identity)
        .join(patient_identity, patient_identity.c.patient_pk == patient.c.id, isouter=True)
        .where(patient_identity.c.merged_into.is_(None))
        .order_by(patient.c.id)
    )
    if criteria.identifier:
        query = query.where(patient.c.patient_id == criteria.identifier)
    if criteria.authority:
        query = query.where(patient.c.issuer_of_patient_id == criteria.authority)
    if criteria.family or criteria.given:
        query = query.where(name_condition(criteria))
    if criteria.birth_date:
        query = query.where(patient.c.patient_birth_date == criteria.birth_date[:8])
    if criteria.sex:
        query = query.where(patient.c.patient_sex == criteria.sex)
    if criteria.national_identifier:
        query = query.where(national_condition(criteria.national_identifier))
    return query


def national_condition(value: str) -> ColumnElement[bool]:
    """The patient has this INS and a qualified identity (an INS is neither given out nor matched
    otherwise)."""
    holders = select(patient_identifier.c.patient_pk).where(
        patient_identifier.c.identifier == value, patient_identifier.c.type_code == INS_TYPE
    )
    qualified = patient_identity.c.identity_status.contains(QUALIFIED)
    return and_(patient.c.id.in_(holders), qualified)


def name_condition(criteria: Criteria) -> ColumnElement[bool]:
    """Family and given name matched as C-FIND and the worklist match Patient's Name: on the folded
    key (`names.person_name_match`). Each is the whole component, or its beginning when it ends with
    `*`; a given name alone matches any family name."""
    pattern = criteria.family or "*"
    if criteria.given:
        pattern = f"{pattern}^{criteria.given}"
    if pattern.endswith("*"):
        return person_name_match(patient.c.patient_name_key, pattern)
    return or_(
        person_name_match(patient.c.patient_name_key, pattern),
        person_name_match(patient.c.patient_name_key, f"{pattern}^*"),
    )
