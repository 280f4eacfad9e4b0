"""The audit trail: `AuditTrail` stores `AuditEvent`s hash-chained (`chain`) in its own SQLite file,
never in the index, and finds them again for the console, the exports and the syslog forwarder.

- Several processes append at once (the DICOM, worklist and HL7 daemons, web workers, the worker,
  the CLI): each append is one short `BEGIN IMMEDIATE` transaction that reads the last record's
  sequence number and hash and inserts the next record, so the chain has one order whoever writes.
- Append-only: triggers refuse any UPDATE and DELETE. The retention purge is the one way records
  leave (`purge`): in one transaction it drops the DELETE triggers, deletes the old records,
  creates the triggers again and appends a chained "purged up to seq N" record holding the hash
  of record N, so that `verify` starts again from there.
- `record` never raises: a storage failure is logged (without patient data) and the event kept in
  memory, written before the next one. A daemon opens its trail with `background=True`: `record`
  then only queues the event and a writer thread appends it, off the C-FIND and C-STORE path (what
  is queued when the process is killed outright is lost; a clean stop writes it all).
- WAL with `synchronous=NORMAL`: a commit survives a crash of the process at once and a power loss
  once the WAL is checkpointed (the box runs on a UPS); no fsync per record on the C-STORE or C-FIND
  path.
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appliance.audit.chain import GENESIS, canonical, document_of, event_of, link, utc_text
from appliance.audit.events import (
    Action,
    AuditEvent,
    EventId,
    ObjectKind,
    Outcome,
    Participant,
    ParticipantObject,
)

LOGGER = logging.getLogger(__name__)

PENDING_LIMIT = 100_000  # events kept in memory while the file cannot be written
BUSY_TIMEOUT_MILLISECONDS = 30_000
AUDIT_LOG = "Security Audit Log"
PURGED_THROUGH = "purged-through"
PURGED_HASH = "purged-hash"
VERIFYING = "verifying the audit trail's hash chain"
VERIFY_PROGRESS_EVERY = 1000  # records between two progress reports (and checkpoints) of `verify`

# How far a verification is: (step in words, records checked, records in all). It may raise to stop
# the verification (a job's cancellation).
VerifyProgress = Callable[[str, int, int], None]

TABLES = """
CREATE TABLE IF NOT EXISTS audit_record (
    seq INTEGER PRIMARY KEY,
    recorded_at TEXT NOT NULL,
    event_at TEXT NOT NULL,
    event_id TEXT NOT NULL,
    action TEXT NOT NULL,
    outcome INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    user_id TEXT NOT NULL,
    address TEXT NOT NULL,
    patient_ids TEXT NOT NULL,
    study_uids TEXT NOT NULL,
    document TEXT NOT NULL,
    previous_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_record_event_at ON audit_record (event_at);
CREATE INDEX IF NOT EXISTS audit_record_user ON audit_record (user_id, seq);
CREATE INDEX IF NOT EXISTS audit_record_event ON audit_record (event_id, seq);
CREATE TABLE IF NOT EXISTS audit_patient (
    patient_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (patient_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS audit_patient_seq ON audit_patient (seq);
CREATE TABLE IF NOT EXISTS audit_cursor (
    name TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
);
"""
APPEND_ONLY_TABLES = ("audit_record", "audit_patient")
RECORD_COLUMNS = "seq, recorded_at, event_at, event_id, action, outcome, event_type, user_id, address, patient_ids"
RECORD_COLUMNS += ", study_uids"
INSERT_RECORD = (
    f"INSERT INTO audit_record ({RECORD_COLUMNS}, document, previous_hash, hash)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def trigger_statements(operation: str) -> list[str]:
    """The triggers refusing `operation` (UPDATE or DELETE) on the audit tables."""
    return [
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{operation.lower()} BEFORE {operation} ON {table}"
        f" BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END"
        for table in APPEND_ONLY_TABLES
    ]


@dataclass(frozen=True)
class AuditRecord:
    """One stored record: its place in the chain and the event it holds."""

    seq: int
    recorded_at: datetime
    event: AuditEvent
    previous_hash: str
    hash: str


@dataclass(frozen=True)
class AuditFilter:
    """What the console and the exports select on; empty fields select everything. `since` is
    inclusive, `until` exclusive (event times)."""

    patient: str = ""  # a patient ID (the value, without its issuer)
    user: str = ""  # the requestor's user ID (account, AE title, HL7 application)
    event: EventId | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class Break:
    """Where the chain breaks and why."""

    seq: int
    problem: str


@dataclass(frozen=True)
class ChainReport:
    checked: int
    first_seq: int
    last_seq: int
    last_hash: str
    breaks: tuple[Break, ...]

    @property
    def intact(self) -> bool:
        return not self.breaks


@dataclass(frozen=True)
class PurgeReport:
    removed: int
    purged_through: int  # 0 when nothing was old enough


def retention_cutoff(moment: datetime, months: int) -> datetime:
    """`moment` minus `months` calendar months (the day clipped to the month's length): records
    recorded before it are past the retention period."""
    month_index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(month_index, 12)
    days_in_month = [31, 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28, 31, 30, 31, 30,
                     31, 31, 30, 31, 30, 31][month]  # fmt: skip
    return moment.replace(year=year, month=month + 1, day=min(moment.day, days_in_month))


def patient_key(object_id: str) -> str:
    """What a patient is searched by: the ID value of its CX form."""
    return object_id.split("^", 1)[0]


def searchable(document: dict[str, Any]) -> tuple[Any, ...]:
    """The searchable columns of a record, all taken from its document (verify checks they agree)."""
    requestor = next((item for item in document["participants"] if item["requestor"]), None)
    patients = [item["id"] for item in document["objects"] if item["kind"] == ObjectKind.PATIENT.value]
    studies = [item["id"] for item in document["objects"] if item["kind"] == ObjectKind.STUDY.value]
    return (
        document["seq"],
        document["recorded"],
        document["at"],
        document["event"],
        document["action"],
        document["outcome"],
        document["type"],
        requestor["id"] if requestor else "",
        requestor["address"] if requestor else "",
        "\n".join(patients),
        "\n".join(studies),
    )


def patient_keys(document: dict[str, Any]) -> set[str]:
    return {patient_key(item["id"]) for item in document["objects"] if item["kind"] == ObjectKind.PATIENT.value}


def where_of(selection: AuditFilter) -> tuple[str, list[Any]]:
    """The WHERE clause (possibly empty) and its parameters."""
    conditions: list[str] = []
    parameters: list[Any] = []
    if selection.patient:
        conditions.append("seq IN (SELECT seq FROM audit_patient WHERE patient_id = ?)")
        parameters.append(selection.patient)
    if selection.user:
        conditions.append("user_id = ?")
        parameters.append(selection.user)
    if selection.event is not None:
        conditions.append("event_id = ?")
        parameters.append(selection.event.code)
    if selection.since is not None:
        conditions.append("event_at >= ?")
        parameters.append(utc_text(selection.since))
    if selection.until is not None:
        conditions.append("event_at < ?")
        parameters.append(utc_text(selection.until))
    return (" WHERE " + " AND ".join(conditions) if conditions else ""), parameters


def record_of(row: tuple[Any, ...]) -> AuditRecord:
    """An AuditRecord from (seq, recorded_at, document, previous_hash, hash)."""
    seq, recorded_at, document, previous_hash, hash_value = row
    return AuditRecord(
        seq, datetime.fromisoformat(recorded_at), event_of(json.loads(document)), previous_hash, hash_value
    )


def create_schema(connection: sqlite3.Connection) -> None:
    """Tables, indexes and append-only triggers, in one transaction (several processes may start at once)."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        for statement in TABLES.split(";"):
            if statement.strip():
                connection.execute(statement)
        for statement in trigger_statements("UPDATE") + trigger_statements("DELETE"):
            connection.execute(statement)
        connection.execute("COMMIT")
    except sqlite3.Error:
        connection.execute("ROLLBACK")
        raise


class AuditTrail:
    """The audit trail of one appliance, in the SQLite file at `path` (a `Recorder`)."""

    def __init__(self, path: Path, background: bool = False) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.pending: collections.deque[AuditEvent] = collections.deque()
        self.connection: sqlite3.Connection | None = None
        self.lost = 0
        try:
            self.database()
        except (sqlite3.Error, OSError) as error:
            LOGGER.error("audit trail %s cannot be opened (%s); events are kept in memory meanwhile", path, error)
        self.queue: queue.SimpleQueue[AuditEvent | None] = queue.SimpleQueue()
        self.writer: threading.Thread | None = None
        if background:
            self.writer = threading.Thread(target=self.write_queued, name="audit-writer", daemon=True)
            self.writer.start()

    def database(self) -> sqlite3.Connection:
        """The open connection (opened, and the schema created, on first use). Raises sqlite3.Error, OSError."""
        if self.connection is None:
            connection = connect(self.path)
            try:
                create_schema(connection)
            except sqlite3.Error:
                connection.close()
                raise
            self.connection = connection
        return self.connection

    def close(self) -> None:
        """Write what is queued or pending, then close the file."""
        if self.writer is not None:
            self.queue.put(None)
            self.writer.join(timeout=60)
            self.writer = None
        with self.lock:
            self.write_pending()
            if self.pending:
                LOGGER.error("%d audit event(s) could not be written before closing", len(self.pending))
            if self.connection is not None:
                self.connection.close()
                self.connection = None

    # --- writing

    def record(self, event: AuditEvent) -> None:
        """Append `event` (queue it, with a background writer); never raises (a failure is logged
        and the event written with the next one)."""
        if self.writer is not None:
            self.queue.put(event)
            return
        self.keep_and_write([event])

    def keep_and_write(self, events: list[AuditEvent]) -> None:
        with self.lock:
            self.pending.extend(events)
            while len(self.pending) > PENDING_LIMIT:
                self.pending.popleft()
                self.lost += 1
                LOGGER.error("audit trail unwritable: %d event(s) lost so far", self.lost)
            self.write_pending()

    def write_queued(self) -> None:
        """The background writer: append what is queued, in order, until `close` queues None."""
        while True:
            events = [self.queue.get()]
            while not self.queue.empty() and len(events) < 1000:
                events.append(self.queue.get())
            stopping = None in events
            self.keep_and_write([event for event in events if event is not None])
            if stopping:
                return

    def write_pending(self) -> None:
        """Write the events waiting, oldest first; stop (logged) at the first failure. Holds the lock."""
        while self.pending:
            try:
                self.append(self.pending[0])
            except (sqlite3.Error, OSError) as error:
                LOGGER.error(
                    "audit trail %s not written (%s); %d event(s) waiting", self.path, error, len(self.pending)
                )
                return
            except Exception:  # the caller is an image or a page: auditing must never make it fail
                LOGGER.exception("audit event dropped: it cannot be stored")
            self.pending.popleft()

    def append(self, event: AuditEvent) -> int:
        """One transaction: read the chain's tail, insert the next record. Returns its seq."""
        connection = self.database()
        connection.execute("BEGIN IMMEDIATE")
        try:
            seq = insert(connection, event, tail(connection))
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return seq

    def purge(self, before: datetime, requestor: Participant, *others: Participant) -> PurgeReport:
        """Remove the records recorded before `before`; append the chained purge record (requestor
        and `others` as its participants). Raises sqlite3.Error."""
        with self.lock:
            connection = self.database()
            connection.execute("BEGIN IMMEDIATE")
            try:
                report = purge_in_transaction(connection, before, (requestor, *others))
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        if report.removed:
            LOGGER.info("audit trail: %d record(s) up to seq %d purged", report.removed, report.purged_through)
        return report

    # --- reading

    def search(
        self, selection: AuditFilter = AuditFilter(), limit: int = 50, offset: int = 0, older_than: int | None = None
    ) -> list[AuditRecord]:
        """The records selected, newest first: `limit` of them after skipping `offset`, only those
        before seq `older_than` when given (keyset paging: the last seq of the previous page)."""
        where, parameters = where_of(selection)
        if older_than is not None:
            where += (" AND" if where else " WHERE") + " seq < ?"
            parameters.append(older_than)
        sql = f"SELECT seq, recorded_at, document, previous_hash, hash FROM audit_record{where}"
        with self.lock:
            rows = self.database().execute(f"{sql} ORDER BY seq DESC LIMIT ? OFFSET ?", [*parameters, limit, offset])
            return [record_of(row) for row in rows.fetchall()]

    def count(self, selection: AuditFilter = AuditFilter()) -> int:
        where, parameters = where_of(selection)
        with self.lock:
            (found,) = self.database().execute(f"SELECT count(*) FROM audit_record{where}", parameters).fetchone()
        return int(found)

    def records(
        self, selection: AuditFilter = AuditFilter(), after: int = 0, batch: int = 500
    ) -> Iterator[AuditRecord]:
        """Every selected record after seq `after`, oldest first, read `batch` at a time (exports, syslog)."""
        where, parameters = where_of(selection)
        sql = f"SELECT seq, recorded_at, document, previous_hash, hash FROM audit_record{where}"
        sql += (" AND" if where else " WHERE") + " seq > ? ORDER BY seq LIMIT ?"
        last = after
        while True:
            with self.lock:
                rows = self.database().execute(sql, [*parameters, last, batch]).fetchall()
            yield from (record_of(row) for row in rows)
            if len(rows) < batch:
                return
            last = rows[-1][0]

    def find(self, seq: int) -> AuditRecord | None:
        """The record `seq`, or None when there is none (never written, or purged)."""
        sql = "SELECT seq, recorded_at, document, previous_hash, hash FROM audit_record WHERE seq = ?"
        with self.lock:
            row = self.database().execute(sql, (seq,)).fetchone()
        return record_of(row) if row else None

    def cursor(self, name: str) -> int:
        """The last seq a reader named `name` has dealt with (0 at first): the syslog forwarder's place."""
        with self.lock:
            row = self.database().execute("SELECT seq FROM audit_cursor WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def move_cursor(self, name: str, seq: int) -> None:
        with self.lock:
            self.database().execute(
                "INSERT INTO audit_cursor (name, seq) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
                (name, seq),
            )

    def tail(self) -> tuple[int, str]:
        """The last record's seq and hash (0 and GENESIS when empty): what to anchor outside the box."""
        with self.lock:
            return tail(self.database())

    def verify(self, progress: VerifyProgress | None = None) -> ChainReport:
        """Recompute the whole chain; each break says which seq and what is wrong. Its own
        connection, so that this process's appends do not wait for it. `progress` is told how far
        it is every `VERIFY_PROGRESS_EVERY` records (what it raises stops the verification)."""
        connection = connect(self.path)
        try:
            connection.execute("BEGIN")  # one snapshot: appends by others go after it
            return verify_chain(connection, progress)
        finally:
            connection.close()


def verify_file(path: Path, progress: VerifyProgress | None = None) -> ChainReport:
    """The chain of the trail at `path` recomputed (`AuditTrail.verify`), the trail closed after:
    for the jobs and the quality-control report."""
    trail = AuditTrail(path)
    try:
        return trail.verify(progress)
    finally:
        trail.close()


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the audit file (created 0600 in a 0700 folder)."""
    if not path.parent.is_dir():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    connection = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_MILLISECONDS / 1000, isolation_level=None, check_same_thread=False
    )
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", f"busy_timeout={BUSY_TIMEOUT_MILLISECONDS}"):
        connection.execute(f"PRAGMA {pragma}")
    connection.execute("PRAGMA secure_delete=ON")  # purged records are overwritten, not left in free pages
    return connection


def tail(connection: sqlite3.Connection) -> tuple[int, str]:
    row = connection.execute("SELECT seq, hash FROM audit_record ORDER BY seq DESC LIMIT 1").fetchone()
    return (int(row[0]), str(row[1])) if row else (0, GENESIS)


def insert(connection: sqlite3.Connection, event: AuditEvent, last: tuple[int, str]) -> int:
    """Insert `event` after the record `last` (seq, hash) inside the caller's transaction."""
    seq, previous_hash = last[0] + 1, last[1]
    document = document_of(event, seq, datetime.now(UTC))
    text = canonical(document)
    connection.execute(
        INSERT_RECORD, (*searchable(document), text.decode("utf-8"), previous_hash, link(previous_hash, text))
    )
    connection.executemany(
        "INSERT INTO audit_patient (patient_id, seq) VALUES (?, ?)", [(key, seq) for key in patient_keys(document)]
    )
    return seq


def purge_in_transaction(
    connection: sqlite3.Connection, before: datetime, participants: tuple[Participant, ...]
) -> PurgeReport:
    """The purge, inside the caller's IMMEDIATE transaction: the DELETE triggers are dropped and
    created again within it, so no other connection ever sees the tables without them."""
    row = connection.execute(
        "SELECT max(seq), count(*) FROM audit_record WHERE recorded_at < ?", (utc_text(before),)
    ).fetchone()
    if row[0] is None:
        return PurgeReport(0, 0)
    through, removed = int(row[0]), int(row[1])
    last = tail(connection)
    (purged_hash,) = connection.execute("SELECT hash FROM audit_record WHERE seq = ?", (through,)).fetchone()
    for table in APPEND_ONLY_TABLES:
        connection.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
    connection.execute("DELETE FROM audit_patient WHERE seq <= ?", (through,))
    connection.execute("DELETE FROM audit_record WHERE seq <= ?", (through,))
    for statement in trigger_statements("DELETE"):
        connection.execute(statement)
    insert(connection, purge_event(through, purged_hash, removed, before, participants), last)
    return PurgeReport(removed, through)


def purge_event(
    through: int, purged_hash: str, removed: int, before: datetime, participants: tuple[Participant, ...]
) -> AuditEvent:
    """110101 Audit Log Used, action D: what the retention purge removed, and the hash it continues from."""
    log = ParticipantObject(
        ObjectKind.SECURITY_RESOURCE,
        AUDIT_LOG,
        AUDIT_LOG,
        details=(
            (PURGED_THROUGH, str(through)),
            (PURGED_HASH, purged_hash),
            ("purged-records", str(removed)),
            ("recorded-before", utc_text(before)),
        ),
    )
    return AuditEvent(EventId.AUDIT_LOG_USED, Action.DELETE, Outcome.SUCCESS, participants, (log,))


def purge_anchor(connection: sqlite3.Connection, first_seq: int) -> str | None:
    """The hash the first remaining record must follow after purges (None: no purge explains the gap)."""
    if first_seq == 1:
        return GENESIS
    rows = connection.execute(
        "SELECT document FROM audit_record WHERE event_id = ? AND action = ?",
        (EventId.AUDIT_LOG_USED.code, Action.DELETE.value),
    )
    for (text,) in rows:
        details = {
            kind: value
            for item in json.loads(text)["objects"]
            for kind, value in item["details"]
            if item["id"] == AUDIT_LOG
        }
        if details.get(PURGED_THROUGH) == str(first_seq - 1):
            return str(details.get(PURGED_HASH, ""))
    return None


def verify_chain(connection: sqlite3.Connection, progress: VerifyProgress | None = None) -> ChainReport:
    total = int(connection.execute("SELECT count(*) FROM audit_record").fetchone()[0]) if progress else 0
    if progress:
        progress(VERIFYING, 0, total)
    rows = connection.execute(f"SELECT {RECORD_COLUMNS}, document, previous_hash, hash FROM audit_record ORDER BY seq")
    patients = patient_rows(connection)
    breaks: list[Break] = []
    checked, first_seq, expected_seq, expected_hash = 0, 0, 0, ""
    for row in rows:
        seq = int(row[0])
        if not checked:
            first_seq, expected_seq = seq, seq
            expected_hash = purge_anchor(connection, seq) or ""
        problems = record_problems(row, expected_seq, expected_hash, patients)
        if problems:
            breaks.append(Break(seq, "; ".join(problems)))
        checked, expected_seq, expected_hash = checked + 1, seq + 1, str(row[-1])
        if progress and checked % VERIFY_PROGRESS_EVERY == 0:
            progress(VERIFYING, checked, total)
    if progress:
        progress(VERIFYING, checked, total)
    breaks.extend(Break(seq, "patient index row without a record") for seq in patients.rest())
    return ChainReport(checked, first_seq, expected_seq - 1 if checked else 0, expected_hash or GENESIS, tuple(breaks))


class PatientRows:
    """The audit_patient rows, walked in seq order beside the records (a merge join)."""

    def __init__(self, rows: Iterator[tuple[int, set[str]]]) -> None:
        self.rows = rows
        self.current: tuple[int, set[str]] | None = next(self.rows, None)

    def take(self, seq: int) -> tuple[set[str], list[int]]:
        """The patient keys indexed for `seq`, and the seqs before it that have rows but no record."""
        orphans: list[int] = []
        while self.current is not None and self.current[0] < seq:
            orphans.append(self.current[0])
            self.current = next(self.rows, None)
        if self.current is not None and self.current[0] == seq:
            found = self.current[1]
            self.current = next(self.rows, None)
            return found, orphans
        return set(), orphans

    def rest(self) -> list[int]:
        remaining = [] if self.current is None else [self.current[0]]
        remaining.extend(seq for seq, _keys in self.rows)
        self.current = None
        return remaining


def patient_rows(connection: sqlite3.Connection) -> PatientRows:
    cursor = connection.cursor()
    rows = cursor.execute("SELECT seq, patient_id FROM audit_patient ORDER BY seq, patient_id")
    grouped = (
        (int(seq), {str(key) for _seq, key in group}) for seq, group in itertools.groupby(rows, lambda row: row[0])
    )
    return PatientRows(grouped)


def record_problems(row: tuple[Any, ...], expected_seq: int, expected_hash: str, patients: PatientRows) -> list[str]:
    """What is wrong with one stored record, given the record before it."""
    seq, document_text, previous_hash, stored_hash = int(row[0]), str(row[-3]), str(row[-2]), str(row[-1])
    problems: list[str] = []
    indexed, orphans = patients.take(seq)
    problems.extend(f"patient index row of missing record {orphan}" for orphan in orphans)
    if seq != expected_seq:
        problems.append(f"record(s) {expected_seq}..{seq - 1} missing")
    if previous_hash != expected_hash:
        problems.append("does not follow the record before it (a record was removed, inserted or moved)")
    if link(previous_hash, document_text.encode("utf-8")) != stored_hash:
        problems.append("content does not match its hash (edited)")
    try:
        document = json.loads(document_text)
        agrees = tuple(row[:-3]) == searchable(document) and indexed == patient_keys(document)
    except (ValueError, KeyError, TypeError):
        agrees = False
    if not agrees:
        problems.append("searchable columns differ from its content (edited)")
    return problems


class DiscardingRecorder:
    """A recorder that keeps nothing: only for measuring what auditing costs (the benchmark)."""

    def record(self, event: AuditEvent) -> None:
        return None

    def close(self) -> None:
        return None
