"""One flush per image (issue 14, A3): the DICOM archive's SQLite index, on the files' file system,
commits a batch without the commit's own flush, and the `syncfs` that makes the batch's files
durable flushes that commit with them; nothing is answered before it returns. The rows are listed
as unsynced in their own transaction until the next commit; a failed sync takes them back, and at
start-up a listed row whose file never reached the disk whole is removed (`recover_unsynced`), so
that the sender's retry is stored anew."""

from __future__ import annotations

import ctypes
import errno
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from datagen import PATIENTS, encoded, make_instance
from pydicom.uid import generate_uid
from servers import wait_for
from sqlalchemy import Connection, Engine, create_engine, event, func, insert, select, text
from sqlalchemy.exc import IntegrityError

from appliance.archive import storage
from appliance.archive.group_commit import GroupCommit
from appliance.archive.index import Index, database_device
from appliance.archive.ingest import IncomingObject, Ingest, StoreOutcome
from appliance.archive.integrity import recover_unsynced
from appliance.archive.storage import FileStore, Unsynced
from appliance.db.schema import change, instance, patient, series, study, unsynced_instance

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="syncfs is Linux's")

FULL, NORMAL = 2, 1  # PRAGMA synchronous


def ct_object(study_uid: str = "", series_uid: str = "", number: int = 1, who: int = 1) -> tuple[bytes, str]:
    dataset = make_instance("CT", PATIENTS[who], study_uid or generate_uid(), series_uid or generate_uid(), number)
    dataset.Rows = dataset.Columns = 16
    dataset.PixelData = dataset.PixelData[: 16 * 16 * 2]
    return encoded(dataset), str(dataset.SOPInstanceUID)


def request(data: bytes, sop_instance_uid: str) -> IncomingObject:
    return IncomingObject(data, sop_instance_uid, "1.2.840.10008.5.1.4.1.1.2", "MODALITY")


def sharing(tmp_path: Path, engine: Engine) -> Ingest:
    return Ingest(FileStore(tmp_path / "data", 0), Index(engine, share_flush=True))


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(table)) or 0)


def listed(engine: Engine) -> set[str]:
    """The SOP Instance UIDs listed as unsynced."""
    statement = select(instance.c.sop_instance_uid).join(
        unsynced_instance, unsynced_instance.c.instance_pk == instance.c.id
    )
    with engine.connect() as connection:
        return set(connection.execute(statement).scalars())


