"""`appliance-dicom`: the archive daemon (storage, query/retrieve, MPPS, storage commitment).

Ready (sd_notify) once the port is bound and the index is open; SIGHUP reloads the configuration
(peers and their rights apply to the next association); on SIGTERM it stops accepting, lets the
associations in flight finish (up to a grace period), stops the commitment reports, then closes the
index.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import timedelta

from appliance.archive import commitment, tiers
from appliance.archive.commitment import CHANNEL
from appliance.archive.index import Index
from appliance.archive.ingest import Ingest
from appliance.archive.integrity import adopt_pending
from appliance.archive.storage import FileStore
from appliance.audit.activity import close_trail, open_trail
from appliance.audit.trail import AuditTrail, DiscardingRecorder
from appliance.daemons import runtime as process
from appliance.daemons.dicom_server import DicomServer, start_dicom_server
from appliance.daemons.loops import Loop
from appliance.dicom.archive_scp import ArchiveServices
from appliance.dicom.audit import DicomAudit
from appliance.dicom.commitment_scp import CommitmentReporter, CommitmentServices
from appliance.dicom.contexts import add_archive_contexts
from appliance.dicom.mpps_scp import PerformedStepServices
from appliance.dicom.peers import AccessPolicy
from appliance.outbox import RetryPolicy
from appliance.outbox.courier import Courier

LOGGER = logging.getLogger(__name__)

APPLICATION = "appliance-dicom"
COMMITMENT_RETRY = RetryPolicy(initial_seconds=2, maximum_seconds=300, refusals_before_parking=3)
DELIVERY_IDLE = timedelta(seconds=1)


def file_store(runtime: process.Runtime) -> FileStore:
    """The file store (with the deferred tier to retrieve from, R1), once what an interrupted run left
    is dealt with: files placed but never indexed are indexed (they were never acknowledged, but they
    are valid objects: `archive verify` would otherwise report them as orphans), partial files removed."""
    files = tiers.file_store(runtime.config)
    adoption = adopt_pending(runtime.engine, files)
    if adoption.adopted or adoption.set_aside:
        LOGGER.warning(
            "indexed %d file(s) an interrupted run had stored but not indexed (never acknowledged); "
            "%d set aside in quarantine/orphans",
            len(adoption.adopted),
            len(adoption.set_aside),
        )
    removed = files.remove_incoming_leftovers()
    if removed:
        LOGGER.warning("removed %d partial file(s) left by an interrupted run", removed)
    return files


def main(argv: Sequence[str] | None = None) -> int:
    runtime = process.start(argv, "The DICOM archive: storage, query/retrieve, MPPS and storage commitment SCP.")
    if runtime is None:
        return 2
    config = runtime.config
    files = file_store(runtime)
    policy = AccessPolicy(runtime.settings, "archive")
    received = threading.Event()
    ingest = Ingest(files, Index(runtime.engine))
    trail = open_trail(config, APPLICATION)
    archive = ArchiveServices(runtime.settings, runtime.engine, files, ingest, policy, DicomAudit(trail))
    performed = PerformedStepServices(runtime.engine, policy)
    commitments = CommitmentServices(runtime.settings, runtime.engine, policy, received)
    handlers = [*archive.handlers(), *performed.handlers(), *commitments.handlers()]
    checker = Loop(
        "commitment", lambda: commitment.check_received(runtime.engine, files), timedelta(seconds=5), received
    )
    senders = {CHANNEL: CommitmentReporter(runtime.settings, runtime.engine).send}
    courier = Courier(runtime.engine, senders, lambda _channel: COMMITMENT_RETRY)
    reporter = Loop("commitment-reports", courier.deliver_next, DELIVERY_IDLE)
    server = start_dicom_server(
        runtime, f"DICOM archive {config.dicom.ae_title}", config.dicom.ae_title, add_archive_contexts, handlers,
        (config.dicom.bind_address, config.dicom.port), policy,
    )  # fmt: skip
    if server is None:
        close_trail(trail, APPLICATION)
        return 1
    checker.start()
    reporter.start()
    return serve(runtime, server, checker, reporter, trail)


def serve(
    runtime: process.Runtime, server: DicomServer, checker: Loop, reporter: Loop, trail: AuditTrail | DiscardingRecorder
) -> int:
    try:
        return process.serve(
            runtime,
            lambda: process.database_answers(runtime.engine) and checker.is_alive() and reporter.is_alive(),
            f"{server.name} on port {server.port}",
            name="appliance-dicom",
        )
    finally:
        server.stop()
        checker.stop()
        reporter.stop()
        close_trail(trail, APPLICATION)
        runtime.engine.dispose()
        LOGGER.info("%s stopped", server.name)


if __name__ == "__main__":
    raise SystemExit(main())
