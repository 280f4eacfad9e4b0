"""The runner: takes the oldest waiting job, runs it with its progress written to its row, keeps its
result, and records its start and its end in the audit trail (PS3.15 A.5.3.11 Security Alert,
Use of Restricted Function: a maintenance function of the archive, run for someone).

The background worker calls `recover` once when it starts, then `run_next` in a loop, one job at a
time. A job ends succeeded (its result kept), failed (the error in words), or cancelled (who asked);
when the worker stops cleanly the job in flight goes back to the queue and starts over at the next
start; a job the worker left running when it died is marked failed (interrupted).
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import Executor
from typing import Any

from sqlalchemy import Engine

from appliance.audit.events import (
    Action,
    AuditEvent,
    EventId,
    EventType,
    ObjectKind,
    Outcome,
    ParticipantObject,
    Recorder,
    application,
    person,
)
from appliance.config import Config
from appliance.jobs.kinds import WORK, Workshop, workshop_of
from appliance.jobs.progress import Cancelled, Progress, Stopped
from appliance.jobs.queue import (
    CANCELLED,
    FAILED,
    SUCCEEDED,
    WAITING,
    Job,
    claim_next,
    fail_interrupted,
    finish,
    get,
    queue_again,
)

LOGGER = logging.getLogger(__name__)

APPLICATION = "appliance-worker"
OUTCOMES = {
    SUCCEEDED: Outcome.SUCCESS,
    CANCELLED: Outcome.MINOR_FAILURE,
    WAITING: Outcome.MINOR_FAILURE,  # stopped with the worker, queued again
    FAILED: Outcome.SERIOUS_FAILURE,
}


def recover(engine: Engine, recorder: Recorder) -> int:
    """Mark failed the jobs a dead runner left running (audited); return how many."""
    interrupted = fail_interrupted(engine)
    for job in interrupted:
        LOGGER.warning("job %d (%s) was interrupted: marked failed", job.id, job.kind)
        recorder.record(ended_event(job))
    return len(interrupted)


def run_next(
    engine: Engine,
    config: Config,
    recorder: Recorder,
    executor: Executor | None = None,
    stopping: threading.Event | None = None,
) -> bool:
    """Claim the oldest waiting job and run it to its end; False when no job waits.

    `executor` gives compression its processes; setting `stopping` makes the job in flight go back
    to the queue at its next checkpoint. A job's own failure is recorded in its row, never raised.
    """
    job = claim_next(engine)
    if job is None:
        return False
    LOGGER.info("job %d (%s) started for %s", job.id, job.kind, job.started_by)
    recorder.record(started_event(job))
    run_claimed(workshop_of(engine, config, executor), job, stopping)
    ended = get(engine, job.id)
    LOGGER.info("job %d (%s) %s %s", ended.id, ended.kind, ended.state, ended.error)
    recorder.record(ended_event(ended))
    return True


def run_claimed(workshop: Workshop, job: Job, stopping: threading.Event | None) -> None:
    engine = workshop.engine
    progress = Progress(engine, job.id, stopping)
    work = WORK.get(job.kind)
    if work is None:
        finish(engine, job.id, FAILED, {}, f"this version knows no job of kind {job.kind!r}")
        return
    try:
        result = work(workshop, job.arguments, progress)
    except Cancelled:
        progress.save()
        finish(engine, job.id, CANCELLED, {})
    except Stopped:
        queue_again(engine, job.id)
    except Exception as error:  # the job's failure, kept in its row; the runner goes on
        LOGGER.exception("job %d (%s) failed", job.id, job.kind)
        finish(engine, job.id, FAILED, {}, f"{type(error).__name__}: {error}")
    else:
        progress.save()
        finish(engine, job.id, SUCCEEDED, result)


def job_object(job: Job) -> ParticipantObject:
    """The job as the audit trail shows it: its id, its kind, its arguments and its state."""
    details = (("arguments", json.dumps(dict(job.arguments), sort_keys=True)), ("state", job.state))
    return ParticipantObject(ObjectKind.JOB, str(job.id), job.kind, details=details)


def started_event(job: Job) -> AuditEvent:
    return job_event(job, Outcome.SUCCESS, "")


def ended_event(job: Job) -> AuditEvent:
    return job_event(job, OUTCOMES.get(job.state, Outcome.SERIOUS_FAILURE), ending(job))


def job_event(job: Job, outcome: Outcome, description: str) -> AuditEvent:
    return AuditEvent(
        EventId.SECURITY_ALERT,
        Action.EXECUTE,
        outcome,
        (person(job.started_by, ""), application(APPLICATION)),
        (job_object(job),),
        EventType.USE_OF_RESTRICTED_FUNCTION,
        description,
    )


def ending(job: Job) -> str:
    """How the job ended, in words: its result's counts, or its error."""
    if job.state == WAITING:
        return "stopped with the worker; queued again"
    if job.state != SUCCEEDED:
        return f"{job.state}: {job.error}" if job.error else job.state
    counts: dict[str, Any] = {key: value for key, value in job.result.items() if isinstance(value, int | bool)}
    return f"{job.state}: " + ", ".join(f"{key} {value}" for key, value in sorted(counts.items()))