def test_the_commit_comes_first_without_its_flush_then_one_syncfs_flushes_it(
    tmp_path: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    drivers: list[Any] = []
    real_syncfs = storage.SYNCFS
    assert real_syncfs is not None

    def syncfs(descriptor: int) -> int:
        events.append("syncfs")
        return real_syncfs(descriptor)

    def on_commit(connection: Any) -> None:
        driver = connection.connection.driver_connection
        drivers.append(driver)
        events.append(f"commit synchronous={driver.execute('PRAGMA synchronous').fetchone()[0]}")

    monkeypatch.setattr(storage, "SYNCFS", syncfs)
    event.listen(engine, "commit", on_commit)
    ingest = sharing(tmp_path, engine)
    data, uid = ct_object()
    assert ingest.store(request(data, uid)).outcome is StoreOutcome.STORED
    assert events == [f"commit synchronous={NORMAL}", "syncfs"]
    assert drivers[0].execute("PRAGMA synchronous").fetchone()[0] == FULL  # given back as it was
    assert listed(engine) == {uid}  # until the next commit
    other, other_uid = ct_object()
    assert ingest.store(request(other, other_uid)).outcome is StoreOutcome.STORED
    assert listed(engine) == {other_uid}


@pytest.fixture()
def release(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """`syncfs` held until this event is set."""
    released = threading.Event()
    real_syncfs = storage.SYNCFS
    assert real_syncfs is not None

    def held_syncfs(descriptor: int) -> int:
        released.wait(timeout=30)
        return real_syncfs(descriptor)

    monkeypatch.setattr(storage, "SYNCFS", held_syncfs)
    return released


def test_nothing_is_answered_before_the_sync_returns(tmp_path: Path, engine: Engine, release: threading.Event) -> None:
    ingest = sharing(tmp_path, engine)
    data, uid = ct_object()
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(ingest.store, request(data, uid))
        wait_for(lambda: count(engine, instance) == 1, "the rows to be committed")
        assert not answer.done()
        release.set()
        assert answer.result(timeout=30).outcome is StoreOutcome.STORED


def test_a_failed_sync_takes_the_rows_back_and_acknowledges_nothing(
    tmp_path: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_syncfs = storage.SYNCFS

    def refuse(_descriptor: int) -> int:
        ctypes.set_errno(errno.EIO)
        return -1

    monkeypatch.setattr(storage, "SYNCFS", refuse)
    ingest = sharing(tmp_path, engine)
    data, uid = ct_object()
    assert ingest.store(request(data, uid)).outcome is StoreOutcome.FAILED
    assert [count(engine, table) for table in (instance, series, study, unsynced_instance, change)] == [0] * 5
    assert len(ingest.files.pending_files()) == 1  # kept, for the next start to check and index
    monkeypatch.setattr(storage, "SYNCFS", real_syncfs)
    assert ingest.store(request(data, uid)).outcome is StoreOutcome.STORED  # the sender's retry
    assert ingest.index.stored_instance(uid) is not None


def test_a_batch_with_a_file_synced_otherwise_keeps_the_flushed_commit(
    tmp_path: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without `syncfs`, files and folders are synced one by one, which does not flush the index:
    its commit flushes itself, after them, as before."""
    events: list[str] = []
    monkeypatch.setattr(storage, "SYNCFS", None)
    event.listen(engine, "commit", lambda _connection: events.append("commit"))
    ingest = sharing(tmp_path, engine)
    data, uid = ct_object()
    assert ingest.store(request(data, uid)).outcome is StoreOutcome.STORED
    assert events == ["commit"] and listed(engine) == set()


def test_only_a_sqlite_file_shares_its_flush(tmp_path: Path, engine: Engine) -> None:
    assert database_device(engine) == os.stat(tmp_path / "index.sqlite").st_dev
    assert database_device(create_engine("sqlite://")) is None
    assert database_device(create_engine("postgresql+psycopg://appliance@127.0.0.1/nothing")) is None
    assert Index(engine).group.unflushed is None  # the others (STOW-RS, the CLI): as before
    assert Index(engine, share_flush=True).group.unflushed is not None


def test_threads_storing_at_once_each_get_their_answer_and_leave_one_batch_listed(
    tmp_path: Path, engine: Engine
) -> None:
    ingest = sharing(tmp_path, engine)
    study_uid, series_uid = generate_uid(), generate_uid()
    objects = [ct_object(study_uid, series_uid, number) for number in range(1, 25)]
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda pair: ingest.store(request(*pair)).outcome, objects))
    assert outcomes == [StoreOutcome.STORED] * len(objects)
    assert count(engine, instance) == len(objects)
    assert 1 <= len(listed(engine)) <= ingest.index.group.statistics.largest  # the last batch only
    assert ingest.index.group.statistics.syncs == ingest.index.group.statistics.batches


def crash_before_the_sync(engine: Engine, uids: list[str]) -> None:
    """What a power cut between a batch's commit and its sync can leave: its rows listed."""
    with engine.begin() as connection:
        pks = connection.execute(select(instance.c.id).where(instance.c.sop_instance_uid.in_(uids))).scalars()
        connection.execute(insert(unsynced_instance), [{"instance_pk": pk} for pk in pks])


def test_at_start_a_listed_instance_whose_file_is_whole_stays(tmp_path: Path, engine: Engine) -> None:
    ingest = Ingest(FileStore(tmp_path / "data", 0), Index(engine))
    data, uid = ct_object()
    assert ingest.store(request(data, uid)).outcome is StoreOutcome.STORED
    crash_before_the_sync(engine, [uid])
    assert recover_unsynced(engine, ingest.files) == []
    assert listed(engine) == set() and ingest.index.stored_instance(uid) is not None


def test_at_start_a_listed_instance_whose_file_never_reached_the_disk_is_removed_and_stored_again(
    tmp_path: Path, engine: Engine
) -> None:
    """One image of a two-image series lost (its file missing), and a study of another patient whose
    file was cut short: both leave the index, with their study's and series' counts and the patient
    created for it (not another one without anything); the retry is stored."""
    ingest = Ingest(FileStore(tmp_path / "data", 0), Index(engine))
    study_uid, series_uid = generate_uid(), generate_uid()
    kept, lost = ct_object(study_uid, series_uid, 1), ct_object(study_uid, series_uid, 2)
    alone = ct_object(who=2)
    with engine.begin() as connection:  # a patient without anything, not the recovery's business
        moment = datetime.now(UTC)
        connection.execute(insert(patient).values(patient_id="ELSEWHERE", created_at=moment, updated_at=moment))
    for data, uid in (kept, lost, alone):
        assert ingest.store(request(data, uid)).outcome is StoreOutcome.STORED
    paths = {uid: ingest.index.stored_instance(uid).path for _data, uid in (kept, lost, alone)}  # type: ignore[union-attr]
    crash_before_the_sync(engine, [kept[1], lost[1], alone[1]])
    ingest.files.absolute(paths[lost[1]]).unlink()
    os.truncate(ingest.files.absolute(paths[alone[1]]), 0)

    removed = recover_unsynced(engine, ingest.files)

    assert sorted(removed) == sorted([paths[lost[1]], paths[alone[1]]])
    assert not ingest.files.absolute(paths[alone[1]]).exists()
    assert ingest.index.stored_instance(kept[1]) is not None and listed(engine) == set()
    assert ingest.index.stored_instance(lost[1]) is None and ingest.index.stored_instance(alone[1]) is None
    with engine.connect() as connection:
        studies = connection.execute(
            select(study.c.number_of_series, study.c.number_of_instances, study.c.size_bytes)
        ).all()
        series_counts = connection.execute(select(series.c.number_of_instances)).scalars().all()
        changed = set(connection.execute(select(change.c.sop_instance_uid)).scalars())
    assert [(row.number_of_series, row.number_of_instances, row.size_bytes) for row in studies] == [
        (1, 1, len(kept[0]))
    ]
    assert series_counts == [1]
    assert changed == {kept[1]}
    with engine.connect() as connection:
        assert set(connection.execute(select(patient.c.patient_id)).scalars()) == {"IPP0002", "ELSEWHERE"}
    for data, uid in (lost, alone):  # the senders had no answer: they send again
        assert ingest.store(request(data, uid)).outcome is StoreOutcome.STORED
    assert count(engine, instance) == 3
    with engine.connect() as connection:
        assert connection.scalar(select(func.sum(study.c.number_of_instances))) == 3


@dataclass(frozen=True)
class ProbeMarks:
    """`group_commit.Unflushed` on a table of names (`probe`), marks in `probe_mark`."""

    engine: Engine
    device: int

    def mark(self, connection: Connection, results: list[Any]) -> None:
        for name in results:
            connection.execute(text("INSERT INTO probe_mark (name) VALUES (:name)"), {"name": name})

    def clear(self, connection: Connection, results: list[Any]) -> None:
        for name in results:
            connection.execute(text("DELETE FROM probe_mark WHERE name = :name"), {"name": name})

    def undo(self, results: list[Any]) -> None:
        with self.engine.begin() as connection:
            for name in results:
                connection.execute(text("DELETE FROM probe WHERE name = :name"), {"name": name})
                connection.execute(text("DELETE FROM probe_mark WHERE name = :name"), {"name": name})


@pytest.fixture()
def probe_group(tmp_path: Path, engine: Engine) -> GroupCommit:
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE probe (name VARCHAR(32) PRIMARY KEY)"))
        connection.execute(text("CREATE TABLE probe_mark (name VARCHAR(32) PRIMARY KEY)"))
    marks = ProbeMarks(engine, os.stat(tmp_path / "index.sqlite").st_dev)
    return GroupCommit(engine, threading.Lock(), unflushed=marks)


def names(engine: Engine, table: str) -> set[str]:
    with engine.connect() as connection:
        return set(connection.execute(text(f"SELECT name FROM {table}")).scalars())


def insert_name(name: str) -> Callable[[Connection], str]:
    def work(connection: Connection) -> str:
        connection.execute(text("INSERT INTO probe (name) VALUES (:name)"), {"name": name})
        return name

    return work


def unsynced_item(files: FileStore) -> Unsynced:
    """One object staged and linked into place as the ingest does it, not synced yet."""
    data, uid = ct_object()
    written = files.write_durably(data, f"2026/12/07/s/{uid}.dcm", defer_sync=True, staged=files.stage(data))
    assert written.unsynced is not None and written.unsynced.staged is not None
    return written.unsynced


def test_a_failing_member_of_a_batch_committed_before_its_sync_fails_alone(
    tmp_path: Path, engine: Engine, probe_group: GroupCommit, release: threading.Event
) -> None:
    """The batch's transaction is rolled back (its marks with it); its files are synced, then each
    member runs alone, with a flushed commit of its own."""
    files = FileStore(tmp_path / "data", 0)
    with ThreadPoolExecutor(4) as pool:
        leader = pool.submit(probe_group.run, insert_name("leader"), [unsynced_item(files)])
        wait_for(lambda: names(engine, "probe") == {"leader"}, "the leader's commit, before its sync")
        members = [
            pool.submit(probe_group.run, insert_name(name), [unsynced_item(files)]) for name in ("one", "leader", "two")
        ]
        wait_for(lambda: len(probe_group.queue) == 3, "three writers to queue")
        release.set()
        assert leader.result(timeout=30) == "leader"
        assert members[0].result(timeout=30) == "one" and members[2].result(timeout=30) == "two"
        with pytest.raises(IntegrityError):
            members[1].result(timeout=30)
    assert names(engine, "probe") == {"leader", "one", "two"}
    assert names(engine, "probe_mark") == {"leader"}  # the members alone were flushed: nothing to list
    assert probe_group.run(insert_name("last"), [unsynced_item(files)]) == "last"
    assert names(engine, "probe_mark") == {"last"}


def test_a_member_whose_file_could_not_be_made_durable_fails_alone_and_its_row_is_taken_back(
    tmp_path: Path, engine: Engine, probe_group: GroupCommit, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = FileStore(tmp_path / "data", 0)
    items = {name: unsynced_item(files) for name in ("one", "two", "three")}
    assert storage.SYNC_FILE_RANGE is not None and items["two"].staged is not None
    failing = {items["two"].staged.descriptor}
    real = storage.SYNC_FILE_RANGE

    def sync_file_range(descriptor: int, *arguments: Any) -> int:
        if descriptor in failing and arguments[-1] == storage.SYNC_FILE_RANGE_WAIT:
            ctypes.set_errno(errno.EIO)
            return -1
        return real(descriptor, *arguments)

    monkeypatch.setattr(storage, "SYNC_FILE_RANGE", sync_file_range)
    release = threading.Event()
    with ThreadPoolExecutor(4) as pool:
        held = pool.submit(probe_group.run, lambda connection: release.wait(timeout=30) and "held")
        wait_for(lambda: probe_group.leading, "the first batch to start")
        answers = {name: pool.submit(probe_group.run, insert_name(name), [item]) for name, item in items.items()}
        wait_for(lambda: len(probe_group.queue) == 3, "three writers to queue")
        release.set()
        assert held.result(timeout=30) == "held"
        assert answers["one"].result(timeout=30) == "one" and answers["three"].result(timeout=30) == "three"
        with pytest.raises(OSError) as raised:
            answers["two"].result(timeout=30)
    assert raised.value.errno == errno.EIO
    assert names(engine, "probe") == {"one", "three"}
    assert names(engine, "probe_mark") == {"one", "three"}  # until the next commit
