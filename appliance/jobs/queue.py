"""The job table's operations: queue a job, read it, list the recent ones, ask for a cancellation;
and, for the runner, claim the oldest waiting job, write its progress, finish it.

Every operation is one short transaction that works the same on SQLite and PostgreSQL: a claim is an
`UPDATE ... WHERE state = 'waiting'` whose row count says who won.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, exists, insert, literal, select, text, update
from sqlalchemy.types import Boolean, DateTime, Integer, String

from appliance.db import as_utc
from appliance.db.schema import job

WAITING = "waiting"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
ACTIVE = (WAITING, RUNNING)
FINISHED = (SUCCEEDED, FAILED, CANCELLED)

VERIFY = "verify"
COMPRESS = "compress"
REINDEX = "reindex"
VERIFY_AUDIT = "verify-audit"
TIER_MOVE = "tier-move"
TIER_RECALL = "tier-recall"  # arguments: {"study_instance_uid": ...}
BACKUP = "backup"  # development only (`make run`): on a box the backup runs as root, from systemd
# The jobs page's and `appliance jobs start`'s (none needs arguments): a recall is asked for on the
# tiers page, the backup on the backup page.
MAINTENANCE = (VERIFY, COMPRESS, REINDEX, VERIFY_AUDIT, TIER_MOVE)
WITHOUT_ARGUMENTS = MAINTENANCE
KINDS = (*MAINTENANCE, TIER_RECALL, BACKUP)

INTERRUPTED = "interrupted: the process running it stopped before it ended"


class JobError(Exception):
    """Base of the jobs package's errors; the message is for people."""


class UnknownKind(JobError):
    def __init__(self, kind: str) -> None:
        super().__init__(f"no job of kind {kind!r} (known: {', '.join(KINDS)})")
        self.kind = kind


class AlreadyQueued(JobError):
    """A job of the same kind is waiting or running: one at a time of each kind."""

    def __init__(self, kind: str, job_id: int) -> None:
        super().__init__(f"a {kind} job is already waiting or running (job {job_id})")
        self.kind = kind
        self.job_id = job_id


class NoSuchJob(JobError):
    def __init__(self, job_id: int) -> None:
        super().__init__(f"there is no job {job_id}")
        self.job_id = job_id


