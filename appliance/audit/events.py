"""What an audit record says, in the DICOM PS3.15 A.5 vocabulary (IHE ATNA): an event (EventID,
action, outcome, optional event type), the active participants (who asked, which application or
AE answered, from which address) and the participant objects (the patient, the studies, the query).

Every edge builds an `AuditEvent` and hands it to a `Recorder` (`appliance.audit.trail` stores it
hash-chained; the XML export renders it as an AuditMessage). Codes are DCM codes (CID 400-404),
checked against pydicom's code dictionary by the tests.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum, IntEnum, StrEnum
from typing import ParamSpec, Protocol

LOGGER = logging.getLogger(__name__)
Arguments = ParamSpec("Arguments")


class Coded(Enum):
    """A DCM code: `value` is (code value, code meaning)."""

    @property
    def code(self) -> str:
        return str(self.value[0])

    @property
    def meaning(self) -> str:
        return str(self.value[1])


class EventId(Coded):  # PS3.15 A.5.3, CID 403 (DCM)
    APPLICATION_ACTIVITY = ("110100", "Application Activity")
    AUDIT_LOG_USED = ("110101", "Audit Log Used")
    INSTANCES_ACCESSED = ("110103", "DICOM Instances Accessed")
    INSTANCES_TRANSFERRED = ("110104", "DICOM Instances Transferred")
    STUDY_DELETED = ("110105", "DICOM Study Deleted")
    EXPORT = ("110106", "Export")
    PATIENT_RECORD = ("110110", "Patient Record")
    PROCEDURE_RECORD = ("110111", "Procedure Record")
    QUERY = ("110112", "Query")
    SECURITY_ALERT = ("110113", "Security Alert")
    USER_AUTHENTICATION = ("110114", "User Authentication")


class EventType(Coded):  # CID 401 (Security Alert types) and CID 403 (user authentication, activity)
    APPLICATION_START = ("110120", "Application Start")
    APPLICATION_STOP = ("110121", "Application Stop")
    LOGIN = ("110122", "Login")
    LOGOUT = ("110123", "Logout")
    SECURITY_CONFIGURATION = ("110129", "Security Configuration")
    SOFTWARE_CONFIGURATION = ("110131", "Software Configuration")
    USE_OF_RESTRICTED_FUNCTION = ("110132", "Use of Restricted Function")
    SECURITY_ROLES_CHANGED = ("110136", "Security Roles Changed")
    USER_SECURITY_ATTRIBUTES_CHANGED = ("110137", "User Security Attributes Changed")
    REMOTE_SERVICE_OPERATION_STARTED = ("110139", "Remote Service Operation Started")  # the maintenance tunnel
    REMOTE_SERVICE_OPERATION_STOPPED = ("110140", "Remote Service Operation Stopped")


class ParticipantRole(Coded):  # CID 402
    APPLICATION = ("110150", "Application")
    APPLICATION_LAUNCHER = ("110151", "Application Launcher")
    DESTINATION = ("110152", "Destination Role ID")
    SOURCE = ("110153", "Source Role ID")


class Action(StrEnum):  # EventActionCode
    CREATE = "C"
    READ = "R"
    UPDATE = "U"
    DELETE = "D"
    EXECUTE = "E"


class Outcome(IntEnum):  # EventOutcomeIndicator
    SUCCESS = 0
    MINOR_FAILURE = 4  # e.g. a failed login, some images of a transfer failed
    SERIOUS_FAILURE = 8
    MAJOR_FAILURE = 12


class ParticipantKind(StrEnum):
    """What a participant's UserID names (UserIDTypeCode)."""

    PERSON = "person"  # a console account (113871 Person ID)
    AE = "ae"  # a DICOM application entity (110119 Station AE Title)
    NODE = "node"  # a host or an HL7 application (110182 Node ID)
    APPLICATION = "application"  # this box's own process (appliance-web, appliance-dicom, ...)


class ObjectKind(StrEnum):
    """What a participant object is (type, role and ID type follow from it; audit.xml maps them)."""

    PATIENT = "patient"  # type 1 person, role 1 patient, ID type "Patient Number" (CX form)
    STUDY = "study"  # type 2 system object, role 3 report, ID type 110180 Study Instance UID
    QUERY = "query"  # type 2, role 24 query, ID type 110181 SOP Class UID, the keys in `query`
    ACCOUNT = "account"  # type 1 person, role 11 security user entity, ID type "User Identifier"
    SECURITY_RESOURCE = "security-resource"  # type 2, role 13 (the audit log, the configuration)
    JOB = "job"  # type 2, role 4 master file: a maintenance job and its arguments
    REPORT = "report"  # type 2, role 3 report: an exported report (dose survey, billing) and its period


