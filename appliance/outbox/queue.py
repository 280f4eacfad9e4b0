"""The outbox table's operations: enqueue, the next due message of a channel, attempts, parking, and
the listing people read (the console's message log)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, case, func, insert, or_, select, update

from appliance.db import as_utc
from appliance.db.schema import outbox

PENDING = "pending"
DELIVERED = "delivered"
PARKED = "parked"


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    NO_ANSWER = "no-answer"  # the receiver could not be reached or did not answer: try again later
    REFUSED = "refused"  # the receiver answered no: try a few times, then park


@dataclass(frozen=True)
class Attempt:
    """What one delivery attempt gave, and why (for the log and the console; no patient data)."""

    outcome: Outcome
    detail: str = ""


@dataclass(frozen=True)
class RetryPolicy:
    initial_seconds: float
    maximum_seconds: float
    refusals_before_parking: int

    def delay(self, attempts: int) -> timedelta:
        """Exponential backoff after `attempts` failed attempts, capped."""
        return timedelta(seconds=min(self.initial_seconds * 2 ** max(attempts - 1, 0), self.maximum_seconds))


@dataclass(frozen=True)
class Message:
    id: int
    channel: str
    cause: str
    kind: str
    payload: bytes
    summary: str
    status: str
    attempts: int
    refusals: int
    next_attempt_at: datetime
    last_error: str
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class Selection:
    """Which messages a listing shows ('' or None: any): the beginning of their kind (`ORM`,
    `ORM^O01`), their status, and when they were queued (UTC, `since` included, `until` not)."""

    kind: str = ""
    status: str = ""
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class ChannelState:
    """How one channel is doing: what waits, since when, and what was parked."""

    channel: str
    pending: int
    parked: int
    oldest_pending: datetime | None


def now() -> datetime:
    return datetime.now(UTC)


EXISTING = select(outbox.c.id).where(outbox.c.channel == bindparam("channel"), outbox.c.cause == bindparam("cause"))
INSERT = insert(outbox)


def enqueue(connection: Connection, channel: str, cause: str, kind: str, payload: bytes, summary: str) -> bool:
    """Queue a message inside the caller's transaction; False when `cause` already made one."""
    if connection.execute(EXISTING, {"channel": channel, "cause": cause}).first() is not None:
        return False
    moment = now()
    values: dict[str, Any] = {
        "channel": channel,
        "cause": cause,
        "kind": kind,
        "payload": payload,
        "summary": summary[:200],
        "status": PENDING,
        "attempts": 0,
        "refusals": 0,
        "next_attempt_at": moment,
        "last_error": "",
        "created_at": moment,
    }
    connection.execute(INSERT, values)
    return True


def next_due(engine: Engine, channel_prefixes: tuple[str, ...], moment: datetime | None = None) -> Message | None:
    """The oldest pending message of a channel whose turn it is (messages of a channel go in order:
    only the first pending one of each channel is considered)."""
    heads = (
        select(func.min(outbox.c.id))
        .where(outbox.c.status == PENDING, *channel_filter(channel_prefixes))
        .group_by(outbox.c.channel)
    )
    with engine.connect() as connection:
        rows = connection.execute(select(outbox).where(outbox.c.id.in_(heads)).order_by(outbox.c.next_attempt_at))
        head = rows.first()
    if head is None:
        return None
    message = Message(**head._mapping)
    return message if as_utc(message.next_attempt_at) <= (moment or now()) else None


def due_batch(engine: Engine, head: Message, limit: int, moment: datetime | None = None) -> list[Message]:
    """`head` and the pending messages queued after it on its channel whose turn it is, oldest
    first, `limit` in all: what a channel that sends several messages at once (forwarding: many
    instances on one association) takes in one attempt."""
    statement = (
        select(outbox)
        .where(
            outbox.c.channel == head.channel,
            outbox.c.status == PENDING,
            outbox.c.id >= head.id,
            outbox.c.next_attempt_at <= (moment or now()),
        )
        .order_by(outbox.c.id)
        .limit(max(limit, 1))
    )
    with engine.connect() as connection:
        found = [Message(**row._mapping) for row in connection.execute(statement)]
    return found or [head]


def channel_filter(prefixes: tuple[str, ...]) -> list[Any]:
    """Channels named exactly, or `name:` followed by a destination."""
    if not prefixes:
        return []
    return [or_(*[(outbox.c.channel == prefix) | outbox.c.channel.startswith(f"{prefix}:") for prefix in prefixes])]


def record(engine: Engine, message: Message, attempt: Attempt, policy: RetryPolicy) -> str:
    """Record one attempt; return the message's new status."""
    return record_batch(engine, [(message, attempt)], policy)[0]


def record_batch(engine: Engine, attempts: list[tuple[Message, Attempt]], policy: RetryPolicy) -> list[str]:
    """Record the attempts of several messages in one transaction; return their new statuses."""
    moment = now()
    statuses: list[str] = []
    with engine.begin() as connection:
        for message, attempt in attempts:
            status, values = attempt_values(message, attempt, policy, moment)
            connection.execute(update(outbox).where(outbox.c.id == message.id).values(values))
            statuses.append(status)
    return statuses


