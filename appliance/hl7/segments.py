"""HL7 segments to domain values: PID and MRG to patient identities, CX to identifiers, XPN to names.

Field positions follow HL7 v2.5 and the IHE France constraints (see INTERFACE.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.hl7.acks import ErrorCode
from appliance.hl7.dicom_values import (
    LONG_STRING,
    Problem,
    person_name_problem,
    text_problem,
    timestamp_problem,
)
from appliance.hl7.er7 import Message, Segment, Value
from appliance.patients.identities import Identifier, PatientIdentity

LEGAL_NAME = "L"  # XPN-7: birth name (nom de naissance)
DISPLAY_NAME = "D"  # XPN-7: used name (nom utilisé)
BIRTH_PLACE = "BDL"  # XAD-7: birth delivery location; INSEE code in XAD-9
HL7_NULL = '""'
SEX = {"M": "M", "F": "F", "U": "O", "O": "O", "A": "O"}  # HL7 table 0001 to DICOM (0010,0040)
# Index columns a PID value goes to besides DICOM attributes (appliance/db/schema/patients.py).
TYPE_CODE_LENGTH, BIRTH_PLACE_LENGTH, GIVEN_NAMES_LENGTH = 8, 16, 200


class ContentError(Exception):
    """A required field is missing or wrong; `location` is SEG^sequence^field for ERR-2."""

    def __init__(self, text: str, location: str, error: ErrorCode = ErrorCode.REQUIRED_FIELD_MISSING) -> None:
        super().__init__(text)
        self.text = text
        self.location = location
        self.error = error


def checked(value: str, problem: Problem, field: str, location: str) -> str:
    """`value` when it is empty, `""` or `problem(value)` finds nothing; else raises ContentError
    (AE, ERR-3 102 data type error, ERR-2 `location`). `field` names the field in French and English."""
    refuse_if(problem(value) if value not in ("", HL7_NULL) else "", field, location)
    return value


def refuse_if(problem: str, field: str, location: str) -> None:
    """Raises ContentError (AE 102 at `location`) when `problem` is not empty."""
    if problem:
        raise ContentError(f"{field}: {problem}", location, ErrorCode.DATA_TYPE_ERROR)


@dataclass(frozen=True)
class PractisePolicy:
    """Which PID-3 repetition is the practice's IPP: CX-4 namespace or OID; empty = the first PI."""

    ipp_authority: str = ""


def identifier_of(value: Value) -> Identifier:
    """HL7 CX: `ID^^^Namespace&OID&ISO^TypeCode`."""
    return Identifier(
        value=not_null(value.get(1)),
        namespace=value.get(4, 1),
        universal_id=value.get(4, 2),
        type_code=value.get(5),
    )


def is_practice_ipp(identifier: Identifier, policy: PractisePolicy) -> bool:
    if identifier.is_ins or identifier.type_code not in ("PI", ""):
        return False
    if not policy.ipp_authority:
        return True
    return policy.ipp_authority in (identifier.namespace, identifier.universal_id)


def identity_of(pid: Segment, policy: PractisePolicy, sequence: int = 1) -> PatientIdentity:
    """The patient of a PID segment (the `sequence`-th of its message). Raises ContentError when there
    is no IPP, or when a value that becomes DICOM or an index column is not fit for it."""
    identifiers = checked_identifiers(pid, sequence)
    ipp = practice_ipp(identifiers, policy)
    others = tuple(found for found in identifiers if found is not ipp)
    birth, used = names_of(pid)
    check_names(pid, birth, used, sequence)
    check_traits(pid, sequence)
    return PatientIdentity(
        ipp=ipp,
        other_identifiers=others,
        birth_name=not_null(birth.get(1)),
        first_given_name=not_null(birth.get(2)),
        given_names=not_null(birth.get(3)),
        used_name=not_null(used.get(1)),
        used_given_name=not_null(used.get(2)),
        sex=SEX.get(pid.get(8), ""),
        birth_date=pid.get(7)[:8],
        birth_place=birth_place_of(pid),
        identity_status=tuple(value.get(1) for value in pid.repetitions(32) if value.get(1)),
    )


def ipp_of(pid: Segment, policy: PractisePolicy) -> Identifier:
    """The practice's IPP in PID-3, and nothing else of the PID. Raises ContentError when there is none."""
    return practice_ipp(checked_identifiers(pid, 1), policy)


def checked_identifiers(pid: Segment, sequence: int) -> list[Identifier]:
    """PID-3's identifiers, each value fit for its DICOM attribute (Patient ID, Issuer, Other Patient
    IDs: LO) and index column. Raises ContentError at the repetition and component that is not."""
    return [
        checked_identifier(value, f"PID^{sequence}^3^{repetition}", "PID-3")
        for repetition, value in enumerate(pid.repetitions(3), start=1)
    ]


