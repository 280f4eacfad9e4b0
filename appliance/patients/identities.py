"""Patient identities from the RIS (IHE PAM, French national extension): create and update (A28,
A31, A01, A04, A05, A08), merge (A40) and identifier change (A47), with the INS rules; the
cancellation of an admission (A11) is recorded without touching the identity.

Every function runs inside the caller's transaction and returns a `PatientResult` value; the HL7
edge maps the outcome to an ACK. Every change is written to `identity_change` (who, what, when).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from appliance.db.schema import identity_change, patient, patient_identifier, patient_identity, scheduled_step, study
from appliance.patients.names import person_name_key
from appliance.patients.national import (
    INS_NIA_OID,
    INS_NIR_OID,
    INS_TYPE,
    TEST_INS_OIDS,
    Identifier,
    is_qualified,
)

__all__ = ["INS_NIA_OID", "INS_NIR_OID", "Identifier"]

BILLING_NIR_TYPE = "NH"  # NIR de facturation: not kept


class PatientOutcome(enum.Enum):
    CREATED = "created"
    UPDATED = "updated"
    MERGED = "merged"
    IDENTIFIER_CHANGED = "identifier-changed"
    TEST_IDENTIFIER_REFUSED = "test-identifier-refused"  # test/demo INS OID in production: AE
    UNKNOWN_PATIENT = "unknown-patient"  # A47 on an identifier we do not know: AE
    IDENTIFIER_IN_USE = "identifier-in-use"  # A47 to an IPP another patient holds: AE
    SELF_MERGE = "self-merge"  # A40 of a patient into itself: AE
    CIRCULAR_MERGE = "circular-merge"  # A40 into a patient already merged away: AE
    ADMISSION_CANCELLED = "admission-cancelled"  # A11: recorded in the audit trail, the identity left as it is
    IDENTITY_KEPT = "identity-kept"  # an order's PID without PID-32 for a known patient: nothing changed

    @property
    def applied(self) -> bool:
        return self in {
            self.CREATED,
            self.UPDATED,
            self.MERGED,
            self.IDENTIFIER_CHANGED,
            self.ADMISSION_CANCELLED,
            self.IDENTITY_KEPT,
        }


@dataclass(frozen=True)
class PatientIdentity:
    """A patient as the RIS describes it, decoded to Unicode. Empty strings mean "not sent"."""

    ipp: Identifier
    other_identifiers: tuple[Identifier, ...] = ()
    birth_name: str = ""
    first_given_name: str = ""
    given_names: str = ""
    used_name: str = ""
    used_given_name: str = ""
    sex: str = ""  # DICOM value: M, F, O or ""
    birth_date: str = ""  # YYYYMMDD
    birth_place: str = ""  # INSEE code
    identity_status: tuple[str, ...] = ()  # PID-32 repetitions

    @property
    def qualified(self) -> bool:
        return is_qualified(self.identity_status)

    @property
    def dicom_name(self) -> str:
        """DICOM PN `FAMILY^GIVEN`: birth name and first given name (the used name when no birth name)."""
        family = self.birth_name or self.used_name
        given = self.first_given_name if self.birth_name else self.used_given_name or self.first_given_name
        return f"{family}^{given}".rstrip("^")


@dataclass(frozen=True)
class Source:
    """Who asked for a change: sending application and facility, message event and control ID."""

    application: str
    facility: str
    event: str
    control_id: str


@dataclass(frozen=True)
class IdentityPolicy:
    """`refuse_test_ins`: production mode refuses test/demo INS OIDs."""

    refuse_test_ins: bool


@dataclass(frozen=True)
class PatientResult:
    outcome: PatientOutcome
    patient_pk: int | None = None
    detail: str = ""


def now() -> datetime:
    return datetime.now(UTC)


# Statements built once and executed with parameter dictionaries (SQLAlchemy skips rebuilding them).
PATIENT_BY_IDENTIFIER = select(patient.c.id, patient.c.issuer_of_patient_id).where(
    patient.c.patient_id == bindparam("patient_id"),
    patient.c.issuer_of_patient_id.in_(bindparam("issuers", expanding=True)),
)
SET_ISSUER = update(patient).where(patient.c.id == bindparam("patient_pk"))
UPDATE_PATIENT = update(patient).where(patient.c.id == bindparam("patient_pk"))
UPDATE_IDENTITY = update(patient_identity).where(patient_identity.c.patient_pk == bindparam("identity_pk"))
MERGED_INTO = select(patient_identity.c.merged_into).where(patient_identity.c.patient_pk == bindparam("patient_pk"))
INSERT_PATIENT = insert(patient)
INSERT_IDENTITY = insert(patient_identity)
INSERT_IDENTIFIER = insert(patient_identifier)
INSERT_CHANGE = insert(identity_change)
DELETE_IDENTIFIERS = delete(patient_identifier).where(patient_identifier.c.patient_pk == bindparam("identity_pk"))


def record_patient(
    connection: Connection, identity: PatientIdentity, source: Source, policy: IdentityPolicy
) -> PatientResult:
    """Create the patient of `identity` or update it; INS kept only when the identity is qualified."""
    refused = refused_identifiers(identity.other_identifiers, policy)
    if refused:
        return PatientResult(PatientOutcome.TEST_IDENTIFIER_REFUSED, detail=refused)
    found = find_patient(connection, identity.ipp)
    moment = now()
    if found is None:
        patient_pk = create_patient(connection, identity, moment)
        outcome = PatientOutcome.CREATED
    else:
        patient_pk = found
        update_patient(connection, patient_pk, identity, moment)
        outcome = PatientOutcome.UPDATED
    replace_identifiers(connection, patient_pk, identity, moment)
    audit(connection, patient_pk, outcome.value, describe(identity), source, moment)
    return PatientResult(outcome, patient_pk)


def record_order_patient(
    connection: Connection, identity: PatientIdentity, source: Source, policy: IdentityPolicy
) -> PatientResult:
    """The patient of an order (ORM^O01, OMI^O23): created when unknown. A known patient's identity
    belongs to the identity feed (ADT, IHE PAM): an order whose PID carries no identity status
    (PID-32) leaves the identity, its qualification and its INS as they are, rather than erasing a
    qualified identity with a RIS's partial copy of it. An order that does carry PID-32, or a patient
    the identity feed never described (known from images or orders only), is updated as an A08 would."""
    if identity.identity_status:
        return record_patient(connection, identity, source, policy)
    refused = refused_identifiers(identity.other_identifiers, policy)
    if refused:
        return PatientResult(PatientOutcome.TEST_IDENTIFIER_REFUSED, detail=refused)
    found = known_patient(connection, identity.ipp)
    if found is None or not stored_identity_status(connection, found):
        return record_patient(connection, identity, source, policy)
    return PatientResult(PatientOutcome.IDENTITY_KEPT, found)


def stored_identity_status(connection: Connection, patient_pk: int) -> str:
    """The PID-32 the identity feed last gave this patient ('' when none: images or orders only)."""
    status = connection.scalar(
        select(patient_identity.c.identity_status).where(patient_identity.c.patient_pk == patient_pk)
    )
    return str(status or "")


def merge_patients(
    connection: Connection,
    surviving: PatientIdentity,
    absorbed: Identifier,
    source: Source,
    policy: IdentityPolicy,
) -> PatientResult:
    """A40: move the studies and scheduled steps of `absorbed` to `surviving` (created if needed).

    The absorbed patient row stays, marked `merged_into`; the files on disk are not touched.
    """
    absorbed_pk = find_patient(connection, absorbed)
    surviving_pk = find_patient(connection, surviving.ipp)
    if absorbed_pk is not None and absorbed_pk == surviving_pk:
        return PatientResult(PatientOutcome.SELF_MERGE, absorbed_pk, "a patient cannot be merged into itself")
    if surviving_pk is not None and merged_into(connection, surviving_pk) is not None:
        return PatientResult(
            PatientOutcome.CIRCULAR_MERGE, surviving_pk, "the surviving patient was itself merged into another"
        )
    recorded = record_patient(connection, surviving, source, policy)
    if not recorded.outcome.applied or recorded.patient_pk is None:
        return recorded
    surviving_pk = recorded.patient_pk
    if absorbed_pk is None:
        audit(connection, surviving_pk, "merge-unknown-absorbed", f"absorbed {absorbed.value} unknown", source, now())
        return PatientResult(PatientOutcome.MERGED, surviving_pk, "absorbed patient unknown: nothing to move")
    moment = now()
    moved_studies = repoint(connection, absorbed_pk, surviving_pk)
    set_identity(connection, absorbed_pk, {"merged_into": surviving_pk}, moment)
    detail = f"patient {absorbed_pk} ({absorbed.value}) merged into {surviving_pk}; {moved_studies} studies moved"
    audit(connection, surviving_pk, "merged", detail, source, moment)
    audit(connection, absorbed_pk, "merged-away", detail, source, moment)
    return PatientResult(PatientOutcome.MERGED, surviving_pk, detail)


def change_identifier(
    connection: Connection,
    identity: PatientIdentity,
    old: Identifier,
    source: Source,
    policy: IdentityPolicy,
) -> PatientResult:
    """A47: replace identifier `old` (MRG-1) by what PID-3 carries.

    An IPP in MRG-1 renames the patient's IPP; an INS in MRG-1 removes every INS of the patient,
    then keeps the new one only if it is not empty ("" deletes) and the identity is qualified.
    """
    refused = refused_identifiers(identity.other_identifiers, policy)
    if refused:
        return PatientResult(PatientOutcome.TEST_IDENTIFIER_REFUSED, detail=refused)
    if old.is_ins:
        return change_ins(connection, identity, old, source)
    patient_pk = find_patient(connection, old)
    if patient_pk is None:
        return PatientResult(PatientOutcome.UNKNOWN_PATIENT, detail=f"no patient with identifier {old.value}")
    holder = find_patient(connection, identity.ipp)
    if holder is not None and holder != patient_pk:
        return PatientResult(PatientOutcome.IDENTIFIER_IN_USE, holder, "the new IPP belongs to another patient")
    moment = now()
    connection.execute(
        update(patient)
        .where(patient.c.id == patient_pk)
        .values(patient_id=identity.ipp.value, issuer_of_patient_id=identity.ipp.issuer, updated_at=moment)
    )
    detail = f"IPP {old.value} ({old.issuer}) -> {identity.ipp.value} ({identity.ipp.issuer})"
    audit(connection, patient_pk, PatientOutcome.IDENTIFIER_CHANGED.value, detail, source, moment)
    return PatientResult(PatientOutcome.IDENTIFIER_CHANGED, patient_pk, detail)


def change_ins(connection: Connection, identity: PatientIdentity, old: Identifier, source: Source) -> PatientResult:
    patient_pk = find_patient(connection, identity.ipp) or patient_with_identifier(connection, old)
    if patient_pk is None:
        return PatientResult(PatientOutcome.UNKNOWN_PATIENT, detail="no patient with this IPP or INS")
    moment = now()
    connection.execute(
        delete(patient_identifier).where(
            patient_identifier.c.patient_pk == patient_pk, patient_identifier.c.type_code == INS_TYPE
        )
    )
    kept = [found for found in identity.other_identifiers if found.is_ins and found.value and identity.qualified]
    for identifier in preferred_ins(kept):
        insert_identifier(connection, patient_pk, identifier, moment)
    status = "~".join(identity.identity_status)
    set_identity(connection, patient_pk, {"identity_status": status}, moment)
    detail = f"INS {old.value} replaced by {kept[0].value if kept else 'nothing'}; status {status}"
    audit(connection, patient_pk, PatientOutcome.IDENTIFIER_CHANGED.value, detail, source, moment)
    return PatientResult(PatientOutcome.IDENTIFIER_CHANGED, patient_pk, detail)


def cancel_admission(connection: Connection, ipp: Identifier, visit: str, source: Source) -> PatientResult:
    """A11 (cancel admit / visit notification): the appliance holds no admissions, so there is nothing
    to undo; the cancellation is written to the audit trail and the patient is left exactly as it is
    (names, birth date, INS, status). An unknown patient is not created: the entry has no patient.
    `visit` says which admission (visit number, movement), for the audit trail."""
    patient_pk = known_patient(connection, ipp)
    about = f" ({visit})" if visit else ""
    if patient_pk is None:
        detail = f"admission{about} of unknown IPP {ipp.value} ({ipp.issuer}) cancelled: nothing to do"
    else:
        detail = f"admission{about} cancelled; identity left unchanged"
    audit(connection, patient_pk, PatientOutcome.ADMISSION_CANCELLED.value, detail, source, now())
    return PatientResult(PatientOutcome.ADMISSION_CANCELLED, patient_pk, detail)


def refused_identifiers(identifiers: tuple[Identifier, ...], policy: IdentityPolicy) -> str:
    """Why the identifiers cannot be accepted ("" when they can): test/demo INS in production."""
    if not policy.refuse_test_ins:
        return ""
    for identifier in identifiers:
        if identifier.universal_id in TEST_INS_OIDS:
            return f"test or demonstration INS OID {identifier.universal_id} refused in production"
    return ""


def find_patient(connection: Connection, identifier: Identifier) -> int | None:
    """The patient with this IPP; a patient created from images with the same ID and no issuer is adopted."""
    if not identifier.value:
        return None
    rows = connection.execute(
        PATIENT_BY_IDENTIFIER, {"patient_id": identifier.value, "issuers": [identifier.issuer, ""]}
    )
    found = {issuer: patient_pk for patient_pk, issuer in rows}
    if identifier.issuer in found:
        return int(found[identifier.issuer])
    if "" in found:
        connection.execute(SET_ISSUER, {"patient_pk": found[""], "issuer_of_patient_id": identifier.issuer})
        return int(found[""])
    return None


def known_patient(connection: Connection, identifier: Identifier) -> int | None:
    """The patient with this IPP, else the one created from images with the same ID and no issuer;
    unlike `find_patient`, changes nothing (a patient found without issuer is not adopted)."""
    if not identifier.value:
        return None
    rows = connection.execute(
        PATIENT_BY_IDENTIFIER, {"patient_id": identifier.value, "issuers": [identifier.issuer, ""]}
    )
    found = {issuer: patient_pk for patient_pk, issuer in rows}
    chosen = found.get(identifier.issuer, found.get(""))
    return int(chosen) if chosen is not None else None


def patient_with_identifier(connection: Connection, identifier: Identifier) -> int | None:
    found = connection.execute(
        select(patient_identifier.c.patient_pk).where(
            patient_identifier.c.identifier == identifier.value,
            patient_identifier.c.universal_id == identifier.universal_id,
        )
    ).scalar()
    return int(found) if found is not None else None


def merged_into(connection: Connection, patient_pk: int) -> int | None:
    found = connection.execute(MERGED_INTO, {"patient_pk": patient_pk}).scalar()
    return int(found) if found is not None else None


def patient_values(identity: PatientIdentity, moment: datetime) -> dict[str, Any]:
    name = identity.dicom_name
    return {
        "patient_name": name,
        "patient_name_key": person_name_key(name),
        "patient_birth_date": identity.birth_date,
        "patient_sex": identity.sex,
        "updated_at": moment,
    }


def identity_values(identity: PatientIdentity) -> dict[str, Any]:
    return {
        "birth_name": identity.birth_name,
        "first_given_name": identity.first_given_name,
        "given_names": identity.given_names,
        "used_name": identity.used_name,
        "used_given_name": identity.used_given_name,
        "birth_place": identity.birth_place,
        "identity_status": "~".join(identity.identity_status),
    }


def create_patient(connection: Connection, identity: PatientIdentity, moment: datetime) -> int:
    values = {
        "patient_id": identity.ipp.value,
        "issuer_of_patient_id": identity.ipp.issuer,
        "created_at": moment,
        **patient_values(identity, moment),
    }
    key = connection.execute(INSERT_PATIENT, values).inserted_primary_key
    assert key is not None
    patient_pk = int(key[0])
    connection.execute(INSERT_IDENTITY, {"patient_pk": patient_pk, "updated_at": moment, **identity_values(identity)})
    return patient_pk


def update_patient(connection: Connection, patient_pk: int, identity: PatientIdentity, moment: datetime) -> None:
    connection.execute(UPDATE_PATIENT, {"patient_pk": patient_pk, **patient_values(identity, moment)})
    updated = connection.execute(
        UPDATE_IDENTITY, {"identity_pk": patient_pk, "updated_at": moment, **identity_values(identity)}
    )
    if not updated.rowcount:
        connection.execute(
            INSERT_IDENTITY, {"patient_pk": patient_pk, "updated_at": moment, **identity_values(identity)}
        )


def set_identity(connection: Connection, patient_pk: int, values: dict[str, Any], moment: datetime) -> None:
    updated = connection.execute(
        update(patient_identity).where(patient_identity.c.patient_pk == patient_pk).values(updated_at=moment, **values)
    )
    if not updated.rowcount:
        connection.execute(insert(patient_identity).values(patient_pk=patient_pk, updated_at=moment, **values))


def replace_identifiers(connection: Connection, patient_pk: int, identity: PatientIdentity, moment: datetime) -> None:
    """The patient's other identifiers become those of the message; INS only when qualified."""
    connection.execute(DELETE_IDENTIFIERS, {"identity_pk": patient_pk})
    others = [found for found in identity.other_identifiers if not found.is_ins and found.type_code != BILLING_NIR_TYPE]
    ins = [found for found in identity.other_identifiers if found.is_ins and found.value] if identity.qualified else []
    for identifier in [*others, *preferred_ins(ins)]:
        insert_identifier(connection, patient_pk, identifier, moment)


