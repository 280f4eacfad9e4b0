"""The audit trail in the page's words: what happened (an event, with its action and type, as people
say it: "Consultation d'examen", "Connexion"), the action, the outcome, who took part and what was
touched, and why a verification found a record broken. Codes the console does not know are shown
as the standard names them."""

from __future__ import annotations

import re

from appliance.audit.events import (
    Action,
    AuditEvent,
    EventId,
    EventType,
    ObjectKind,
    Outcome,
    ParticipantKind,
    ParticipantRole,
)
from appliance.web.forms import lazy

# The events one may search for, by their EventID (PS3.15 A.5.3), in the order of the list.
EVENT_NAMES: dict[EventId, str] = {
    EventId.INSTANCES_ACCESSED: lazy("Study viewed"),
    EventId.QUERY: lazy("Query"),
    EventId.INSTANCES_TRANSFERRED: lazy("Image transfer"),
    EventId.PATIENT_RECORD: lazy("Patient record"),
    EventId.PROCEDURE_RECORD: lazy("Order"),
    EventId.USER_AUTHENTICATION: lazy("Login and logout"),
    EventId.SECURITY_ALERT: lazy("Security (settings, accounts, restricted functions)"),
    EventId.AUDIT_LOG_USED: lazy("Use of the audit trail"),
    EventId.APPLICATION_ACTIVITY: lazy("Service started or stopped"),
    EventId.STUDY_DELETED: lazy("Study deleted"),
    EventId.EXPORT: lazy("Export"),
}

# An event whose words depend on its action: (EventID, action) -> words.
BY_ACTION: dict[tuple[EventId, Action], str] = {
    (EventId.PATIENT_RECORD, Action.CREATE): lazy("Patient record created"),
    (EventId.PATIENT_RECORD, Action.READ): lazy("Patient record read"),
    (EventId.PATIENT_RECORD, Action.UPDATE): lazy("Patient record changed"),
    (EventId.PATIENT_RECORD, Action.DELETE): lazy("Patient record deleted"),
    (EventId.PROCEDURE_RECORD, Action.CREATE): lazy("Order received"),
    (EventId.PROCEDURE_RECORD, Action.UPDATE): lazy("Order changed"),
    (EventId.PROCEDURE_RECORD, Action.DELETE): lazy("Order cancelled"),
    (EventId.INSTANCES_TRANSFERRED, Action.CREATE): lazy("Images received"),
    (EventId.INSTANCES_TRANSFERRED, Action.READ): lazy("Images sent"),
    (EventId.AUDIT_LOG_USED, Action.READ): lazy("Audit trail consulted"),
    (EventId.AUDIT_LOG_USED, Action.EXECUTE): lazy("Audit trail verified"),
    (EventId.AUDIT_LOG_USED, Action.DELETE): lazy("Audit trail purged (retention period)"),
}

# An event whose words depend on its type (EventTypeCode).
BY_TYPE: dict[EventType, str] = {
    EventType.LOGIN: lazy("Login"),
    EventType.LOGOUT: lazy("Logout"),
    EventType.APPLICATION_START: lazy("Service started"),
    EventType.APPLICATION_STOP: lazy("Service stopped"),
    EventType.SECURITY_CONFIGURATION: lazy("Security settings changed"),
    EventType.SOFTWARE_CONFIGURATION: lazy("Settings changed"),
    EventType.USE_OF_RESTRICTED_FUNCTION: lazy("Restricted function used"),
    EventType.SECURITY_ROLES_CHANGED: lazy("Role changed"),
    EventType.USER_SECURITY_ATTRIBUTES_CHANGED: lazy("Account changed"),
    EventType.REMOTE_SERVICE_OPERATION_STARTED: lazy("Maintenance access opened"),
    EventType.REMOTE_SERVICE_OPERATION_STOPPED: lazy("Maintenance access closed"),
}

