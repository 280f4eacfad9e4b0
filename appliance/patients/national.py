"""The INS of archived patients as DICOM carries it (P3): Other Patient IDs Sequence items with the
issuer and its OID. Only qualified identities have an INS kept (see `identities`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from appliance.patients.tables import patient_identifier

INS_TYPE = "INS"


def national_identifiers(engine: Engine, patient_pks: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Other Patient IDs items (keyword to value) for each patient that has an INS."""
    if not patient_pks:
        return {}
    statement = select(
        patient_identifier.c.patient_pk,
        patient_identifier.c.identifier,
        patient_identifier.c.namespace,
        patient_identifier.c.universal_id,
    ).where(patient_identifier.c.patient_pk.in_(patient_pks), patient_identifier.c.type_code == INS_TYPE)
    found: dict[int, list[dict[str, Any]]] = {}
    with engine.connect() as connection:
        for row in connection.execute(statement):
            found.setdefault(row.patient_pk, []).append(
                other_patient_id(row.identifier, row.namespace, row.universal_id)
            )
    return found


def other_patient_id(value: str, namespace: str, oid: str) -> dict[str, Any]:
    """One Other Patient IDs Sequence item (PS3.3 C.7.1.1): the INS, its issuer and OID."""
    return {
        "PatientID": value,
        "IssuerOfPatientID": namespace,
        "IssuerOfPatientIDQualifiersSequence": [{"UniversalEntityID": oid, "UniversalEntityIDType": "ISO"}],
        "TypeOfPatientID": "TEXT",
    }