def preferred_ins(candidates: list[Identifier]) -> list[Identifier]:
    """The one INS to keep: the NIR when both NIR and NIA are sent (PAM FR: the receiver prefers the NIR)."""
    if not candidates:
        return []
    nir = [found for found in candidates if found.universal_id != INS_NIA_OID]
    return [(nir or candidates)[0]]


def insert_identifier(connection: Connection, patient_pk: int, identifier: Identifier, moment: datetime) -> None:
    values = {
        "patient_pk": patient_pk,
        "identifier": identifier.value,
        "namespace": identifier.namespace,
        "universal_id": identifier.universal_id,
        "type_code": identifier.type_code or (INS_TYPE if identifier.is_ins else ""),
        "created_at": moment,
    }
    connection.execute(INSERT_IDENTIFIER, values)


def repoint(connection: Connection, absorbed_pk: int, surviving_pk: int) -> int:
    """Studies (archive) and scheduled steps (worklist; performed steps follow them) of one patient to another."""
    moved = connection.execute(update(study).where(study.c.patient_pk == absorbed_pk).values(patient_pk=surviving_pk))
    connection.execute(
        update(scheduled_step).where(scheduled_step.c.patient_pk == absorbed_pk).values(patient_pk=surviving_pk)
    )
    return int(moved.rowcount)


def describe(identity: PatientIdentity) -> str:
    """The identity as written to the audit trail (and only there)."""
    return (
        f"IPP {identity.ipp.value} ({identity.ipp.issuer}); name {identity.dicom_name}; "
        f"birth {identity.birth_date} at {identity.birth_place}; sex {identity.sex}; "
        f"status {'~'.join(identity.identity_status)}"
    )


def audit(
    connection: Connection, patient_pk: int | None, action: str, detail: str, source: Source, moment: datetime
) -> None:
    values = {
        "patient_pk": patient_pk,
        "action": action,
        "detail": detail,
        "source_application": source.application,
        "source_facility": source.facility,
        "source_event": source.event,
        "source_control_id": source.control_id,
        "changed_at": moment,
    }
    connection.execute(INSERT_CHANGE, values)
