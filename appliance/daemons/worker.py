"""`appliance-worker`: the background work that follows the change feed, off the ingest path:
each stored instance's DICOM JSON (`archive.documents`), verified lossless compression, image
availability for the RIS, the dose register, forwarding to other DICOM nodes (rules -> one outbox
queue per destination -> C-STORE in batches), and priors from
the remote archives (the console's searches, fetches by C-MOVE, prefetch when an order arrives);
the long jobs queued from the console or `appliance jobs start` (`appliance.jobs`), one at a time;
the daily tier move when configured (R1), the purges a stop interrupted (R2, at start);
and the audit trail's upkeep: the retention purge once a day, the copy to the audit repository
(syslog) when one is configured; the maintenance tunnel's expiry, recorded (state, audit
record, mail) within seconds of the moment `appliance-tunnel` stopped it. Under `make run`
(development mode, no systemd timers) it also makes the daily quality-control report once
`qc.time` has passed (on a box, appliance-qc.timer).

Each consumer keeps its own cursor in the feed, so the worker can stop and restart at any time
without losing work; a job in flight when it stops goes back to the queue.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime, timedelta

from appliance import practice_time
from appliance.archive import retention, tiers
from appliance.archive.deferred import deferred_store
from appliance.archive.documents import documents_round
from appliance.archive.index import Index
from appliance.archive.lossless import SYNTAXES, CompressionReport, LosslessCompressor
from appliance.archive.storage import FileStore
from appliance.audit.activity import audit_source, close_trail, local_user, open_trail, this_application
from appliance.audit.deletions import study_deleted
from appliance.audit.events import (
    Action,
    AuditEvent,
    EventId,
    EventType,
    ObjectKind,
    Outcome,
    Participant,
    ParticipantKind,
    ParticipantObject,
    Recorder,
    application,
    person,
)
from appliance.audit.syslog import SyslogForwarder
from appliance.audit.trail import AuditTrail, DiscardingRecorder, retention_cutoff, verify_file
from appliance.config import Config
from appliance.daemons import runtime as process
from appliance.daemons.loops import Loop
from appliance.dicom import pynetdicom_patches
from appliance.dicom.requestor import ForwardSender, RemoteArchive
from appliance.dose.register import register_round
from appliance.forward import prefetch, remote
from appliance.forward.queues import CHANNEL as FORWARD_CHANNEL
from appliance.forward.routing import route_new_instances
from appliance.jobs import TIER_MOVE, AlreadyQueued, recover, run_next, submit
from appliance.maintenance import notices
from appliance.maintenance.state import Opening, expire, state_path
from appliance.monitor import mail
from appliance.outbox import RetryPolicy
from appliance.outbox.courier import Courier
from appliance.qc.daily import due, run_daily
from appliance.worklist.availability import announce_complete_studies

LOGGER = logging.getLogger(__name__)

IDLE = timedelta(seconds=2)
APPLICATION = "appliance-worker"
PURGE_EVERY = timedelta(days=1)
TUNNEL_EXPIRY_EVERY = timedelta(seconds=5)
TIER_SCHEDULE_EVERY = timedelta(minutes=1)
QC_EVERY = timedelta(minutes=5)


def compressor_of(config: Config, index: Index) -> LosslessCompressor:
    storage = config.storage
    files = FileStore(storage.data_directory, storage.minimum_free_space_mb * 1024 * 1024)
    delay = timedelta(seconds=config.lossless.delay_seconds)
    return LosslessCompressor(index, files, SYNTAXES[config.lossless.transfer_syntax], delay)


def compress_round(compressor: LosslessCompressor, executor: ProcessPoolExecutor) -> int:
    report = compressor.run_once(executor)
    if report.compressed or report.failed:
        log_compression(report)
    return report.compressed + report.skipped + report.failed


def log_compression(report: CompressionReport) -> None:
    LOGGER.info(
        "lossless: %d compressed, %d skipped, %d failed verification, %d bytes saved",
        report.compressed,
        report.skipped,
        report.failed,
        report.bytes_saved,
    )


def availability_round(runtime: process.Runtime) -> int:
    """Announce the studies quiet for the configured period (the period is read at each round)."""
    quiet = timedelta(seconds=runtime.config.worklist.study_complete_after_seconds)
    announced = announce_complete_studies(runtime.engine, quiet)
    if announced:
        LOGGER.info("images available: %d study(ies)", announced)
    return 0  # rounds are paced by IDLE whatever they found


def dose_round(runtime: process.Runtime, files: FileStore) -> int:
    """Read the Radiation Dose SRs (and note the CT dose screens) stored since the last round."""
    counts = register_round(runtime.engine, files, runtime.config.dose)
    if counts.read or counts.unreadable or counts.screens:
        LOGGER.info(
            "dose register: %d read, %d unreadable, %d dose screens", counts.read, counts.unreadable, counts.screens
        )
    return counts.seen  # at once again while the feed has changes to go through


def dose_loop(config: Config, runtime: process.Runtime) -> Loop:
    files = FileStore(config.storage.data_directory, config.storage.minimum_free_space_mb * 1024 * 1024)
    return Loop("dose", lambda: dose_round(runtime, files), IDLE)


def jobs_loop(
    runtime: process.Runtime, executor: ProcessPoolExecutor | None, recorder: Recorder, stopping: threading.Event
) -> Loop:
    """The long jobs, one at a time, oldest first; those a dead worker left running are failed first."""
    recover(runtime.engine, recorder)

    def round_of_jobs() -> int:
        return int(run_next(runtime.engine, runtime.config, recorder, executor, stopping))

    return Loop("jobs", round_of_jobs, IDLE)


def purge_round(runtime: process.Runtime, trail: AuditTrail) -> int:
    """Remove the audit records past `audit.retention_months` (read at each round)."""
    cutoff = retention_cutoff(datetime.now(UTC), runtime.config.audit.retention_months)
    trail.purge(cutoff, local_user(), this_application(APPLICATION))
    return 0  # once a day, whatever it removed


def quality_control_round(runtime: process.Runtime) -> int:
    """Make today's quality-control report when it is due (development: no timer runs it)."""
    config, now = runtime.config, datetime.now(UTC)
    if due(config, runtime.engine, now):
        outcome = run_daily(config, runtime.engine, now, lambda: verify_file(config.audit.database))
        LOGGER.info("quality-control report of %s made: %s", outcome.report.day, outcome.report.status.value)
    return 0