@dataclass(frozen=True)
class Participant:
    """ActiveParticipant: who took part. Exactly one participant of an event is the requestor."""

    user_id: str
    is_requestor: bool
    kind: ParticipantKind
    address: str = ""  # NetworkAccessPointID: an IP address or a host name
    user_name: str = ""  # a person's full name
    role: ParticipantRole | None = None


@dataclass(frozen=True)
class ParticipantObject:
    """ParticipantObjectIdentification: what the event touched."""

    kind: ObjectKind
    object_id: str  # patient ID (CX form with its issuer), Study Instance UID, SOP Class UID, username, ...
    name: str = ""  # ParticipantObjectName: patient name, accession number, "Security Audit Log"
    query: bytes = b""  # the query keys as received (base64 in the XML)
    accession_number: str = ""
    # (SOP Class UID, number of instances) for a study: ParticipantObjectDescription
    instances: tuple[tuple[str, int], ...] = ()
    details: tuple[tuple[str, str], ...] = ()  # ParticipantObjectDetail type=value


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class AuditEvent:
    event: EventId
    action: Action
    outcome: Outcome
    participants: tuple[Participant, ...]
    objects: tuple[ParticipantObject, ...] = ()
    event_type: EventType | None = None
    outcome_description: str = ""  # the failure in words (never patient data beyond the objects)
    at: datetime = field(default_factory=now)

    @property
    def requestor(self) -> Participant | None:
        return next((participant for participant in self.participants if participant.is_requestor), None)


class Recorder(Protocol):
    """Where events go. `record` must not raise for a storage problem: it logs and keeps the event
    for a later attempt, so that auditing never makes an image or a page fail."""

    def record(self, event: AuditEvent) -> None: ...


def never_raises(function: Callable[Arguments, None]) -> Callable[Arguments, None]:
    """For the edges' helpers that build events inside a protocol handler: a bug there is logged
    (with its traceback, never the event) and the image, query or message goes on."""

    @functools.wraps(function)
    def guarded(*arguments: Arguments.args, **keywords: Arguments.kwargs) -> None:
        try:
            function(*arguments, **keywords)
        except Exception:  # auditing must never make a request fail
            LOGGER.exception("audit event not recorded")

    return guarded


def person(username: str, address: str, full_name: str = "", requestor: bool = True) -> Participant:
    """A console user, the requestor unless said otherwise."""
    return Participant(username, requestor, ParticipantKind.PERSON, address, full_name)


def application(
    name: str, address: str = "", role: ParticipantRole | None = ParticipantRole.APPLICATION
) -> Participant:
    """This box's process that served the request (never the requestor)."""
    return Participant(name, False, ParticipantKind.APPLICATION, address, role=role)


def ae(ae_title: str, address: str, requestor: bool, role: ParticipantRole | None = None) -> Participant:
    """A DICOM peer, by its AE title."""
    return Participant(ae_title, requestor, ParticipantKind.AE, address, role=role)


def patient(patient_id: str, name: str = "") -> ParticipantObject:
    """A patient, by ID in CX form (`ID^^^&OID&ISO` or `ID^^^AUTHORITY`) and DICOM name."""
    return ParticipantObject(ObjectKind.PATIENT, patient_id, name)


def patient_number(patient_id: str, issuer: str = "") -> str:
    """A patient ID in CX form with its issuer: `ID^^^&OID&ISO` for an OID, `ID^^^ISSUER` for a
    namespace, the bare ID when there is no issuer."""
    if not issuer:
        return patient_id
    if all(part.isdigit() for part in issuer.split(".")):
        return f"{patient_id}^^^&{issuer}&ISO"
    return f"{patient_id}^^^{issuer}"


def study(study_uid: str, accession_number: str = "", instances: tuple[tuple[str, int], ...] = ()) -> ParticipantObject:
    """A study; its name is the accession number (minimal personal data, PS3.15 A.5.3.6)."""
    return ParticipantObject(
        ObjectKind.STUDY, study_uid, accession_number, accession_number=accession_number, instances=instances
    )


def exported_report(name: str, period: str, details: tuple[tuple[str, str], ...] = ()) -> ParticipantObject:
    """An exported report (`dose-survey`, `billing`) for a period, the object of a 110106 Export."""
    return ParticipantObject(ObjectKind.REPORT, f"{name}:{period}", name, details=(("period", period), *details))
