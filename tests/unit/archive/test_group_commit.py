"""Group commit (issue 14): the index writes of objects arriving together share one commit; each
writer returns only once the commit covering its rows is done; a failed commit fails every member
and acknowledges nothing; a failing member fails alone."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from datagen import PATIENTS, encoded, make_instance
from pydicom.uid import generate_uid
from servers import wait_for
from sqlalchemy import Connection, Engine, event, func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from appliance.archive.group_commit import GroupCommit
from appliance.archive.index import Index
from appliance.archive.ingest import Ingest, StoreOutcome
from appliance.archive.integrity import adopt_pending
from appliance.archive.storage import FileStore
from appliance.db import create_index_engine, upgrade_schema
from appliance.db.schema import instance

FOLLOWERS = 5


@pytest.fixture(params=["sqlite", "postgresql"])
def probe_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An index engine (SQLite WAL or PostgreSQL) with a small table of its own."""
    url = (
        f"sqlite:///{tmp_path / 'probe.sqlite'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgresql_url")
    )
    engine = create_index_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS probe"))
        connection.execute(text("CREATE TABLE probe (name VARCHAR(32) PRIMARY KEY)"))
    yield engine
    with engine.begin() as connection:  # the PostgreSQL database is the session's: leave it as found
        connection.execute(text("DROP TABLE IF EXISTS probe"))
    engine.dispose()


def insert(name: str) -> Callable[[Connection], str]:
    def work(connection: Connection) -> str:
        connection.execute(text("INSERT INTO probe (name) VALUES (:name)"), {"name": name})
        return name

    return work


def committed(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.execute(text("SELECT name FROM probe")).scalars())


def held_leader(group: GroupCommit, release: threading.Event, pool: ThreadPoolExecutor) -> Any:
    """A leader whose writes wait for `release`: the writers arriving meanwhile queue behind it."""

    def slow(connection: Connection) -> str:
        release.wait(timeout=30)
        return insert("leader")(connection)

    leader = pool.submit(group.run, slow)
    wait_for(lambda: group.leading, "the leader to start its batch")
    return leader


def test_followers_wait_for_the_leaders_commit_and_share_one(probe_engine: Engine) -> None:
    group = GroupCommit(probe_engine, threading.Lock())
    release = threading.Event()
    with ThreadPoolExecutor(FOLLOWERS + 1) as pool:
        leader = held_leader(group, release, pool)
        followers = [pool.submit(group.run, insert(f"follower{number}")) for number in range(FOLLOWERS)]
        wait_for(lambda: len(group.queue) == FOLLOWERS, "the followers to queue")
        assert not any(follower.done() for follower in followers)  # nothing answered before a commit
        assert committed(probe_engine) == set()
        release.set()
        assert leader.result(timeout=30) == "leader"
        names = {follower.result(timeout=30) for follower in followers}
    assert names == {f"follower{number}" for number in range(FOLLOWERS)}
    assert committed(probe_engine) == names | {"leader"}
    assert (group.statistics.batches, group.statistics.largest) == (2, FOLLOWERS)  # the leader's, then one


def test_a_failed_commit_fails_every_member_and_commits_nothing(probe_engine: Engine) -> None:
    group = GroupCommit(probe_engine, threading.Lock())
    release = threading.Event()

    def refuse(_connection: Any) -> None:
        raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    with ThreadPoolExecutor(FOLLOWERS + 1) as pool:
        leader = held_leader(group, release, pool)
        followers = [pool.submit(group.run, insert(f"follower{number}")) for number in range(FOLLOWERS)]
        wait_for(lambda: len(group.queue) == FOLLOWERS, "the followers to queue")
        event.listen(probe_engine, "commit", refuse)
        release.set()
        with pytest.raises(OperationalError):
            leader.result(timeout=30)
        for follower in followers:
            with pytest.raises(OperationalError):
                follower.result(timeout=30)
        event.remove(probe_engine, "commit", refuse)
    assert committed(probe_engine) == set()
    assert group.run(insert("afterwards")) == "afterwards"  # the next batch commits again
    assert committed(probe_engine) == {"afterwards"}


def test_a_failing_member_fails_alone(probe_engine: Engine) -> None:
    group = GroupCommit(probe_engine, threading.Lock())
    group.run(insert("taken"))
    release = threading.Event()
    with ThreadPoolExecutor(4) as pool:
        leader = held_leader(group, release, pool)
        good = [pool.submit(group.run, insert(name)) for name in ("one", "two")]
        wait_for(lambda: len(group.queue) == 2, "two writers to queue")
        bad = pool.submit(group.run, insert("taken"))  # a uniqueness conflict
        wait_for(lambda: len(group.queue) == 3, "the third writer to queue")
        release.set()
        leader.result(timeout=30)
        with pytest.raises(IntegrityError):
            bad.result(timeout=30)
        assert [future.result(timeout=30) for future in good] == ["one", "two"]
    assert committed(probe_engine) == {"taken", "leader", "one", "two"}


def ct_objects(count: int) -> list[bytes]:
    study_uid, series_uid = generate_uid(), generate_uid()
    objects = []
    for number in range(1, count + 1):
        dataset = make_instance("CT", PATIENTS[1], study_uid, series_uid, number)
        dataset.Rows = dataset.Columns = 16
        dataset.PixelData = dataset.PixelData[: 16 * 16 * 2]
        objects.append(encoded(dataset))
    return objects


def store_all(ingest: Ingest, objects: list[bytes]) -> list[StoreOutcome]:
    def store(data: bytes) -> StoreOutcome:
        return ingest.store_object(data, "MODALITY").outcome

    with ThreadPoolExecutor(len(objects)) as pool:
        return list(pool.map(store, objects))


def test_ingest_when_the_commit_fails_answers_failure_and_keeps_every_file(tmp_path: Path) -> None:
    """Every store of the batch answers FAILED (A700 at the DICOM edge: nothing acknowledged); the
    files stay with their pending links, and the next start indexes them (`adopt_pending`)."""
    engine = create_index_engine(f"sqlite:///{tmp_path / 'index.sqlite'}")
    upgrade_schema(engine)
    files = FileStore(tmp_path / "data", 0)
    ingest = Ingest(files, Index(engine))

    def refuse(_connection: Any) -> None:
        raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    objects = ct_objects(6)
    event.listen(engine, "commit", refuse)
    assert store_all(ingest, objects) == [StoreOutcome.FAILED] * len(objects)
    event.remove(engine, "commit", refuse)
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(instance)) == 0
    assert len(files.pending_files()) == len(objects)
    assert len(adopt_pending(engine, files).adopted) == len(objects)
    assert store_all(ingest, objects) == [StoreOutcome.DUPLICATE_IDENTICAL] * len(objects)
    engine.dispose()


def test_ingest_from_many_threads_commits_in_batches(tmp_path: Path) -> None:
    engine = create_index_engine(f"sqlite:///{tmp_path / 'index.sqlite'}")
    upgrade_schema(engine)
    files = FileStore(tmp_path / "data", 0)
    index = Index(engine)
    objects = ct_objects(24)
    assert store_all(Ingest(files, index), objects) == [StoreOutcome.STORED] * len(objects)
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(instance)) == len(objects)
    assert index.group.statistics.members == len(objects)
    assert index.group.statistics.syncs <= index.group.statistics.batches  # one series, one folder
    assert files.pending_files() == []
    engine.dispose()
