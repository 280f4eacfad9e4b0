"""Each kind of job on a small archive (SQLite): verify, compress (the compression lock respected,
cancellable while it waits for it), the online index check (orphans adopted or set aside), and the
audit trail's verification."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from datagen import PATIENTS, encoded, make_instance
from sqlalchemy import Engine

from appliance.archive.index import Index
from appliance.archive.ingest import IncomingObject, Ingest, StoreOutcome
from appliance.archive.lossless import compression_lock
from appliance.archive.statistics import archive_statistics
from appliance.archive.storage import FileStore
from appliance.audit.events import Action, AuditEvent, EventId, Outcome, application, person
from appliance.audit.trail import AuditTrail
from appliance.config import Config, development_config
from appliance.db import create_index_engine, upgrade_schema
from appliance.jobs import get, latest, request_cancel, run_next, submit
from appliance.jobs.kinds import WAITING_FOR_LOCK


class Events:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def record(self, event: AuditEvent) -> None:
        self.events.append(event)


@dataclass
class Archive:
    engine: Engine
    config: Config
    files: FileStore
    paths: list[str]


@pytest.fixture()
def archive(tmp_path: Path) -> Iterator[Archive]:
    """Four uncompressed CT images of two patients, stored through the ingest."""
    config = development_config(tmp_path / "data")
    engine = create_index_engine(config.database_url)
    upgrade_schema(engine)
    files = FileStore(config.storage.data_directory, 0)
    ingest = Ingest(files, Index(engine))
    for number in range(4):
        dataset = make_instance("CT", PATIENTS[number % 2], seed=number)
        dataset.StudyDate = "20261101"
        incoming = IncomingObject(encoded(dataset), dataset.SOPInstanceUID, dataset.SOPClassUID, "TEST")
        assert ingest.store(incoming).outcome is StoreOutcome.STORED
    paths = sorted(str(path.relative_to(files.archive_directory)) for path in files.archive_directory.rglob("*.dcm"))
    yield Archive(engine, config, files, paths)
    engine.dispose()


def run(archive: Archive, kind: str) -> int:
    job_id = submit(archive.engine, kind, {}, "dr.martin")
    assert run_next(archive.engine, archive.config, Events())
    return job_id


def test_verify_keeps_the_counts_and_the_damaged_files(archive: Archive) -> None:
    archive.files.absolute(archive.paths[0]).unlink()
    done = get(archive.engine, run(archive, "verify"))
    assert done.state == "succeeded"
    assert {key: done.result[key] for key in ("verified", "damaged", "missing", "altered", "orphans", "intact")} == {
        "verified": 4, "damaged": 1, "missing": 1, "altered": 0, "orphans": 0, "intact": False}  # fmt: skip
    (missing,) = done.result["missing_files"]
    assert missing["path"] == archive.paths[0] and missing["patient_id"] in ("IPP0001", "IPP0002")
    assert (done.step, done.done, done.total) == ("looking for orphan files", 1, 1)


def test_compress_compresses_everything_not_yet_compressed(archive: Archive) -> None:
    done = get(archive.engine, run(archive, "compress"))
    assert done.state == "succeeded", done.error
    assert done.result["compressed"] == 4 and done.result["saved_bytes"] > 0
    assert archive_statistics(archive.engine).compressed_instances == 4
    verified = get(archive.engine, run(archive, "verify"))
    assert verified.result["intact"] is True
    again = get(archive.engine, run(archive, "compress"))
    assert again.result["compressed"] == 0 and again.total == 0


def test_compress_waits_for_the_compression_lock_and_hears_a_cancellation(archive: Archive) -> None:
    job_id = submit(archive.engine, "compress", {}, "dr.martin")
    with compression_lock(archive.files, wait=True):  # another compressor at work
        runner = threading.Thread(target=run_next, args=(archive.engine, archive.config, Events()))
        runner.start()
        deadline = threading.Event()
        while get(archive.engine, job_id).step != WAITING_FOR_LOCK:
            assert not deadline.wait(0.05) and runner.is_alive()
        request_cancel(archive.engine, job_id, "dr.durand")
        runner.join(timeout=30)
    cancelled = get(archive.engine, job_id)
    assert (cancelled.state, cancelled.error) == ("cancelled", "cancelled by dr.durand")
    assert archive_statistics(archive.engine).compressed_instances == 0


def test_the_online_index_check_adopts_orphans_and_sets_copies_aside(archive: Archive) -> None:
    day = archive.files.absolute(archive.paths[0]).parent
    shutil.copy(archive.files.absolute(archive.paths[0]), day / "copy-of-a-known-instance.dcm")
    stray = make_instance("CT", PATIENTS[2], seed=99)
    (day / "written-but-never-indexed.dcm").write_bytes(encoded(stray))
    done = get(archive.engine, run(archive, "reindex"))
    assert done.state == "succeeded", done.error
    assert {key: done.result[key] for key in ("orphans", "reindexed", "set_aside", "indexed_meanwhile")} == {
        "orphans": 2, "reindexed": 1, "set_aside": 1, "indexed_meanwhile": 0}  # fmt: skip
    assert done.result["reindexed_files"][0].endswith("written-but-never-indexed.dcm")
    assert archive_statistics(archive.engine).instances == 5
    assert any((archive.files.quarantine_directory / "orphans").rglob("copy-of-a-known-instance.dcm"))
    assert get(archive.engine, run(archive, "verify")).result["intact"] is True


def test_the_audit_verification_names_the_last_hash_and_each_break(archive: Archive) -> None:
    trail = AuditTrail(archive.config.audit.database)
    requestor = (person("dr.martin", "192.168.1.23"), application("appliance-web"))
    for _ in range(3):
        trail.record(AuditEvent(EventId.QUERY, Action.EXECUTE, Outcome.SUCCESS, requestor))
    done = get(archive.engine, run(archive, "verify-audit"))
    assert done.state == "succeeded" and done.percent == 100
    assert (done.result["checked"], done.result["chain_intact"], done.result["broken"]) == (3, True, 0)
    assert done.result["last_hash"] == trail.tail()[1] and done.result["last_seq"] == 3
    trail.close()
    with sqlite3.connect(trail.path) as connection:
        connection.execute("DROP TRIGGER audit_record_no_update")
        connection.execute("UPDATE audit_record SET user_id = 'someone' WHERE seq = 2")
    broken = get(archive.engine, run(archive, "verify-audit"))
    assert (broken.result["chain_intact"], broken.result["broken"]) == (False, 1)
    assert broken.result["breaks"] == [{"seq": 2, "problem": "searchable columns differ from its content (edited)"}]
    assert latest(archive.engine, "verify-audit") == broken
    assert latest(archive.engine, "reindex") is None
