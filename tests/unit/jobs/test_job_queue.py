"""The job queue on SQLite and PostgreSQL: one job of a kind at a time, atomic claims, progress
written at most every interval, cancellation at the next checkpoint, interrupted jobs failed."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, delete

from appliance.archive.progress import ProgressCallback
from appliance.audit.events import AuditEvent, EventId, EventType, ObjectKind, Outcome
from appliance.config import development_config
from appliance.db import create_index_engine, upgrade_schema
from appliance.db.schema import job as job_table
from appliance.jobs import kinds, queue
from appliance.jobs.kinds import Workshop
from appliance.jobs.progress import Cancelled, Progress, Stopped
from appliance.jobs.queue import AlreadyQueued, NoSuchJob, UnknownKind, claim_next, get, recent, request_cancel, submit
from appliance.jobs.runner import recover, run_next


class Events:
    """A recorder keeping the events in memory (the real trail is `appliance.audit.trail`)."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def record(self, event: AuditEvent) -> None:
        self.events.append(event)


@pytest.fixture(params=["sqlite", "postgresql"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'index.sqlite'}"
    else:
        url = request.getfixturevalue("postgresql_url")
    engine = create_index_engine(url)
    upgrade_schema(engine)
    with engine.begin() as connection:
        connection.execute(delete(job_table))
    yield engine
    engine.dispose()


def test_one_job_of_a_kind_waits_or_runs_at_a_time(index: Engine) -> None:
    first = submit(index, "verify", {}, "dr.martin")
    with pytest.raises(AlreadyQueued) as refused:
        submit(index, "verify", {}, "secretaire")
    assert refused.value.job_id == first
    compress = submit(index, "compress", {"note": "é"}, "dr.martin")
    created = get(index, compress)
    assert (created.state, created.arguments, created.started_by, created.percent) == ("waiting", {"note": "é"},
                                                                                       "dr.martin", 0)  # fmt: skip
    assert created.created_at.tzinfo is not None
    with pytest.raises(UnknownKind):
        submit(index, "defragment", {}, "dr.martin")
    claimed = claim_next(index)
    assert claimed is not None and claimed.id == first and claimed.state == "running"
    with pytest.raises(AlreadyQueued):
        submit(index, "verify", {}, "dr.martin")  # running counts too
    queue.finish(index, first, queue.SUCCEEDED, {"verified": 3})
    assert submit(index, "verify", {}, "dr.martin") > compress
    assert [job.kind for job in recent(index, 2)] == ["verify", "compress"]


def test_concurrent_submissions_queue_one_job(index: Engine) -> None:
    def attempt(_: int) -> bool:
        try:
            submit(index, "reindex", {}, "someone")
        except AlreadyQueued:
            return False
        return True

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert sum(pool.map(attempt, range(12))) == 1


def test_each_waiting_job_is_claimed_once_oldest_first(index: Engine) -> None:
    submitted = [submit(index, kind, {}, "cli") for kind in queue.KINDS]
    with ThreadPoolExecutor(max_workers=6) as pool:
        claims = [job.id for job in pool.map(lambda _: claim_next(index), submitted) if job is not None]
    assert sorted(claims) == submitted
    assert claim_next(index) is None
    assert all(get(index, job_id).started_at is not None for job_id in submitted)


def test_progress_is_written_at_most_every_interval_and_at_each_new_step(index: Engine) -> None:
    job_id = submit(index, "verify", {}, "cli")
    claim_next(index)
    moment = [0.0]
    progress = Progress(index, job_id, interval=0.5, clock=lambda: moment[0])
    progress("checking files", 1, 10)
    progress("checking files", 2, 10)  # too soon: not written
    assert (get(index, job_id).done, get(index, job_id).step) == (1, "checking files")
    moment[0] = 0.6
    progress("checking files", 5, 10)
    assert get(index, job_id).percent == 50
    progress("looking for orphan files", 1, 4)  # a new step is written at once
    assert (get(index, job_id).step, get(index, job_id).total) == ("looking for orphan files", 4)


def test_a_cancellation_is_heard_at_the_next_checkpoint(index: Engine) -> None:
    job_id = submit(index, "compress", {}, "dr.martin")
    claim_next(index)
    moment = [0.0]
    progress = Progress(index, job_id, interval=0.5, clock=lambda: moment[0])
    progress("compressing images", 1, 100)
    cancelled = request_cancel(index, job_id, "dr.durand")
    assert cancelled.state == "running" and cancelled.cancel_requested
    progress("compressing images", 2, 100)  # not yet written: the request is not seen yet
    moment[0] = 1.0
    with pytest.raises(Cancelled):
        progress("compressing images", 3, 100)
    stopping = threading.Event()
    stopping.set()
    with pytest.raises(Stopped):
        Progress(index, job_id, stopping)("compressing images", 4, 100)


def test_a_waiting_job_is_cancelled_at_once_a_finished_one_stays(index: Engine) -> None:
    job_id = submit(index, "reindex", {}, "dr.martin")
    cancelled = request_cancel(index, job_id, "dr.durand")
    assert (cancelled.state, cancelled.error) == ("cancelled", "cancelled by dr.durand")
    assert cancelled.finished_at is not None and claim_next(index) is None
    assert request_cancel(index, job_id, "someone else").error == "cancelled by dr.durand"
    with pytest.raises(NoSuchJob):
        request_cancel(index, 999_999, "dr.durand")


@pytest.fixture()
def fake_verify(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Replace the verify job's work by what the test puts in the returned list."""
    works: list[Any] = []

    def work(workshop: Workshop, arguments: Mapping[str, Any], progress: ProgressCallback) -> dict[str, Any]:
        return dict(works[0](progress))

    monkeypatch.setitem(kinds.WORK, "verify", work)
    return works


def test_a_job_runs_to_its_result_and_is_audited(index: Engine, tmp_path: Path, fake_verify: list[Any]) -> None:
    def count(progress: ProgressCallback) -> dict[str, Any]:
        for done in range(1, 4):
            progress("checking files", done, 3)
        return {"verified": 3, "damaged": 0, "intact": True}

    fake_verify.append(count)
    job_id = submit(index, "verify", {"why": "monthly"}, "dr.martin")
    recorder = Events()
    assert run_next(index, development_config(tmp_path / "data"), recorder)
    assert not run_next(index, development_config(tmp_path / "data"), recorder)
    done = get(index, job_id)
    assert (done.state, done.result, done.done, done.total, done.percent) == (
        "succeeded", {"verified": 3, "damaged": 0, "intact": True}, 3, 3, 100)  # fmt: skip
    started, ended = recorder.events
    for event in recorder.events:
        assert (event.event, event.event_type, event.action.value) == (
            EventId.SECURITY_ALERT, EventType.USE_OF_RESTRICTED_FUNCTION, "E")  # fmt: skip
        assert event.requestor is not None and event.requestor.user_id == "dr.martin"
        (job_object,) = event.objects
        assert (job_object.kind, job_object.object_id, job_object.name) == (ObjectKind.JOB, str(job_id), "verify")
        assert ("arguments", '{"why": "monthly"}') in job_object.details
    assert started.outcome is Outcome.SUCCESS and ended.outcome is Outcome.SUCCESS
    assert ended.outcome_description == "succeeded: damaged 0, intact True, verified 3"


def test_a_failure_a_cancellation_and_a_stop_end_a_job_differently(
    index: Engine, tmp_path: Path, fake_verify: list[Any]
) -> None:
    config = development_config(tmp_path / "data")

    def broken(progress: ProgressCallback) -> dict[str, Any]:
        raise OSError("disk on fire")

    fake_verify.append(broken)
    failed_id = submit(index, "verify", {}, "dr.martin")
    recorder = Events()
    run_next(index, config, recorder)
    failed = get(index, failed_id)
    assert (failed.state, failed.error) == ("failed", "OSError: disk on fire")
    assert recorder.events[-1].outcome is Outcome.SERIOUS_FAILURE

    def cancelled_meanwhile(progress: ProgressCallback) -> dict[str, Any]:
        progress("checking files", 1, 10)
        request_cancel(index, cancelled_id, "dr.durand")
        while True:
            progress("checking files", 2, 10)

    fake_verify[0] = cancelled_meanwhile
    cancelled_id = submit(index, "verify", {}, "dr.martin")
    run_next(index, config, recorder)
    cancelled = get(index, cancelled_id)
    assert (cancelled.state, cancelled.error, cancelled.done) == ("cancelled", "cancelled by dr.durand", 2)
    assert recorder.events[-1].outcome is Outcome.MINOR_FAILURE

    stopping = threading.Event()

    def stopped(progress: ProgressCallback) -> dict[str, Any]:
        stopping.set()
        progress("checking files", 1, 10)
        return {}

    fake_verify[0] = stopped
    stopped_id = submit(index, "verify", {}, "dr.martin")
    run_next(index, config, recorder, stopping=stopping)
    again = get(index, stopped_id)
    assert (again.state, again.started_at, again.done) == ("waiting", None, 0)  # starts over at the next start


def test_jobs_left_running_by_a_dead_runner_are_failed_at_start(index: Engine) -> None:
    job_id = submit(index, "compress", {}, "dr.martin")
    claim_next(index)
    waiting = submit(index, "verify", {}, "dr.martin")
    recorder = Events()
    assert recover(index, recorder) == 1
    interrupted = get(index, job_id)
    assert (interrupted.state, interrupted.error) == ("failed", queue.INTERRUPTED)
    assert get(index, waiting).state == "waiting"
    (event,) = recorder.events
    assert event.outcome is Outcome.SERIOUS_FAILURE and "interrupted" in event.outcome_description
