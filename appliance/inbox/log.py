"""The inbox as people read it: one page of received messages (newest first, filtered), and one
message with its bytes and its acknowledgement."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select

from appliance.db.schema import hl7_inbox

RECEIVED = "received"  # stored, not applied yet
APPLIED = "applied"  # applied and acknowledged AA
REFUSED = "refused"  # not applied: AE or AR
FAILED = "failed"  # an internal error: AE
STATUSES = (RECEIVED, APPLIED, REFUSED, FAILED)
SEGMENT_END = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class ReceivedMessage:
    """One received message; `message` and `acknowledgement` (patient data) only when asked for one."""

    id: int
    sender: str  # MSH-3|MSH-4 as sent
    control_id: str  # MSH-10
    message_type: str  # MSH-9
    status: str
    acknowledgement_code: str  # MSA-1 of the ACK sent: AA, AE, AR ('' before any)
    detail: str
    received_at: datetime
    processed_at: datetime | None
    message: bytes = b""
    acknowledgement: bytes = b""


@dataclass(frozen=True)
class Selection:
    """Which messages a listing shows ('' or None: any): the beginning of their type (`ADT`,
    `ADT^A28`), their status, and when they were received (UTC, `since` included, `until` not)."""

    message_type: str = ""
    status: str = ""
    since: datetime | None = None
    until: datetime | None = None


LISTED_COLUMNS = [column for column in hl7_inbox.c if column.name != "message"]


def listing(
    engine: Engine, selection: Selection, before_id: int | None = None, limit: int = 50
) -> list[ReceivedMessage]:
    """One page of received messages, newest first: those of `selection` with an id below
    `before_id` (the last id of the page before: keyset pagination on the primary key). The
    messages themselves are left out; the ACK only gives its code."""
    statement = select(*LISTED_COLUMNS).where(*selected(selection)).order_by(hl7_inbox.c.id.desc()).limit(limit)
    if before_id is not None:
        statement = statement.where(hl7_inbox.c.id < before_id)
    with engine.connect() as connection:
        return [received(row._mapping, with_content=False) for row in connection.execute(statement)]


def message(engine: Engine, message_id: int) -> ReceivedMessage | None:
    """One received message with its bytes and the ACK sent, or None."""
    with engine.connect() as connection:
        row = connection.execute(select(hl7_inbox).where(hl7_inbox.c.id == message_id)).first()
    return received(row._mapping, with_content=True) if row else None


def selected(selection: Selection) -> list[Any]:
    conditions: list[Any] = []
    if selection.message_type:
        conditions.append(hl7_inbox.c.message_type.startswith(selection.message_type, autoescape=True))
    if selection.status:
        conditions.append(hl7_inbox.c.status == selection.status)
    if selection.since is not None:
        conditions.append(hl7_inbox.c.received_at >= selection.since.astimezone(UTC))
    if selection.until is not None:
        conditions.append(hl7_inbox.c.received_at < selection.until.astimezone(UTC))
    return conditions


def received(row: Any, with_content: bool) -> ReceivedMessage:
    acknowledgement = bytes(row["acknowledgement"] or b"")
    return ReceivedMessage(
        id=row["id"],
        sender=row["sender"],
        control_id=row["control_id"],
        message_type=row["message_type"],
        status=row["status"],
        acknowledgement_code=acknowledgement_code(acknowledgement),
        detail=row["detail"],
        received_at=row["received_at"],
        processed_at=row["processed_at"],
        message=bytes(row["message"]) if with_content else b"",
        acknowledgement=acknowledgement if with_content else b"",
    )


def acknowledgement_code(acknowledgement: bytes) -> str:
    """MSA-1 of an ACK (AA, AE, AR, CA, ...), '' when there is none; the field separator is MSH-1."""
    if not acknowledgement.startswith(b"MSH") or len(acknowledgement) < 4:
        return ""
    separator = acknowledgement[3:4]
    for segment in SEGMENT_END.split(acknowledgement):
        fields = segment.split(separator)
        if fields[0] == b"MSA" and len(fields) > 1:
            return fields[1].decode("ascii", errors="replace")[:2]
    return ""
