"""An `AuditEvent` as a DICOM AuditMessage (PS3.15 A.5.1, the 2024+ schema): coded values carry
`csd-code`, `codeSystemName` and `originalText` (the RFC 3881 `code`/`displayName` form is obsolete).

The AE titles are in `UserID` with UserIDTypeCode 110119 (as dcm4chee does: it searches better than
PS3.17's `AlternativeUserID="AETITLE=..."`); a study's name is its accession number (A.5.3.6,
minimal personal data).
"""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass
from xml.etree.ElementTree import Element, SubElement, tostring

from appliance.audit.chain import utc_text
from appliance.audit.events import AuditEvent, Coded, ObjectKind, Participant, ParticipantKind, ParticipantObject

# A coded value: (csd-code, codeSystemName, originalText).
Code = tuple[str, str, str]

USER_ID_TYPES: dict[ParticipantKind, Code] = {
    ParticipantKind.PERSON: ("113871", "DCM", "Person ID"),
    ParticipantKind.AE: ("110119", "DCM", "Station AE Title"),
    ParticipantKind.NODE: ("110182", "DCM", "Node ID"),
    ParticipantKind.APPLICATION: ("113877", "DCM", "Device Name"),
}
SOURCE_TYPE: Code = ("4", "DCM", "Application Server Process Tier in Multi-tier System")  # RFC 3881 5.4


@dataclass(frozen=True)
class ObjectCoding:
    """ParticipantObjectTypeCode, ParticipantObjectTypeCodeRole and ParticipantObjectIDTypeCode of a kind."""

    type_code: str
    role: str
    id_type: Code


OBJECT_CODINGS = {
    ObjectKind.PATIENT: ObjectCoding("1", "1", ("2", "RFC-3881", "Patient Number")),
    ObjectKind.STUDY: ObjectCoding("2", "3", ("110180", "DCM", "Study Instance UID")),
    ObjectKind.QUERY: ObjectCoding("2", "24", ("110181", "DCM", "SOP Class UID")),
    ObjectKind.ACCOUNT: ObjectCoding("1", "11", ("11", "RFC-3881", "User Identifier")),
    ObjectKind.SECURITY_RESOURCE: ObjectCoding("2", "13", ("12", "RFC-3881", "URI")),
    ObjectKind.JOB: ObjectCoding("2", "4", ("12", "RFC-3881", "URI")),
    ObjectKind.REPORT: ObjectCoding("2", "3", ("12", "RFC-3881", "URI")),
}
# Queries that are IHE transactions rather than DICOM SOP classes (object ID -> ID type code).
TRANSACTIONS: dict[str, Code] = {"ITI-21": ("ITI-21", "IHE Transactions", "Patient Demographics Query")}


@dataclass(frozen=True)
class AuditSource:
    """AuditSourceIdentification: this box (AuditSourceID) and the practice (AuditEnterpriseSiteID)."""

    source_id: str
    site: str = ""


def coded(parent: Element, tag: str, code: Code) -> Element:
    value, system, text = code
    return SubElement(parent, tag, {"csd-code": value, "codeSystemName": system, "originalText": text})


def dcm(value: Coded) -> Code:
    return (value.code, "DCM", value.meaning)


def audit_message(event: AuditEvent, source: AuditSource) -> Element:
    """The AuditMessage element of `event`."""
    message = Element("AuditMessage")
    add_event_identification(message, event)
    for participant in event.participants:
        add_participant(message, participant)
    attributes = {"AuditSourceID": source.source_id}
    if source.site:
        attributes["AuditEnterpriseSiteID"] = source.site
    coded(SubElement(message, "AuditSourceIdentification", attributes), "AuditSourceTypeCode", SOURCE_TYPE)
    for found in event.objects:
        add_object(message, found)
    return message


def render(event: AuditEvent, source: AuditSource) -> bytes:
    """The AuditMessage as an XML document in UTF-8 (the syslog MSG, one message per file)."""
    encoded: bytes = tostring(audit_message(event, source), encoding="utf-8", xml_declaration=True)
    return encoded


def add_event_identification(message: Element, event: AuditEvent) -> None:
    identification = SubElement(
        message,
        "EventIdentification",
        {
            "EventActionCode": event.action.value,
            "EventDateTime": utc_text(event.at).replace("+00:00", "Z"),
            "EventOutcomeIndicator": str(int(event.outcome)),
        },
    )
    coded(identification, "EventID", dcm(event.event))
    if event.event_type is not None:
        coded(identification, "EventTypeCode", dcm(event.event_type))
    if event.outcome_description:
        SubElement(identification, "EventOutcomeDescription").text = event.outcome_description


def add_participant(message: Element, participant: Participant) -> None:
    attributes = {"UserID": participant.user_id}
    if participant.user_name:
        attributes["UserName"] = participant.user_name
    attributes["UserIsRequestor"] = "true" if participant.is_requestor else "false"
    if participant.address:
        attributes["NetworkAccessPointID"] = participant.address
        attributes["NetworkAccessPointTypeCode"] = "2" if is_ip_address(participant.address) else "1"
    element = SubElement(message, "ActiveParticipant", attributes)
    if participant.role is not None:
        coded(element, "RoleIDCode", dcm(participant.role))
    coded(element, "UserIDTypeCode", USER_ID_TYPES[participant.kind])


def add_object(message: Element, found: ParticipantObject) -> None:
    coding = OBJECT_CODINGS[found.kind]
    element = SubElement(
        message,
        "ParticipantObjectIdentification",
        {
            "ParticipantObjectID": found.object_id,
            "ParticipantObjectTypeCode": coding.type_code,
            "ParticipantObjectTypeCodeRole": coding.role,
        },
    )
    coded(element, "ParticipantObjectIDTypeCode", TRANSACTIONS.get(found.object_id, coding.id_type))
    if found.query:
        SubElement(element, "ParticipantObjectQuery").text = base64.b64encode(found.query).decode("ascii")
    elif found.name:
        SubElement(element, "ParticipantObjectName").text = found.name
    for kind, value in found.details:
        encoded = base64.b64encode(value.encode("utf-8")).decode("ascii")
        SubElement(element, "ParticipantObjectDetail", {"type": kind, "value": encoded})
    if found.accession_number or found.instances:
        add_description(element, found)


def add_description(element: Element, found: ParticipantObject) -> None:
    """ParticipantObjectDescription: the accession number and the instances by SOP class."""
    description = SubElement(element, "ParticipantObjectDescription")
    if found.accession_number:
        SubElement(description, "Accession", {"Number": found.accession_number})
    for sop_class, count in found.instances:
        SubElement(description, "SOPClass", {"UID": sop_class, "NumberOfInstances": str(count)})


def is_ip_address(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True
