"""Long jobs end to end: the real background worker runs a verify job and a long compress job
queued by `appliance jobs start`, whose progress is seen in its row and which `appliance jobs
cancel` stops; and the `jobs` commands in process (list, show, cancel, start following a job)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from datagen import PATIENTS, encoded, make_instance
from servers import Daemon, archive_config, cli, wait_for, write_config

from appliance import jobs
from appliance.archive.index import Index
from appliance.archive.ingest import IncomingObject, Ingest, StoreOutcome
from appliance.archive.statistics import archive_statistics
from appliance.archive.storage import FileStore
from appliance.audit.events import AuditEvent, ObjectKind
from appliance.audit.trail import AuditTrail
from appliance.cli import command_line_user, main
from appliance.config import Config, development_config, load_config
from appliance.daemons.runtime import open_index


def ingest_images(config: Config, count: int) -> None:
    """`count` uncompressed CT images, stored the way the archive stores them."""
    engine = open_index(config)
    ingest = Ingest(FileStore(config.storage.data_directory, 0), Index(engine))
    for number in range(count):
        dataset = make_instance("CT", PATIENTS[number % 3], instance_number=number + 1, seed=number)
        incoming = IncomingObject(encoded(dataset), dataset.SOPInstanceUID, dataset.SOPClassUID, "TEST")
        assert ingest.store(incoming).outcome is StoreOutcome.STORED
    engine.dispose()


def job_of(config: Config, job_id: int) -> jobs.Job:
    engine = open_index(config)
    try:
        return jobs.get(engine, job_id)
    finally:
        engine.dispose()


def job_audit(config: Config) -> list[AuditEvent]:
    """The audit trail's events about jobs, newest first."""
    records = AuditTrail(config.audit.database).search(limit=1000)
    return [record.event for record in records if any(item.kind == ObjectKind.JOB for item in record.event.objects)]


def test_the_worker_runs_a_verify_job_queued_from_the_command_line(tmp_path: Path) -> None:
    config_path = write_config(tmp_path / "a.yaml", archive_config(tmp_path / "data", 1))
    ingest_images(load_config(config_path), 12)
    worker = Daemon("appliance.daemons.worker", config_path, tmp_path / "worker.log").start()
    try:
        followed = cli(config_path, "jobs", "start", "verify")
    finally:
        worker.stop()
    assert "job 1 (verify) queued" in followed.stderr
    assert " verify    succeeded  100%" in followed.stdout
    assert "  verified: 12\n" in followed.stdout and "  damaged: 0\n" in followed.stdout
    done = job_of(load_config(config_path), 1)
    assert (done.started_by, done.result["intact"]) == (command_line_user(), True)
    assert (done.step, done.done, done.total) == ("looking for orphan files", 1, 1)
    assert "Traceback" not in worker.log()
    trail = AuditTrail(load_config(config_path).audit.database)
    job_events = [
        record.event
        for record in trail.search()
        if record.event.objects and record.event.objects[0].kind == ObjectKind.JOB
    ]
    assert len(job_events) == 2  # its start and its end
    assert all(event.requestor and event.requestor.user_id == command_line_user() for event in job_events)


