"""`appliance-worker`: the background work that follows the change feed, off the ingest path:
verified lossless compression, image availability for the RIS, and the dose register (later:
forwarding, tiers);
the long jobs queued from the console or `appliance jobs start` (`appliance.jobs`), one at a time;
and the audit trail's upkeep: the retention purge once a day, the copy to the audit repository
(syslog) when one is configured.

Each consumer keeps its own cursor in the feed, so the worker can stop and restart at any time
without losing work; a job in flight when it stops goes back to the queue.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta

from appliance.archive.index import Index
from appliance.archive.lossless import SYNTAXES, CompressionReport, LosslessCompressor
from appliance.archive.storage import FileStore
from appliance.audit.activity import audit_source, close_trail, local_user, open_trail, this_application
from appliance.audit.events import Recorder
from appliance.audit.syslog import SyslogForwarder
from appliance.audit.trail import AuditTrail, DiscardingRecorder, retention_cutoff
from appliance.config import Config
from appliance.daemons import runtime as process
from appliance.daemons.loops import Loop
from appliance.dose.register import register_round
from appliance.jobs import recover, run_next
from appliance.worklist.availability import announce_complete_studies

LOGGER = logging.getLogger(__name__)

IDLE = timedelta(seconds=2)
APPLICATION = "appliance-worker"
PURGE_EVERY = timedelta(days=1)


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


def main(argv: Sequence[str] | None = None) -> int:
    runtime = process.start(
        argv, "Background worker: verified lossless compression, image availability, dose register, jobs."
    )
    if runtime is None:
        return 2
    config = runtime.config
    trail = open_trail(config, APPLICATION)
    loops = [Loop("availability", lambda: availability_round(runtime), IDLE * 2), *audit_loops(runtime, trail)]
    loops.append(dose_loop(config, runtime))
    executor = ProcessPoolExecutor(max_workers=config.lossless.worker_processes) if config.lossless.enabled else None
    if executor is not None:
        compressor = compressor_of(config, Index(runtime.engine))
        loops.append(Loop("lossless", lambda: compress_round(compressor, executor), IDLE))
    stopping = threading.Event()
    loops.append(jobs_loop(runtime, executor, trail, stopping))
    for loop in loops:
        loop.start()
    print(f"background worker running (lossless compression {'on' if executor else 'off'})", flush=True)
    try:
        return process.serve(
            runtime, lambda: all(loop.is_alive() for loop in loops), "background worker", name="appliance-worker"
        )
    finally:
        stopping.set()  # a job in flight goes back to the queue at its next checkpoint
        stop(loops, executor)
        close_trail(trail, APPLICATION)
        runtime.engine.dispose()


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
