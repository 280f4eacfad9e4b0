"""The durable inbox: a message is committed here before it is applied and before its ACK goes out;
its status and ACK are recorded with its effects, so a duplicate gets the same ACK and a message
stored but not applied is applied at the next start.

A message is normally stored, applied and acknowledged in one commit (so an AA always means
applied); a refused one (AE) is stored with its ACK in a commit of its own, without its effects.
The statuses are named in `appliance.inbox`, which also lists the inbox for people."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, bindparam, insert, select, update

from appliance.db.schema import hl7_inbox
from appliance.inbox import APPLIED as APPLIED
from appliance.inbox import FAILED as FAILED
from appliance.inbox import RECEIVED as RECEIVED
from appliance.inbox import REFUSED as REFUSED


@dataclass(frozen=True)
class InboxEntry:
    id: int
    status: str
    message: bytes
    acknowledgement: bytes | None


def now() -> datetime:
    return datetime.now(UTC)


ENTRY_COLUMNS = (hl7_inbox.c.id, hl7_inbox.c.status, hl7_inbox.c.message, hl7_inbox.c.acknowledgement)
ENTRY_BY_CONTROL_ID = select(*ENTRY_COLUMNS).where(
    hl7_inbox.c.sender == bindparam("sender"), hl7_inbox.c.control_id == bindparam("control_id")
)
INSERT_ENTRY = insert(hl7_inbox)
FINISH = update(hl7_inbox).where(hl7_inbox.c.id == bindparam("entry_id"))


def find(connection: Connection, sender: str, control_id: str) -> InboxEntry | None:
    row = connection.execute(ENTRY_BY_CONTROL_ID, {"sender": sender, "control_id": control_id}).first()
    return InboxEntry(**row._mapping) if row else None


def store(connection: Connection, sender: str, control_id: str, message_type: str, message: bytes) -> int:
    """Insert the message as received (committed with the caller's transaction); return its inbox id."""
    values = {
        "sender": sender,
        "control_id": control_id,
        "message_type": message_type,
        "message": message,
        "status": RECEIVED,
        "received_at": now(),
    }
    key = connection.execute(INSERT_ENTRY, values).inserted_primary_key
    assert key is not None
    return int(key[0])


def finish(connection: Connection, entry_id: int, status: str, acknowledgement: bytes, detail: str) -> None:
    values = {
        "entry_id": entry_id,
        "status": status,
        "acknowledgement": acknowledgement,
        "detail": detail[:2000],
        "processed_at": now(),
    }
    connection.execute(FINISH, values)


def unapplied(engine: Engine) -> list[InboxEntry]:
    """Messages stored but never applied (the process stopped in between), oldest first."""
    query = (
        select(hl7_inbox.c.id, hl7_inbox.c.status, hl7_inbox.c.message, hl7_inbox.c.acknowledgement)
        .where(hl7_inbox.c.status == RECEIVED)
        .order_by(hl7_inbox.c.id)
    )
    with engine.connect() as connection:
        return [InboxEntry(**row._mapping) for row in connection.execute(query)]