def test_a_long_compress_job_shows_its_progress_and_is_cancelled(tmp_path: Path) -> None:
    config = archive_config(tmp_path / "data", 1, lossless={"enabled": False})  # compressed in the job's thread
    config_path = write_config(tmp_path / "a.yaml", config)
    loaded = load_config(config_path)
    ingest_images(loaded, 120)
    worker = Daemon("appliance.daemons.worker", config_path, tmp_path / "worker.log").start()
    try:
        assert "job 1 (compress) queued" in cli(config_path, "jobs", "start", "compress", "--detach").stderr
        wait_for(lambda: job_of(loaded, 1).done > 0, "the first images compressed")
        running = job_of(loaded, 1)
        assert running.state == "running" and running.total == 120 and 0 < running.percent < 100
        assert running.step == "compressing images"
        assert "cancellation requested" in cli(config_path, "jobs", "cancel", "1").stdout
        wait_for(lambda: job_of(loaded, 1).finished, "the job to stop")
    finally:
        worker.stop()
    cancelled = job_of(loaded, 1)
    assert (cancelled.state, cancelled.error) == ("cancelled", f"cancelled by {command_line_user()}")
    engine = open_index(loaded)
    compressed = archive_statistics(engine).compressed_instances
    engine.dispose()
    assert 0 < compressed < 120 and cancelled.done == compressed
    shown = cli(config_path, "jobs", "show", "1", check=False)
    assert shown.returncode == 1 and f"compressing images: {compressed}/120" in shown.stdout
    assert "checked 120 file(s): 0 missing, 0 altered, 0 orphan(s)" in cli(config_path, "archive", "verify").stdout


class Events:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def record(self, event: AuditEvent) -> None:
        self.events.append(event)


def test_jobs_commands_list_show_cancel_and_follow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    config = development_config(data)
    ingest_images(config, 2)
    location = ["--data", str(data)]
    assert main(["jobs", "start", "reindex", "--detach", *location]) == 0
    assert main(["jobs", "start", "reindex", *location]) == 2
    assert "a reindex job is already waiting or running (job 1)" in capsys.readouterr().err
    assert main(["jobs", "cancel", "1", *location]) == 0
    assert main(["jobs", "show", "1", *location]) == 1
    shown = capsys.readouterr().out
    assert " reindex   cancelled    0%" in shown and f"cancelled by {command_line_user()}" in shown
    engine = open_index(config)
    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            if not jobs.run_next(engine, config, Events()):
                time.sleep(0.1)

    runner = threading.Thread(target=worker)
    runner.start()
    try:
        assert main(["jobs", "start", "verify", *location]) == 0
    finally:
        stop.set()
        runner.join()
        engine.dispose()
    followed = capsys.readouterr().out
    assert "#2     verify    succeeded  100%" in followed and "  verified: 2\n" in followed
    assert main(["jobs", "list", *location]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[:3] for line in listed] == [["#2", "verify", "succeeded"], ["#1", "reindex", "cancelled"]]
    assert main(["jobs", "show", "7", *location]) == 2
    assert "there is no job 7" in capsys.readouterr().err


def test_a_job_in_flight_when_the_worker_stops_starts_over_at_its_next_start(tmp_path: Path) -> None:
    config_path = write_config(tmp_path / "a.yaml", archive_config(tmp_path / "data", 1, lossless={"enabled": False}))
    loaded = load_config(config_path)
    ingest_images(loaded, 60)
    worker = Daemon("appliance.daemons.worker", config_path, tmp_path / "worker.log").start()
    try:
        cli(config_path, "jobs", "start", "compress", "--detach")
        wait_for(lambda: job_of(loaded, 1).done > 0, "the first images compressed")
    finally:
        assert worker.stop() == 0
    again = job_of(loaded, 1)
    assert (again.state, again.done, again.started_at) == ("waiting", 0, None)
    engine = open_index(loaded)
    first_run = archive_statistics(engine).compressed_instances
    engine.dispose()
    worker = Daemon("appliance.daemons.worker", config_path, tmp_path / "worker.log").start()
    try:
        wait_for(lambda: job_of(loaded, 1).finished, "the job to run again")
    finally:
        worker.stop()
    done = job_of(loaded, 1)
    engine = open_index(loaded)
    compressed = archive_statistics(engine).compressed_instances
    engine.dispose()
    assert done.state == "succeeded" and compressed == 60
    assert done.result["compressed"] == 60 - first_run  # what the first run did stays done
    assert "Traceback" not in worker.log()
    outcomes = [event.outcome_description for event in job_audit(loaded)]
    assert any("queued again" in outcome for outcome in outcomes), outcomes