def attempt_values(
    message: Message, attempt: Attempt, policy: RetryPolicy, moment: datetime
) -> tuple[str, dict[str, Any]]:
    """A message's new status and the columns one attempt changes."""
    attempts = message.attempts + 1
    values: dict[str, Any] = {"attempts": attempts, "last_error": attempt.detail[:2000]}
    status = PENDING
    if attempt.outcome is Outcome.DELIVERED:
        status = DELIVERED
        values |= {"status": status, "finished_at": moment, "last_error": ""}
    elif attempt.outcome is Outcome.REFUSED and message.refusals + 1 >= policy.refusals_before_parking:
        status = PARKED
        values |= {"status": status, "refusals": message.refusals + 1, "finished_at": moment}
    else:
        refusals = message.refusals + (1 if attempt.outcome is Outcome.REFUSED else 0)
        values |= {"refusals": refusals, "next_attempt_at": moment + policy.delay(attempts)}
    return status, values


def messages(engine: Engine, status: str, channel: str = "", limit: int = 200) -> list[Message]:
    """Messages in a status (newest first), of one channel or of all."""
    statement = select(outbox).where(outbox.c.status == status).order_by(outbox.c.id.desc()).limit(limit)
    if channel:
        statement = statement.where(*channel_filter((channel,)))
    with engine.connect() as connection:
        return [Message(**row._mapping) for row in connection.execute(statement)]


LISTED_COLUMNS = [column for column in outbox.c if column.name != "payload"]


def listing(engine: Engine, selection: Selection, before_id: int | None = None, limit: int = 50) -> list[Message]:
    """One page of messages, newest first: those of `selection` with an id below `before_id` (the
    last id of the page before: keyset pagination on the primary key). Their payload, which may
    hold patient data, is left out (b"")."""
    statement = select(*LISTED_COLUMNS).where(*selected(selection)).order_by(outbox.c.id.desc()).limit(limit)
    if before_id is not None:
        statement = statement.where(outbox.c.id < before_id)
    with engine.connect() as connection:
        return [Message(**row._mapping, payload=b"") for row in connection.execute(statement)]


def selected(selection: Selection) -> list[Any]:
    conditions: list[Any] = []
    if selection.kind:
        conditions.append(outbox.c.kind.startswith(selection.kind, autoescape=True))
    if selection.status:
        conditions.append(outbox.c.status == selection.status)
    if selection.since is not None:
        conditions.append(outbox.c.created_at >= selection.since.astimezone(UTC))
    if selection.until is not None:
        conditions.append(outbox.c.created_at < selection.until.astimezone(UTC))
    return conditions


def message(engine: Engine, message_id: int) -> Message | None:
    """One message with its payload, or None."""
    with engine.connect() as connection:
        row = connection.execute(select(outbox).where(outbox.c.id == message_id)).first()
    return Message(**row._mapping) if row else None


def retry(engine: Engine, message_id: int) -> bool:
    """Put a parked message back in its channel's queue, due now; False when it is not parked."""
    values = {"status": PENDING, "refusals": 0, "next_attempt_at": now(), "finished_at": None}
    with engine.begin() as connection:
        result = connection.execute(
            update(outbox).where(and_(outbox.c.id == message_id, outbox.c.status == PARKED)).values(values)
        )
    return bool(result.rowcount)


def retry_channel(engine: Engine, channel: str) -> int:
    """Everything waiting or parked on `channel` is due now (the console's "retry now": a
    destination back after a long outage need not wait for the end of its backoff); return how
    many messages that puts in line."""
    values = {"status": PENDING, "refusals": 0, "next_attempt_at": now(), "finished_at": None}
    with engine.begin() as connection:
        result = connection.execute(
            update(outbox)
            .where(and_(outbox.c.channel == channel, outbox.c.status.in_([PENDING, PARKED])))
            .values(values)
        )
    return int(result.rowcount or 0)


def channel_states(engine: Engine) -> list[ChannelState]:
    """Per channel: pending and parked counts and the oldest pending message's creation time."""
    pending = func.sum(case((outbox.c.status == PENDING, 1), else_=0))
    parked = func.sum(case((outbox.c.status == PARKED, 1), else_=0))
    oldest = func.min(outbox.c.created_at).filter(outbox.c.status == PENDING)
    statement = (
        select(outbox.c.channel, pending, parked, oldest)
        .where(outbox.c.status.in_([PENDING, PARKED]))
        .group_by(outbox.c.channel)
        .order_by(outbox.c.channel)
    )
    with engine.connect() as connection:
        return [
            ChannelState(channel, int(waiting or 0), int(set_aside or 0), as_utc(first) if first else None)
            for channel, waiting, set_aside, first in connection.execute(statement)
        ]
