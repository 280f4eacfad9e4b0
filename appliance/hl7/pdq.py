"""IHE PDQ (ITI-21): QBP^Q22 answered with RSP^K22 (QAK OK / NF / AE) on the archive's patients.

Query parameters (QPD-3, `@PID.x^value` pairs): PID.3.1 identifier, PID.3.4.1 / PID.3.4.2 its
authority, PID.5.1(.1) family name, PID.5.2 given name (both folded, `*` at the end for a prefix),
PID.7 birth date, PID.8 sex. Merged-away patients are not returned; the INS only with `VALI`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from appliance.hl7.acks import (
    ACCEPT,
    ERROR,
    ErrorCode,
    RequestHeader,
    Verdict,
    acknowledgement,
    acknowledgement_segments,
    answer_header,
)
from appliance.hl7.audit import Hl7Audit
from appliance.hl7.er7 import Message, Segment, encode_text
from appliance.hl7.router import Identity, Query
from appliance.hl7.segments import PractisePolicy
from appliance.hl7.writer import SegmentValues, components, echoed, render, text
from appliance.patients.search import Criteria, FoundPatient, find_patients

DEFAULT_LIMIT = 100
OK = "OK"  # HL7 table 0208: data found, no errors
NOT_FOUND = "NF"
APPLICATION_ERROR = "AE"
PARAMETERS = {"PID.3", "PID.3.1", "PID.3.4", "PID.3.4.1", "PID.3.4.2", "PID.5", "PID.5.1", "PID.5.1.1"}
PARAMETERS |= {"PID.5.2", "PID.7", "PID.7.1", "PID.8"}
MESSAGE_TYPE = "RSP^K22^RSP_K21"  # IHE ITI-21: RSP_K22 is not an HL7 structure, RSP_K21 is
STRUCTURE = "RSP_K21"
SEX = {"M": "M", "F": "F", "O": "U"}  # DICOM (0010,0040) to HL7 table 0001


class QueryError(Exception):
    pass


@dataclass(frozen=True)
class PdqAnswer:
    """The RSP^K22 bytes, the QAK status (OK, NF, AE; "" when QPD is missing) and the patients given out."""

    data: bytes
    status: str
    patients: list[FoundPatient] = field(default_factory=list)
    error: str = ""


def answer_pdq(engine: Engine, message: Message, identity: Identity, practise: PractisePolicy) -> bytes:
    """The RSP^K22 of a QBP^Q22 (never raises on bad parameters: QAK AE)."""
    return pdq_answer(engine, message, identity, practise).data


def pdq_answer(engine: Engine, message: Message, identity: Identity, practise: PractisePolicy) -> PdqAnswer:
    """The answer to a QBP^Q22 and what it gave out (for the audit trail)."""
    header = RequestHeader.of(message)
    qpd = message.segment("QPD")
    if qpd is None:
        verdict = Verdict.error_in(ErrorCode.SEGMENT_SEQUENCE_ERROR, "QPD missing", "QPD")
        return PdqAnswer(acknowledgement(header, verdict, *names(identity)), "", error=verdict.text)
    try:
        criteria = criteria_of(message)
    except QueryError as error:
        return PdqAnswer(response(header, message, identity, APPLICATION_ERROR, [], str(error)), APPLICATION_ERROR,
                         error=str(error))  # fmt: skip
    rcp = message.segment("RCP")
    quantity = rcp.get(2) if rcp else ""
    limit = int(quantity) if quantity.isdigit() and int(quantity) > 0 else DEFAULT_LIMIT
    found = find_patients(engine, criteria, limit)
    segments = [pid_segment(position, patient) for position, patient in enumerate(found, start=1)]
    status = OK if found else NOT_FOUND
    return PdqAnswer(response(header, message, identity, status, segments, ""), status, found)


def audited_pdq(engine: Engine, identity: Identity, practise: PractisePolicy, audit: Hl7Audit) -> Query:
    """The QBP^Q22 answerer bound for the receiver: answer, then record what was given out."""

    def answer(message: Message, peer: str) -> bytes:
        found = pdq_answer(engine, message, identity, practise)
        audit.queried(message, peer, found.status, found.error, [patient.values for patient in found.patients])
        return found.data

    return answer


def names(identity: Identity) -> tuple[str, str]:
    return identity.application, identity.facility


def criteria_of(message: Message) -> Criteria:
    qpd = message.segment("QPD")
    assert qpd is not None
    values: dict[str, str] = {}
    for pair in qpd.repetitions(3):
        name, value = pair.get(1).lstrip("@"), pair.get(2)
        if name not in PARAMETERS:
            raise QueryError(f"query parameter {name!r} not supported")
        values[name] = value
    criteria = Criteria(
        identifier=values.get("PID.3.1") or values.get("PID.3", ""),
        authority=values.get("PID.3.4.1") or values.get("PID.3.4.2") or values.get("PID.3.4", ""),
        family=values.get("PID.5.1.1") or values.get("PID.5.1") or values.get("PID.5", ""),
        given=values.get("PID.5.2", ""),
        birth_date=values.get("PID.7.1") or values.get("PID.7", ""),
        sex=values.get("PID.8", ""),
    )
    if criteria == Criteria():
        raise QueryError("no query parameter")
    return criteria


def pid_segment(position: int, patient: FoundPatient) -> SegmentValues:
    """PID with the IPP, the identifiers that may be given out, names, birth date, sex, birth place."""
    row = patient.values
    identifiers = [f"{text(str(row['patient_id']))}^^^{authority_of(str(row['issuer_of_patient_id']))}^PI"]
    for found in patient.identifiers:
        namespace, universal_id = text(found["namespace"]), text(found["universal_id"])
        authority = f"{namespace}&{universal_id}&ISO" if universal_id else namespace
        identifiers.append(f"{text(found['identifier'])}^^^{authority}^{text(found['type_code'])}")
    status = str(row.get("identity_status") or "")
    place = str(row.get("birth_place") or "")
    fields = {
        1: str(position),
        3: identifiers,
        5: names_of(row),
        7: text(str(row["patient_birth_date"])),
        8: SEX.get(str(row["patient_sex"]), ""),
        11: components(*[""] * 6, "BDL", "", place) if place else "",
        32: [text(value) for value in status.split("~") if value],
    }
    return SegmentValues("PID", fields)


def names_of(row: dict[str, Any]) -> list[str]:
    """PID-5: the birth name (XPN-7 `L`) and, when there is one, the used name (`D`)."""
    family, _, given = str(row["patient_name"]).partition("^")
    birth_name = str(row.get("birth_name") or family)
    first_given_name = str(row.get("first_given_name") or given)
    names = [components(birth_name, first_given_name, str(row.get("given_names") or ""), "", "", "", "L")]
    if row.get("used_name"):
        names.append(components(str(row["used_name"]), str(row.get("used_given_name") or ""), "", "", "", "", "D"))
    return names


def authority_of(issuer: str) -> str:
    """CX-4 of an IPP: an OID goes in CX-4.2 (`&OID&ISO`), a name in CX-4.1."""
    if issuer and all(part.isdigit() for part in issuer.split(".")):
        return f"&{issuer}&ISO"
    return text(issuer)


def response(
    header: RequestHeader, message: Message, identity: Identity, status: str, pids: list[SegmentValues], error: str
) -> bytes:
    """RSP^K22: MSA (AA, or AE with ERR on QPD-3), QAK with the query tag and status, the QPD echoed, PIDs."""
    qpd = message.segment("QPD")
    verdict = Verdict.error_in(ErrorCode.DATA_TYPE_ERROR, error, "QPD^1^3") if error else Verdict.accepted()
    segments = acknowledgement_segments(header, ERROR if status == APPLICATION_ERROR else ACCEPT, verdict)
    segments.append(SegmentValues("QAK", {1: text(qpd.get(2)) if qpd else "", 2: status}))
    if qpd is not None:
        segments.append(echo(qpd))
    segments.extend(pids)
    answer = answer_header(header, MESSAGE_TYPE, identity.application, identity.facility)
    return encode_text(render(STRUCTURE, answer, segments), header.codec)


def echo(segment: Segment) -> SegmentValues:
    """A received segment written back in our separators (QPD: IHE PDQ answers echo the query)."""
    numbers = range(1, len(segment.fields))
    return SegmentValues(
        segment.name, {number: [echoed(value) for value in segment.repetitions(number)] for number in numbers}
    )
