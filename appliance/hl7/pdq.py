"""IHE PDQ (ITI-21): QBP^Q22 answered with RSP^K22 (QAK OK / NF / AE) on the archive's patients.

Query parameters (QPD-3, `@PID.x^value` pairs): PID.3.1 identifier, PID.3.4.1 / PID.3.4.2 its
authority, PID.5.1(.1) family name, PID.5.2 given name (both folded, `*` at the end for a prefix),
PID.7 birth date, PID.8 sex. Merged-away patients are not returned; the INS only with `VALI`.
"""

from __future__ import annotations

from sqlalchemy import Engine

from appliance.hl7.acks import ErrorCode, RequestHeader, Verdict, acknowledgement, new_control_id, timestamp
from appliance.hl7.er7 import Message, encode_text, escape
from appliance.hl7.router import Identity
from appliance.hl7.segments import PractisePolicy
from appliance.patients.search import Criteria, FoundPatient, find_patients

DEFAULT_LIMIT = 100
OK = "OK"  # HL7 table 0208: data found, no errors
NOT_FOUND = "NF"
APPLICATION_ERROR = "AE"
PARAMETERS = {"PID.3", "PID.3.1", "PID.3.4", "PID.3.4.1", "PID.3.4.2", "PID.5", "PID.5.1", "PID.5.1.1"}
PARAMETERS |= {"PID.5.2", "PID.7", "PID.7.1", "PID.8"}


class QueryError(Exception):
    pass


def answer_pdq(engine: Engine, message: Message, identity: Identity, practise: PractisePolicy) -> bytes:
    """The RSP^K22 of a QBP^Q22 (never raises on bad parameters: QAK AE)."""
    header = RequestHeader.of(message)
    qpd = message.segment("QPD")
    if qpd is None:
        return acknowledgement(
            header, Verdict.error_in(ErrorCode.SEGMENT_SEQUENCE_ERROR, "QPD missing", "QPD"), *names(identity)
        )
    try:
        criteria = criteria_of(message)
    except QueryError as error:
        return response(header, message, identity, APPLICATION_ERROR, [], str(error))
    rcp = message.segment("RCP")
    quantity = rcp.get(2) if rcp else ""
    limit = int(quantity) if quantity.isdigit() and int(quantity) > 0 else DEFAULT_LIMIT
    found = find_patients(engine, criteria, limit)
    segments = [pid_segment(position, patient) for position, patient in enumerate(found, start=1)]
    return response(header, message, identity, OK if found else NOT_FOUND, segments, "")


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


def pid_segment(position: int, patient: FoundPatient) -> str:
    """PID with the IPP, the identifiers that may be given out, names, birth date, sex, birth place."""
    row = patient.values
    status = str(row.get("identity_status") or "")
    identifiers = [f"{escape(str(row['patient_id']))}^^^{authority_of(str(row['issuer_of_patient_id']))}^PI"]
    for found in patient.identifiers:
        authority = f"{escape(found['namespace'])}&{escape(found['universal_id'])}&ISO" if found["universal_id"] else ""
        identifiers.append(
            f"{escape(found['identifier'])}^^^{authority or escape(found['namespace'])}^{found['type_code']}"
        )
    family, _, given = str(row["patient_name"]).partition("^")
    birth_name = str(row.get("birth_name") or family)
    names_field = f"{escape(birth_name)}^{escape(str(row.get('first_given_name') or given))}"
    names_field += f"^{escape(str(row.get('given_names') or ''))}^^^^L"
    if row.get("used_name"):
        names_field += f"~{escape(str(row['used_name']))}^{escape(str(row.get('used_given_name') or ''))}^^^^^D"
    sex = {"M": "M", "F": "F", "O": "U"}.get(str(row["patient_sex"]), "")
    place = f"^^^^^^BDL^^{escape(str(row['birth_place']))}" if row.get("birth_place") else ""
    fields = ["PID", str(position), "", "~".join(identifiers), "", names_field, "", str(row["patient_birth_date"]), sex]
    fields += ["", "", place] + [""] * 20 + [status]
    return "|".join(fields).rstrip("|")


def authority_of(issuer: str) -> str:
    """CX-4 of an IPP: an OID goes in CX-4.2 (`&OID&ISO`), a name in CX-4.1."""
    if issuer and all(part.isdigit() for part in issuer.split(".")):
        return f"&{issuer}&ISO"
    return escape(issuer)


def response(
    header: RequestHeader, message: Message, identity: Identity, status: str, pids: list[str], error: str
) -> bytes:
    qpd = message.segment("QPD")
    query_tag = qpd.raw(2) if qpd else ""
    code = "AA" if status != APPLICATION_ERROR else "AE"
    msh = ["MSH", "^~\\&", identity.application, identity.facility, header.sending_application]
    msh += [header.sending_facility, timestamp(), "", "RSP^K22^RSP_K21", new_control_id(), header.processing_id]
    msh += [header.version, "", "", "", "", "", header.charset_label]
    segments = ["|".join(msh), f"MSA|{code}|{escape(header.control_id)}"]
    if error:
        segments.append(
            f"ERR||QPD^1^3|{ErrorCode.DATA_TYPE_ERROR.code}^{ErrorCode.DATA_TYPE_ERROR.text}^HL70357|E||||{escape(error)}"
        )
    segments.append(f"QAK|{query_tag}|{status}")
    if qpd is not None:
        segments.append("|".join(qpd.fields))
    segments.extend(pids)
    return encode_text("\r".join(segments) + "\r", header.codec)
