"""The hash chain of the audit trail (research §1.7): each record is a canonical JSON document
(sorted keys, no spaces, UTF-8) holding its sequence number, the time it was recorded and the event;
its hash is SHA-256 over the previous record's hash (ASCII hex) followed by that document. The
first record follows `GENESIS`.

A record edited changes its hash; a record removed, inserted or moved leaves a record whose
`previous_hash` is not the hash of the record before it. `document_of` and `event_of` turn an
`AuditEvent` into that document and back.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from appliance.audit.events import (
    Action,
    AuditEvent,
    EventId,
    EventType,
    ObjectKind,
    Outcome,
    Participant,
    ParticipantKind,
    ParticipantObject,
    ParticipantRole,
)

GENESIS = "0" * 64  # the "previous hash" of the first record ever written

EVENT_IDS = {member.code: member for member in EventId}
EVENT_TYPES = {member.code: member for member in EventType}
ROLES = {member.code: member for member in ParticipantRole}


def canonical(document: dict[str, Any]) -> bytes:
    """The bytes that are hashed: sorted keys, no whitespace, UTF-8."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def link(previous_hash: str, document: bytes) -> str:
    """The hash of a record: SHA-256(previous hash || canonical document), hex."""
    return hashlib.sha256(previous_hash.encode("ascii") + document).hexdigest()


def utc_text(moment: datetime) -> str:
    """A moment as ISO 8601 in UTC with microseconds (text order is time order)."""
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def document_of(event: AuditEvent, seq: int, recorded_at: datetime) -> dict[str, Any]:
    """The JSON document of record `seq`, recorded at `recorded_at`."""
    return {
        "seq": seq,
        "recorded": utc_text(recorded_at),
        "at": utc_text(event.at),
        "event": event.event.code,
        "action": event.action.value,
        "outcome": int(event.outcome),
        "type": event.event_type.code if event.event_type else "",
        "description": event.outcome_description,
        "participants": [participant_document(participant) for participant in event.participants],
        "objects": [object_document(found) for found in event.objects],
    }


def participant_document(participant: Participant) -> dict[str, Any]:
    return {
        "id": participant.user_id,
        "requestor": participant.is_requestor,
        "kind": participant.kind.value,
        "address": participant.address,
        "name": participant.user_name,
        "role": participant.role.code if participant.role else "",
    }


def object_document(found: ParticipantObject) -> dict[str, Any]:
    return {
        "kind": found.kind.value,
        "id": found.object_id,
        "name": found.name,
        "query": base64.b64encode(found.query).decode("ascii"),
        "accession": found.accession_number,
        "instances": [[sop_class, count] for sop_class, count in found.instances],
        "details": [[kind, value] for kind, value in found.details],
    }


def event_of(document: dict[str, Any]) -> AuditEvent:
    """The event a stored document describes. Raises KeyError or ValueError on a malformed one."""
    return AuditEvent(
        event=EVENT_IDS[document["event"]],
        action=Action(document["action"]),
        outcome=Outcome(document["outcome"]),
        participants=tuple(participant_of(item) for item in document["participants"]),
        objects=tuple(object_of(item) for item in document["objects"]),
        event_type=EVENT_TYPES[document["type"]] if document["type"] else None,
        outcome_description=document["description"],
        at=datetime.fromisoformat(document["at"]),
    )


def participant_of(item: dict[str, Any]) -> Participant:
    return Participant(
        user_id=item["id"],
        is_requestor=bool(item["requestor"]),
        kind=ParticipantKind(item["kind"]),
        address=item["address"],
        user_name=item["name"],
        role=ROLES[item["role"]] if item["role"] else None,
    )


def object_of(item: dict[str, Any]) -> ParticipantObject:
    return ParticipantObject(
        kind=ObjectKind(item["kind"]),
        object_id=item["id"],
        name=item["name"],
        query=base64.b64decode(item["query"]),
        accession_number=item["accession"],
        instances=tuple((str(sop_class), int(count)) for sop_class, count in item["instances"]),
        details=tuple((str(kind), str(value)) for kind, value in item["details"]),
    )