def checked_identifier(value: Value, location: str, field: str) -> Identifier:
    """A CX whose ID (CX-1), namespace and OID (CX-4) are LO and type (CX-5) fits its column."""
    identifier = identifier_of(value)
    long_text = text_problem(LONG_STRING)
    checked(identifier.value, long_text, f"{field}.1 (identifiant / identifier)", f"{location}^1")
    checked(identifier.namespace, long_text, f"{field}.4 (autorité / authority)", f"{location}^4")
    checked(identifier.universal_id, long_text, f"{field}.4.2 (OID)", f"{location}^4^2")
    checked(identifier.type_code, text_problem(TYPE_CODE_LENGTH), f"{field}.5 (type)", f"{location}^5")
    return identifier


def check_names(pid: Segment, birth: Value, used: Value, sequence: int) -> None:
    """Each name a modality may get (PN: birth or used family name with a given name, either falling
    back on the other's, as `worklist.name_format` does) fits one PN component group."""
    names = pid.repetitions(5)
    for value, other in ((birth, used), (used, birth)):
        if not value:
            continue
        location = f"PID^{sequence}^5^{names.index(value) + 1}"
        family, given = not_null(value.get(1)), not_null(value.get(2)) or not_null(other.get(2))
        refuse_if(person_name_problem([family, given]), "PID-5 (nom / name)", location)
        given_names = text_problem(GIVEN_NAMES_LENGTH)
        checked(not_null(value.get(3)), given_names, "PID-5.3 (prénoms / given names)", f"{location}^3")


def check_traits(pid: Segment, sequence: int) -> None:
    """PID-7 becomes Patient's Birth Date (DA), PID-11's birth place and PID-32 fit their columns."""
    checked(pid.get(7), timestamp_problem, "PID-7 (date de naissance / birth date)", f"PID^{sequence}^7")
    for repetition, address in enumerate(pid.repetitions(11), start=1):
        if address.get(7) == BIRTH_PLACE:
            place, location = text_problem(BIRTH_PLACE_LENGTH), f"PID^{sequence}^11^{repetition}^9"
            checked(address.get(9), place, "PID-11.9 (lieu de naissance / birth place)", location)
    status = "~".join(value.get(1) for value in pid.repetitions(32) if value.get(1))
    field = "PID-32 (statut de l'identité / identity status)"
    checked(status, text_problem(LONG_STRING), field, f"PID^{sequence}^32")


def practice_ipp(identifiers: list[Identifier], policy: PractisePolicy) -> Identifier:
    """The first identifier that is the practice's IPP (raises ContentError, located at PID-3, when none is)."""
    ipp = next((found for found in identifiers if found.value and is_practice_ipp(found, policy)), None)
    if ipp is None:
        raise ContentError("PID-3 holds no IPP of the practice", "PID^1^3")
    return ipp


def visit_of(message: Message) -> str:
    """Which visit or movement a message is about, for the audit trail: PV1-19 (visit number) and
    ZBE-1 (IHE PAM France movement identifier, with ZBE-4 its action); "" when neither is sent."""
    pv1, zbe = message.segment("PV1"), message.segment("ZBE")
    parts = [f"visit {pv1.get(19)}"] if pv1 is not None and pv1.get(19) else []
    if zbe is not None and zbe.get(1):
        action = f" {zbe.get(4)}" if zbe.get(4) else ""
        parts.append(f"movement {zbe.get(1)}{action}")
    return ", ".join(parts)


def names_of(pid: Segment) -> tuple[Value, Value]:
    """The birth name (XPN-7 L, else the first repetition without type) and the used name (D)."""
    names = pid.repetitions(5)
    empty = Value("", pid.separators, pid.codec)
    birth = next((name for name in names if name.get(7) == LEGAL_NAME), None)
    used = next((name for name in names if name.get(7) == DISPLAY_NAME), empty)
    if birth is None:
        birth = next((name for name in names if name.get(7) not in (DISPLAY_NAME,)), empty)
    return birth, used


def birth_place_of(pid: Segment) -> str:
    for address in pid.repetitions(11):
        if address.get(7) == BIRTH_PLACE:
            return not_null(address.get(9))
    return ""


def not_null(text: str) -> str:
    return "" if text == HL7_NULL else text


def physician_name(value: Value) -> str:
    """HL7 XCN (ID^FAMILY^GIVEN^MIDDLE) to DICOM PN."""
    family, given, middle = (not_null(value.get(index)) for index in (2, 3, 4))
    return f"{family}^{given}^{middle}".rstrip("^")


def merged_identifier(message: Message) -> Identifier:
    """MRG-1 of an A40 or A47 (raises ContentError when missing)."""
    mrg = message.segment("MRG")
    if mrg is None:
        raise ContentError("the MRG segment is missing", "MRG")
    return absorbed_identifier(mrg)


def absorbed_identifier(mrg: Segment) -> Identifier:
    """MRG-1: the identifier being replaced or merged away (raises ContentError when empty)."""
    identifier = checked_identifier(mrg.value(1), "MRG^1^1^1", "MRG-1")
    if not identifier.value:
        raise ContentError("MRG-1 is missing", "MRG^1^1")
    return identifier


def required_pid(message: Message) -> Segment:
    pid = message.segment("PID")
    if pid is None:
        raise ContentError("the PID segment is missing", "PID")
    return pid
