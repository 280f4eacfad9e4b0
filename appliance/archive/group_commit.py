"""Group commit: the index writes of objects arriving together share one commit (A3, issue 14).

Every durable commit costs a flush of the write-ahead log to the disk (SQLite WAL with
synchronous=FULL, PostgreSQL's WAL flush), and the file written before it more flushes (its bytes,
its folder). Several associations storing at once used to queue behind each other's flushes. Here
the writers of one process join a batch: the first one to arrive while no commit is running leads.
It makes the batch's files durable at once (`storage.make_durable`: one `syncfs` for the staged
files and their folders, or each folder synced once), runs every member's writes in one transaction
and commits it once; the others (followers) wait meanwhile, and the members arriving during that
commit form the next batch.
A lone writer is its own batch, committed at once, so nothing waits for a timer unless
`window_seconds` asks the leader to wait that long for company.

Each member learns its own outcome only once the commit covering its rows returned: the archive
answers success after that (acknowledgement after commit, as before). When a member's writes fail,
the transaction is rolled back and every member runs again alone, in its own transaction, so one
bad object (or a uniqueness conflict with another process) fails only itself. When the commit (or a
sync) fails, every member of the batch gets that error: none of them is acknowledged; a member whose
own file could not be written out fails alone, before the transaction.

Batches are per process: other processes writing the same index (the web application's STOW-RS,
the worker) take their turn through the database's own locking, as before.

One flush instead of two (`Unflushed`, the DICOM archive's SQLite index when it lives on the files'
file system): a batch whose every file waits for the file system's sync commits first, without the
commit's own flush of the WAL, and then makes its files durable; that `syncfs` flushes the WAL with
them, so each member is still answered only once its file and its rows are both on the disk. Until
the sync returned, a crash could leave rows on the disk whose file is not: the same transaction
lists the batch's instances as unsynced, the next one drops them from the list, and the start-up
check (`integrity.recover_unsynced`) looks at the files of those still listed. When that sync fails,
the members fail (nothing acknowledged) and their rows are removed again (`Unflushed.undo`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Connection, Engine

from appliance.archive.storage import Unsynced, make_durable, synced_with

LOGGER = logging.getLogger(__name__)

Result = TypeVar("Result")


@dataclass
class Member(Generic[Result]):
    """One writer's part of a batch: its writes, what to make durable first, and its outcome."""

    work: Callable[[Connection], Result]
    unsynced: tuple[Unsynced, ...]
    done: bool = False
    result: Result | None = None
    error: BaseException | None = None

    def succeed(self, result: Result) -> None:
        self.result, self.done = result, True

    def fail(self, error: BaseException) -> None:
        self.error, self.done = error, True

    def outcome(self) -> Result:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


@dataclass
class BatchStatistics:
    """How many batches and members were committed (for tests and benchmarks)."""

    batches: int = 0
    members: int = 0
    largest: int = 0
    syncs: int = 0  # of files and folders, before the commits (each commit's own flush not counted)

    def add(self, size: int, syncs: int) -> None:
        self.batches += 1
        self.members += size
        self.largest = max(self.largest, size)
        self.syncs += syncs


class Unflushed(Protocol):
    """What lets a batch commit before its files are synced: the file system of the database (the
    batch's sync must cover it), and how its rows are listed as unsynced until that sync returned."""

    @property
    def device(self) -> int:
        """The file system (`st_dev`) the database is on."""
        ...

    def mark(self, connection: Connection, results: list[Any]) -> None:
        """List the rows the members wrote (their results) as unsynced, in their transaction."""
        ...

    def clear(self, connection: Connection, results: list[Any]) -> None:
        """Drop from that list the rows of batches whose sync has returned."""
        ...

    def undo(self, results: list[Any]) -> None:
        """Remove the rows of members whose files could not be made durable, in a committed (and
        flushed) transaction of its own."""
        ...