ACTION_NAMES: dict[Action, str] = {
    Action.CREATE: lazy("Creation"),
    Action.READ: lazy("Reading"),
    Action.UPDATE: lazy("Modification"),
    Action.DELETE: lazy("Deletion"),
    Action.EXECUTE: lazy("Execution"),
}

OUTCOME_NAMES: dict[Outcome, str] = {
    Outcome.SUCCESS: lazy("OK"),
    Outcome.MINOR_FAILURE: lazy("failure"),
    Outcome.SERIOUS_FAILURE: lazy("serious failure"),
    Outcome.MAJOR_FAILURE: lazy("major failure"),
}

PARTICIPANT_KINDS: dict[ParticipantKind, str] = {
    ParticipantKind.PERSON: lazy("person (console account or user of the box)"),
    ParticipantKind.AE: lazy("DICOM device (AE title)"),
    ParticipantKind.NODE: lazy("HL7 application"),
    ParticipantKind.APPLICATION: lazy("service of this box"),
}

PARTICIPANT_ROLES: dict[ParticipantRole, str] = {
    ParticipantRole.APPLICATION: lazy("application"),
    ParticipantRole.APPLICATION_LAUNCHER: lazy("started the service"),
    ParticipantRole.SOURCE: lazy("sender"),
    ParticipantRole.DESTINATION: lazy("receiver"),
}

OBJECT_KINDS: dict[ObjectKind, str] = {
    ObjectKind.PATIENT: lazy("Patient"),
    ObjectKind.STUDY: lazy("Study"),
    ObjectKind.QUERY: lazy("Search keys"),
    ObjectKind.ACCOUNT: lazy("Account"),
    ObjectKind.SECURITY_RESOURCE: lazy("Security resource"),
    ObjectKind.JOB: lazy("Job"),
}

# What `appliance.audit.trail.verify` says of a broken record, in the page's words.
PROBLEMS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"content does not match its hash \(edited\)"),
        lazy("its content was edited (it no longer matches its hash)"),
    ),
    (
        re.compile(r"searchable columns differ from its content \(edited\)"),
        lazy("its searchable columns were edited (they no longer match its content)"),
    ),
    (
        re.compile(r"does not follow the record before it .*"),
        lazy("it does not follow the record before it: a record was removed, inserted or moved"),
    ),
    (
        re.compile(r"record\(s\) (?P<first>\d+)\.\.(?P<last>\d+) missing"),
        lazy("records %(first)s to %(last)s are missing"),
    ),
    (
        re.compile(r"patient index row of missing record (?P<seq>\d+)"),
        lazy("a patient index row of the missing record %(seq)s"),
    ),
    (re.compile(r"patient index row without a record"), lazy("a patient index row without its record")),
]


def event_words(event: AuditEvent) -> str:
    """What happened, as people say it: by its type, else its action, else its EventID."""
    if event.event_type is not None and event.event_type in BY_TYPE:
        if event.event_type is EventType.USER_SECURITY_ATTRIBUTES_CHANGED and event.action is Action.CREATE:
            return str(lazy("Account created"))
        return str(BY_TYPE[event.event_type])
    words = BY_ACTION.get((event.event, event.action)) or EVENT_NAMES.get(event.event)
    return str(words) if words else event.event.meaning


def action_words(action: Action) -> str:
    return str(ACTION_NAMES.get(action, action.value))


def outcome_words(outcome: Outcome) -> str:
    return str(OUTCOME_NAMES.get(outcome, str(int(outcome))))


def problem_words(problem: str) -> list[str]:
    """Each problem a verification found in one record (they are joined by "; "), in words."""
    return [one_problem(part) for part in problem.split("; ") if part]


def one_problem(problem: str) -> str:
    for pattern, words in PROBLEMS:
        found = pattern.fullmatch(problem)
        if found:
            return str(words) % found.groupdict() if found.groupdict() else str(words)
    return problem


def person_name(name: str) -> str:
    """A DICOM or HL7 name (DUPONT^MARIE) as people write it (DUPONT MARIE)."""
    return " ".join(part for part in name.split("^") if part)