@dataclass(frozen=True)
class Job:
    """One row of the job table, its JSON columns decoded, its times in UTC."""

    id: int
    kind: str
    arguments: Mapping[str, Any]
    state: str
    done: int
    total: int
    step: str
    cancel_requested: bool
    result: Mapping[str, Any]
    error: str
    started_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def percent(self) -> int:
        """0 to 100: done out of total; 100 once succeeded; 0 while the total is not known."""
        if self.state == SUCCEEDED:
            return 100
        if self.total <= 0:
            return 0
        return min(100, self.done * 100 // self.total)


def now() -> datetime:
    return datetime.now(UTC)


def job_of(row: Mapping[Any, Any]) -> Job:
    values = {str(key): value for key, value in row.items()}
    values["arguments"] = json.loads(values["arguments"] or "{}")
    values["result"] = json.loads(values["result"] or "{}")
    values["cancel_requested"] = bool(values["cancel_requested"])
    for name in ("created_at", "started_at", "finished_at"):
        values[name] = as_utc(values[name])
    return Job(**values)


def submit(engine: Engine, kind: str, arguments: Mapping[str, Any], started_by: str) -> int:
    """Queue a job for the runner; return its id.

    Raises UnknownKind, AlreadyQueued (a job of this kind is waiting or running), or TypeError when
    the arguments cannot be written as JSON. The check and the insert are one statement (under a
    table lock on PostgreSQL), so two people submitting at once queue one job.
    """
    if kind not in KINDS:
        raise UnknownKind(kind)
    encoded = json.dumps(dict(arguments), sort_keys=True)
    with engine.begin() as connection:
        lock_against_other_submissions(connection)
        inserted = connection.execute(insert_unless_active(kind, encoded, started_by)).scalar()
        if inserted is None:
            raise AlreadyQueued(kind, active_job(connection, kind))
        return int(inserted)


def lock_against_other_submissions(connection: Connection) -> None:
    """PostgreSQL's read committed would let two `NOT EXISTS` checks pass at once; SQLite has one
    writer at a time already."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("LOCK TABLE job IN SHARE ROW EXCLUSIVE MODE"))


def insert_unless_active(kind: str, encoded_arguments: str, started_by: str) -> Any:
    values = {
        "kind": literal(kind, String),
        "arguments": literal(encoded_arguments, String),
        "state": literal(WAITING, String),
        "done": literal(0, Integer),
        "total": literal(0, Integer),
        "step": literal("", String),
        "cancel_requested": literal(False, Boolean),
        "result": literal("", String),
        "error": literal("", String),
        "started_by": literal(started_by[:64], String),
        "created_at": literal(now(), DateTime(timezone=True)),
    }
    active = exists().where(job.c.kind == kind, job.c.state.in_(ACTIVE))
    chosen: list[Any] = list(values.values())
    return insert(job).from_select(list(values), select(*chosen).where(~active)).returning(job.c.id)


def active_job(connection: Connection, kind: str) -> int:
    statement = select(job.c.id).where(job.c.kind == kind, job.c.state.in_(ACTIVE)).order_by(job.c.id.desc())
    return int(connection.execute(statement.limit(1)).scalar_one())


def get(engine: Engine, job_id: int) -> Job:
    """The job with this id; raises NoSuchJob."""
    with engine.connect() as connection:
        row = connection.execute(select(job).where(job.c.id == job_id)).first()
    if row is None:
        raise NoSuchJob(job_id)
    return job_of(row._mapping)


def recent(engine: Engine, limit: int = 20) -> list[Job]:
    """The latest jobs, newest first, whatever their state."""
    with engine.connect() as connection:
        rows = connection.execute(select(job).order_by(job.c.id.desc()).limit(limit))
        return [job_of(row._mapping) for row in rows]


def latest(engine: Engine, kind: str) -> Job | None:
    """The newest job of `kind` (waiting, running or finished), or None when none was ever queued."""
    with engine.connect() as connection:
        row = connection.execute(select(job).where(job.c.kind == kind).order_by(job.c.id.desc()).limit(1)).first()
    return job_of(row._mapping) if row else None


def request_cancel(engine: Engine, job_id: int, by: str) -> Job:
    """Cancel a waiting job at once, or ask a running one to stop at its next checkpoint (within a
    second or so); a finished job is left as it is. Returns the job as it is now; raises NoSuchJob.
    """
    note = f"cancelled by {by}"[:200]
    with engine.begin() as connection:
        connection.execute(
            update(job)
            .where(job.c.id == job_id, job.c.state == WAITING)
            .values(state=CANCELLED, cancel_requested=True, error=note, finished_at=now())
        )
        connection.execute(
            update(job).where(job.c.id == job_id, job.c.state == RUNNING).values(cancel_requested=True, error=note)
        )
    return get(engine, job_id)


def claim_next(engine: Engine) -> Job | None:
    """Take the oldest waiting job for this runner (state running); None when nothing waits.

    Two runners may look at the same row: the `WHERE state = 'waiting'` of the update lets one
    only win; the other looks again, for as long as a job waits. The loop ends: each lost race is
    a row another runner took, and a runner that finds none returns.
    """
    while True:
        with engine.connect() as connection:
            oldest = connection.execute(
                select(job.c.id).where(job.c.state == WAITING).order_by(job.c.id).limit(1)
            ).scalar()
        if oldest is None:
            return None
        with engine.begin() as connection:
            claimed = connection.execute(
                update(job).where(job.c.id == oldest, job.c.state == WAITING).values(state=RUNNING, started_at=now())
            ).rowcount
        if claimed:
            return get(engine, oldest)


def write_progress(engine: Engine, job_id: int, step: str, done: int, total: int) -> bool:
    """Record how far a running job is; return whether a cancellation was requested."""
    with engine.begin() as connection:
        connection.execute(update(job).where(job.c.id == job_id).values(step=step[:200], done=done, total=total))
        requested = connection.execute(select(job.c.cancel_requested).where(job.c.id == job_id)).scalar()
    return bool(requested)


def finish(engine: Engine, job_id: int, state: str, result: Mapping[str, Any], error: str = "") -> None:
    """End a running job: its state, its result (JSON), and for a failure the error in words (a
    cancelled job keeps the note of who cancelled it)."""
    values: dict[str, Any] = {"state": state, "result": json.dumps(dict(result), sort_keys=True), "finished_at": now()}
    if error or state != CANCELLED:
        values["error"] = error
    with engine.begin() as connection:
        connection.execute(update(job).where(job.c.id == job_id, job.c.state == RUNNING).values(values))


def queue_again(engine: Engine, job_id: int) -> None:
    """Put a running job back in the queue (its process is stopping cleanly): it starts over later."""
    values: dict[str, Any] = {"state": WAITING, "done": 0, "total": 0, "step": "", "started_at": None}
    with engine.begin() as connection:
        connection.execute(update(job).where(job.c.id == job_id, job.c.state == RUNNING).values(values))


def fail_interrupted(engine: Engine) -> list[Job]:
    """Mark failed the jobs left running by a process that died (call it when the runner starts,
    before it claims anything: one runner per index); return them."""
    with engine.connect() as connection:
        left = [row.id for row in connection.execute(select(job.c.id).where(job.c.state == RUNNING))]
    for job_id in left:
        finish(engine, job_id, FAILED, {}, INTERRUPTED)
    return [get(engine, job_id) for job_id in left]