@dataclass
class GroupCommit:
    """The batches of one process on one engine; `lock` serialises them with the index's other
    writes (SQLite has one writer)."""

    engine: Engine
    lock: threading.Lock
    window_seconds: float = 0.0
    unflushed: Unflushed | None = None
    statistics: BatchStatistics = field(default_factory=BatchStatistics)
    condition: threading.Condition = field(default_factory=threading.Condition)
    queue: list[Member[Any]] = field(default_factory=list)
    leading: bool = False
    synced: list[Any] = field(default_factory=list)  # results of batches synced since the last commit

    def run(self, work: Callable[[Connection], Result], unsynced: Iterable[Unsynced] = ()) -> Result:
        """Run `work` in a committed transaction, after making `unsynced` durable; return its result
        once committed. Raises what `work` raised when run alone, the sync's error, or the commit's."""
        member: Member[Result] = Member(work, tuple(unsynced))
        with self.condition:
            self.queue.append(member)
            while self.leading and not member.done:
                self.condition.wait()
            if member.done:
                return member.outcome()
            self.leading = True
        try:
            self.lead()
        finally:
            with self.condition:
                self.leading = False
                self.condition.notify_all()
        return member.outcome()

    def lead(self) -> None:
        """Take everything queued so far (after the window, if any) and commit it as one batch."""
        if self.window_seconds > 0:
            time.sleep(self.window_seconds)
        with self.condition:
            batch, self.queue = self.queue, []
        try:
            self.commit(batch)
        except BaseException as error:  # never leave a member waiting without an outcome
            for member in batch:
                if not member.done:
                    member.fail(error)
            raise

    def commit(self, batch: list[Member[Any]]) -> None:
        if self.flush_shared(batch):
            self.commit_then_sync(batch)
            return
        batch = self.made_durable(batch)
        if not batch:
            return
        with self.lock:
            results = self.batch_results(batch)
        if results is not None:
            for member, result in zip(batch, results, strict=True):
                member.succeed(result)

    def flush_shared(self, batch: list[Member[Any]]) -> bool:
        """Whether the batch's sync will flush the database too: every member has files waiting
        for one `syncfs` of the database's file system."""
        if self.unflushed is None:
            return False
        device = self.unflushed.device
        return all(member.unsynced and all(synced_with(item, device) for item in member.unsynced) for member in batch)

    def commit_then_sync(self, batch: list[Member[Any]]) -> None:
        """Commit without flushing, then sync the files and the commit at once; answer each member
        after that, and take back the rows of members whose files could not be made durable."""
        with self.lock:
            results = self.batch_results(batch, flush=False)
        if results is None:
            return
        self.made_durable(batch)  # fails the members whose files could not be made durable
        lost = []
        for member, result in zip(batch, results, strict=True):
            if member.done:
                lost.append(result)
            else:
                member.succeed(result)
                self.synced.append(result)
        if lost:
            self.take_back(lost)

    def take_back(self, results: list[Any]) -> None:
        assert self.unflushed is not None
        try:
            with self.lock:
                self.unflushed.undo(results)
        except Exception:  # still listed as unsynced: the next start checks their files
            LOGGER.exception("rows of %d unacknowledged object(s) could not be removed", len(results))

    def made_durable(self, batch: list[Member[Any]]) -> list[Member[Any]]:
        """Make the batch's files durable; fail each member whose writes could not be, and return
        the others."""
        items = [item for member in batch for item in member.unsynced]
        durability = make_durable(items)
        self.statistics.add(len(batch), durability.syncs)
        errors = iter(durability.errors)
        durable = []
        for member in batch:
            own = [next(errors) for _item in member.unsynced]
            error = next((error for error in own if error is not None), None)
            if error is None:
                durable.append(member)
            else:
                member.fail(error)
        return durable

    def batch_results(self, batch: list[Member[Any]], flush: bool = True) -> list[Any] | None:
        """Every member's writes in one transaction, committed once (without its own flush unless
        `flush`); None when the members had to be run alone (their outcomes are set) or the commit
        failed (every member failed)."""
        with self.engine.connect() as connection:
            if not flush:
                set_synchronous(connection, "NORMAL")
            try:
                return self.transaction_results(connection, batch, flush)
            finally:
                if not flush and not connection.invalidated:
                    set_synchronous(connection, "FULL")

    def transaction_results(self, connection: Connection, batch: list[Member[Any]], flush: bool) -> list[Any] | None:
        transaction = connection.begin()
        try:
            results = [member.work(connection) for member in batch]
            self.list_unsynced(connection, results, flush)
        except Exception as error:
            transaction.rollback()
            if len(batch) == 1:
                batch[0].fail(error)
            else:
                self.run_alone(batch if flush else self.made_durable(batch))
            return None
        try:
            transaction.commit()
        except Exception as error:
            connection.invalidate()  # closed, not pooled: no half-done transaction lives on
            fail_all(batch, error)
            return None
        self.synced.clear()
        return results

    def list_unsynced(self, connection: Connection, results: list[Any], flush: bool) -> None:
        """Drop the rows synced since the last commit from the unsynced list; add this batch's when
        its commit is not flushed."""
        if self.unflushed is None:
            return
        if self.synced:
            self.unflushed.clear(connection, self.synced)
        if not flush:
            self.unflushed.mark(connection, results)

    def run_alone(self, batch: list[Member[Any]]) -> None:
        """After a failed batch: each member in its own transaction, each with its own outcome."""
        for member in batch:
            try:
                with self.engine.begin() as connection:
                    member.succeed(member.work(connection))
            except Exception as error:
                member.fail(error)


def set_synchronous(connection: Connection, level: str) -> None:
    """SQLite's `synchronous` for this connection, outside any transaction (on the driver itself:
    through SQLAlchemy the statement would begin one)."""
    driver = connection.connection.driver_connection
    assert driver is not None
    driver.execute(f"PRAGMA synchronous={level}")


def fail_all(batch: list[Member[Any]], error: BaseException) -> None:
    for member in batch:
        member.fail(error)