def audit_loops(runtime: process.Runtime, trail: AuditTrail | DiscardingRecorder) -> list[Loop]:
    """The daily purge, and the syslog copy when a repository is configured (at start)."""
    if not isinstance(trail, AuditTrail):
        return []
    loops = [Loop("audit-purge", lambda: purge_round(runtime, trail), PURGE_EVERY)]
    config = runtime.config
    if config.audit.syslog.enabled:
        forwarder = SyslogForwarder(trail, config.audit.syslog, audit_source(config))
        loops.append(Loop("audit-syslog", forwarder.forward, IDLE))
    return loops


def tunnel_expiry_round(runtime: process.Runtime, recorder: Recorder) -> int:
    """Record the end of a maintenance tunnel opening whose time is up (`appliance-tunnel` stopped
    autossh at that moment): the state closed as expired, one audit record, one mail (a mail the
    relay refuses is logged; the tunnel is closed anyway)."""
    config = runtime.config
    expired = expire(state_path(config), datetime.now(UTC))
    if expired is None:
        return 0
    LOGGER.info("maintenance tunnel opened by %s expired at %s", expired.opened_by, expired.until.isoformat())
    recorder.record(tunnel_expiry_event(expired))
    subject, body = notices.closed_mail(config, expired)
    try:
        mail.send(config, subject, body, datetime.now(UTC))
    except mail.MailError as error:
        LOGGER.warning("maintenance tunnel expiry not mailed: %s", error)
    return 0


def tunnel_expiry_event(expired: Opening) -> AuditEvent:
    """110113 Security Alert E, 110140 Remote Service Operation Stopped: the worker (requestor) closed
    the tunnel at its end; the administrator who opened it is named beside it."""
    worker = this_application(APPLICATION)
    requestor = Participant(worker.user_id, True, ParticipantKind.APPLICATION, worker.address, role=worker.role)
    opener = person(expired.opened_by, expired.address, expired.opened_by_name, requestor=False)
    tunnel = ParticipantObject(
        ObjectKind.SECURITY_RESOURCE,
        notices.AUDIT_OBJECT_ID,
        notices.AUDIT_OBJECT_NAME,
        details=notices.audit_details(expired),
    )
    return AuditEvent(
        EventId.SECURITY_ALERT,
        Action.EXECUTE,
        Outcome.SUCCESS,
        (requestor, opener),
        (tunnel,),
        event_type=EventType.REMOTE_SERVICE_OPERATION_STOPPED,
        outcome_description="expired",
    )


def forward_policy(runtime: process.Runtime) -> RetryPolicy:
    """The retry policy of forwarding and fetching, read at each attempt (a reload applies it)."""
    forward = runtime.config.forward
    return RetryPolicy(forward.retry_initial_seconds, forward.retry_maximum_seconds, forward.refusals_before_parking)


