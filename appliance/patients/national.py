"""The INS (Identifiant National de Santé, P3): what counts as one, when it may be given out, and how
DICOM carries it (Other Patient IDs Sequence items with the issuer and its OID).

The rule, stated once: **an INS is given out only for a qualified identity** (`VALI` among the
identity status values of PID-32). The RIS's INS are kept only for qualified identities; an INS read
from an image is kept (source "dicom") but stays hidden until the RIS qualifies the identity.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, insert, or_, select

from appliance.db.schema import patient_identifier, patient_identity

INS_TYPE = "INS"  # CX-5 of an INS (IHE France constraints on CX)
QUALIFIED = "VALI"  # PID-32: the identity is qualified
INS_NIR_OID = "1.2.250.1.213.1.4.8"
INS_NIA_OID = "1.2.250.1.213.1.4.9"
# Test and demonstration INS (and the obsolete INS-C): refused in production mode.
TEST_INS_OIDS = frozenset(
    {"1.2.250.1.213.1.4.10", "1.2.250.1.213.1.4.11", "1.2.250.1.213.1.4.6", "1.2.250.1.213.1.4.7"}
)
PRODUCTION_INS_OIDS = frozenset({INS_NIR_OID, INS_NIA_OID})
DICOM_SOURCE = "dicom"


@dataclass(frozen=True)
class Identifier:
    """An issuer-qualified identifier (HL7 CX): value, CX-4.1 namespace, CX-4.2 OID, CX-5 type."""

    value: str
    namespace: str = ""
    universal_id: str = ""
    type_code: str = ""

    @property
    def issuer(self) -> str:
        """What the archive stores as Issuer of Patient ID: the namespace, else the OID."""
        return self.namespace or self.universal_id

    @property
    def is_ins(self) -> bool:
        return self.type_code == INS_TYPE or self.universal_id in PRODUCTION_INS_OIDS | TEST_INS_OIDS


def is_qualified(identity_status: str | Iterable[str]) -> bool:
    """Whether an identity status (PID-32 repetitions, or them `~`-joined) lets the INS be given out."""
    values = identity_status.split("~") if isinstance(identity_status, str) else identity_status
    return QUALIFIED in values


def qualified_status(column: Any) -> ColumnElement[bool]:
    """`is_qualified` in SQL, on a column of `~`-joined identity status values."""
    return or_(
        column == QUALIFIED,
        column.like(f"{QUALIFIED}~%"),
        column.like(f"%~{QUALIFIED}"),
        column.like(f"%~{QUALIFIED}~%"),
    )


def holders_of(ins: str) -> Select[tuple[int]]:
    """The patients holding the INS `ins` whose identity is qualified (an INS is matched only where
    it may be given out)."""
    return (
        select(patient_identifier.c.patient_pk)
        .join(patient_identity, patient_identity.c.patient_pk == patient_identifier.c.patient_pk)
        .where(
            and_(
                patient_identifier.c.identifier == ins.strip(),
                patient_identifier.c.type_code == INS_TYPE,
                qualified_status(patient_identity.c.identity_status),
            )
        )
    )


def national_identifiers(connection: Connection, patient_pks: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    """Other Patient IDs Sequence items (keyword to value) of each patient whose INS may be given out."""
    wanted = sorted(set(patient_pks))
    if not wanted:
        return {}
    statement = (
        select(
            patient_identifier.c.patient_pk,
            patient_identifier.c.identifier,
            patient_identifier.c.namespace,
            patient_identifier.c.universal_id,
            patient_identity.c.identity_status,
        )
        .join(patient_identity, patient_identity.c.patient_pk == patient_identifier.c.patient_pk)
        .where(patient_identifier.c.patient_pk.in_(wanted), patient_identifier.c.type_code == INS_TYPE)
        .order_by(patient_identifier.c.id)
    )
    found: dict[int, list[dict[str, Any]]] = {}
    for row in connection.execute(statement):
        if is_qualified(row.identity_status):
            item = other_patient_id(row.identifier, row.namespace, row.universal_id)
            found.setdefault(row.patient_pk, []).append(item)
    return found


def other_patient_id(value: str, namespace: str, oid: str) -> dict[str, Any]:
    """One Other Patient IDs Sequence item (PS3.3 C.7.1.1): the INS, its issuer and OID."""
    return {
        "PatientID": value,
        "IssuerOfPatientID": namespace,
        "IssuerOfPatientIDQualifiersSequence": [{"UniversalEntityID": oid, "UniversalEntityIDType": "ISO"}],
        "TypeOfPatientID": "TEXT",
    }


def keep_received_identifiers(
    connection: Connection, patient_pk: int, identifiers: Iterable[Identifier], moment: datetime
) -> int:
    """Keep the INS an image carried for a patient created from it (hidden until qualified)."""
    kept = 0
    for identifier in identifiers:
        if not (identifier.is_ins and identifier.value):
            continue
        values = {
            "patient_pk": patient_pk,
            "identifier": identifier.value,
            "namespace": identifier.namespace,
            "universal_id": identifier.universal_id,
            "type_code": INS_TYPE,
            "source": DICOM_SOURCE,
            "created_at": moment,
        }
        connection.execute(insert(patient_identifier), values)
        kept += 1
    return kept
