"""The change feed: one append-only list of what happened, read by every background consumer.

Producers `publish` inside the transaction that made the change (an instance indexed, an MPPS state
recorded, a study announced complete), so a change is in the feed exactly when its cause is
committed. Each consumer (the lossless compressor, image availability, the HL7 sender, later
forwarding and dose) keeps its own cursor: it reads the changes after it (`Feed.pending`), does its
work, then `advance`s. Work done but not yet acknowledged by an advance is done again after a crash,
so consumers are idempotent (at-least-once).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, bindparam, insert, select, update

from appliance.db.prepared import Prepared
from appliance.db.schema import change, change_cursor

INSTANCE_STORED = "instance-stored"
PROCEDURE_IN_PROGRESS = "procedure-in-progress"
PROCEDURE_COMPLETED = "procedure-completed"
PROCEDURE_DISCONTINUED = "procedure-discontinued"
IMAGES_AVAILABLE = "images-available"
ORDER_SCHEDULED = "order-scheduled"  # a new order from the RIS: its patient's priors may be fetched
WORKFLOW_KINDS = frozenset({PROCEDURE_IN_PROGRESS, PROCEDURE_COMPLETED, PROCEDURE_DISCONTINUED, IMAGES_AVAILABLE})


@dataclass(frozen=True)
class Change:
    """One entry of the feed; `scheduled_step_pk` is set for workflow changes about an ordered step."""

    id: int
    kind: str
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    accession_number: str
    scheduled_step_pk: int | None
    created_at: datetime

    @property
    def created_at_utc(self) -> datetime:
        """SQLite gives naive datetimes back: they were stored in UTC."""
        return self.created_at if self.created_at.tzinfo else self.created_at.replace(tzinfo=UTC)


PUBLISH = Prepared(insert(change))
CURSOR = select(change_cursor.c.last_change_id).where(change_cursor.c.consumer == bindparam("consumer"))
MOVE_CURSOR = (
    update(change_cursor)
    .where(change_cursor.c.consumer == bindparam("name"))
    .values(last_change_id=bindparam("last"), updated_at=bindparam("moment"))
)
NEW_CURSOR = insert(change_cursor)


def publish(
    connection: Connection,
    kind: str,
    study_instance_uid: str,
    moment: datetime,
    *,
    series_instance_uid: str = "",
    sop_instance_uid: str = "",
    accession_number: str = "",
    scheduled_step_pk: int | None = None,
) -> None:
    """Append one change, inside the caller's transaction."""
    values = {
        "kind": kind,
        "study_instance_uid": study_instance_uid,
        "series_instance_uid": series_instance_uid,
        "sop_instance_uid": sop_instance_uid,
        "accession_number": accession_number[:16],
        "scheduled_step_pk": scheduled_step_pk,
        "created_at": moment,
    }
    PUBLISH.run(connection, values)


def cursor_of(connection: Connection, consumer: str) -> int:
    """The id of the last change `consumer` has dealt with (0 for a new consumer)."""
    value = connection.execute(CURSOR, {"consumer": consumer}).scalar()
    return int(value) if value is not None else 0


def read_after(connection: Connection, cursor: int, kinds: Collection[str], limit: int) -> list[Change]:
    """The changes of the given kinds after `cursor`, oldest first, at most `limit`."""
    statement = (
        select(change).where(change.c.id > cursor, change.c.kind.in_(sorted(kinds))).order_by(change.c.id).limit(limit)
    )
    return [Change(**row._mapping) for row in connection.execute(statement)]


def advance(connection: Connection, consumer: str, last_change_id: int) -> None:
    """Move `consumer`'s cursor to `last_change_id`, inside the caller's transaction."""
    moment = datetime.now(UTC)
    if not connection.execute(MOVE_CURSOR, {"name": consumer, "last": last_change_id, "moment": moment}).rowcount:
        connection.execute(NEW_CURSOR, {"consumer": consumer, "last_change_id": last_change_id, "updated_at": moment})


class Feed:
    """One consumer's view of the feed on an engine: what is pending for it, and its cursor."""

    def __init__(self, engine: Engine, consumer: str, kinds: Collection[str]) -> None:
        self.engine = engine
        self.consumer = consumer
        self.kinds = frozenset(kinds)

    def cursor(self) -> int:
        with self.engine.connect() as connection:
            return cursor_of(connection, self.consumer)

    def pending(self, limit: int) -> list[Change]:
        """The next changes of this consumer's kinds after its cursor."""
        with self.engine.connect() as connection:
            return read_after(connection, cursor_of(connection, self.consumer), self.kinds, limit)

    def advance(self, last_change_id: int) -> None:
        with self.engine.begin() as connection:
            advance(connection, self.consumer, last_change_id)