def forward_loops(runtime: process.Runtime, recorder: Recorder) -> list[Loop]:
    """Forwarding and priors: the rules and the orders read off the change feed, the forwarding
    queues (one courier, batches of instances), the fetches and prefetch searches (another
    courier: a long C-MOVE never holds forwarding back), and the console's searches."""
    pynetdicom_patches.apply()
    files = tiers.file_store(runtime.config)  # a study in the deferred tier is forwarded too
    sender = ForwardSender(runtime.settings, runtime.engine, files, recorder)
    archives = RemoteArchive(runtime.settings, runtime.engine, recorder)
    remote.fail_interrupted(runtime.engine)
    forwarding = Courier(
        runtime.engine, {}, lambda _channel: forward_policy(runtime), {FORWARD_CHANNEL: sender.send},
        lambda: runtime.config.forward.batch_size,
    )  # fmt: skip
    senders = {remote.RETRIEVE_CHANNEL: archives.send_retrieve, prefetch.CHANNEL: archives.send_prefetch}
    fetching = Courier(runtime.engine, senders, lambda _channel: forward_policy(runtime))
    return [
        Loop("forward-rules", lambda: route_new_instances(runtime.engine, runtime.config), IDLE),
        Loop("prefetch-orders", lambda: prefetch.queue_orders(runtime.engine, runtime.config), IDLE),
        Loop("forward-queues", forwarding.deliver_next, timedelta(seconds=1)),
        Loop("remote-fetches", fetching.deliver_next, timedelta(seconds=1)),
        Loop("remote-searches", archives.serve_next_query, timedelta(seconds=0.5)),
        Loop("remote-searches-purge", lambda: purge_searches(runtime), PURGE_EVERY),
    ]


def purge_searches(runtime: process.Runtime) -> int:
    """Remove the console's searches ended a day ago (their answers name patients)."""
    remote.purge_finished(runtime.engine)
    return 0  # once a day, whatever it removed


def complete_purges(runtime: process.Runtime, recorder: Recorder) -> None:
    """Finish the purges a stop interrupted (R2), each audited once (`archive.retention`)."""
    config = runtime.config

    def announce(found: retention.RetainedStudy, by: str, reason: str) -> None:
        participants = (person(by, ""), application(APPLICATION))
        recorder.record(study_deleted(found, reason, participants))

    try:
        files = tiers.file_store(config)
        store = deferred_store(config.tiers, config.storage.data_directory)
        policy = retention.Policy.of(config.retention)
        done = retention.complete_interrupted(runtime.engine, files, store, policy, announce)
    except (OSError, retention.RetentionError) as error:
        LOGGER.error("interrupted purges not completed: %s", error)
        return
    if done:
        LOGGER.warning("completed %d purge(s) a stop had interrupted", len(done))


def tier_schedule(runtime: process.Runtime) -> Loop:
    """Queue a tier-move job once a day at `tiers.move_time` when `tiers.move_automatically` is on."""
    queued_on: list[date] = []

    def round_of_schedule() -> int:
        settings = runtime.config.tiers
        moment = practice_time.local(datetime.now(UTC))
        if not settings.moves_on_schedule or moment.date() in queued_on:
            return 0
        if moment.strftime("%H:%M") >= settings.move_time:
            queued_on[:] = [moment.date()]
            with contextlib.suppress(AlreadyQueued):
                submit(runtime.engine, TIER_MOVE, {}, f"{APPLICATION} (schedule)")
        return 0

    return Loop("tier-schedule", round_of_schedule, TIER_SCHEDULE_EVERY)


def main(argv: Sequence[str] | None = None) -> int:
    runtime = process.start(
        argv, "Background worker: verified lossless compression, image availability, dose register, jobs."
    )
    if runtime is None:
        return 2
    config = runtime.config
    trail = open_trail(config, APPLICATION)
    loops = [Loop("availability", lambda: availability_round(runtime), IDLE * 2), *audit_loops(runtime, trail)]
    loops.append(Loop("tunnel-expiry", lambda: tunnel_expiry_round(runtime, trail), TUNNEL_EXPIRY_EVERY))
    loops += forward_loops(runtime, trail)
    loops.append(dose_loop(config, runtime))
    loops.append(Loop("documents", lambda: documents_round(runtime.engine), IDLE))
    executor = ProcessPoolExecutor(max_workers=config.lossless.worker_processes) if config.lossless.enabled else None
    if executor is not None:
        compressor = compressor_of(config, Index(runtime.engine))
        loops.append(Loop("lossless", lambda: compress_round(compressor, executor), IDLE))
    stopping = threading.Event()
    complete_purges(runtime, trail)
    loops += [jobs_loop(runtime, executor, trail, stopping), tier_schedule(runtime)]
    if config.is_development:
        loops.append(Loop("quality-control", lambda: quality_control_round(runtime), QC_EVERY))
    for loop in loops:
        loop.start()
    process.announce(f"background worker running (lossless compression {'on' if executor else 'off'})")
    try:
        return process.serve(
            runtime, lambda: all(loop.is_alive() for loop in loops), "background worker", name="appliance-worker"
        )
    finally:
        stopping.set()  # a job in flight goes back to the queue at its next checkpoint
        stop(loops, executor)
        close_trail(trail, APPLICATION)
        runtime.engine.dispose()
        LOGGER.info("background worker stopped")


def stop(loops: list[Loop], executor: ProcessPoolExecutor | None) -> None:
    stoppers = [threading.Thread(target=loop.stop) for loop in loops]
    for stopper in stoppers:
        stopper.start()
    for stopper in stoppers:
        stopper.join()
    if executor is not None:
        executor.shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
