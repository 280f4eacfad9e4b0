"""`appliance-dicom`: the archive daemon (storage, query/retrieve, MPPS, storage commitment).

Ready (sd_notify) once the port is bound and the index is open; SIGHUP reloads the configuration
(peers and their rights apply to the next association); on SIGTERM it stops accepting, lets the
associations in flight finish (up to a grace period), stops the commitment reports, then closes the
index.

With several serving processes (`dicom.processes`, by default one per core), this process accepts
and admits the connections and runs the storage commitment checks and reports; the serving
processes (`serving`, `archive_serving`) run the associations.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from appliance.archive import commitment, retrieve, tiers
from appliance.archive.commitment import CHANNEL
from appliance.archive.index import Index
from appliance.archive.ingest import Ingest
from appliance.archive.integrity import adopt_pending, recover_unsynced
from appliance.archive.storage import FileStore
from appliance.audit.activity import close_trail, open_trail
from appliance.audit.trail import AuditTrail, DiscardingRecorder
from appliance.daemons import runtime as process
from appliance.daemons.dicom_server import DicomServer, start_dicom_server
from appliance.daemons.loops import Loop
from appliance.daemons.serving import ServingProcesses, serving_processes
from appliance.dicom.archive_scp import ArchiveServices
from appliance.dicom.audit import DicomAudit
from appliance.dicom.commitment_scp import CommitmentReporter, CommitmentServices, Signal
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
    is dealt with: instances indexed before their sync whose file never reached the disk whole are
    removed (`recover_unsynced`: never acknowledged), files placed but never indexed are indexed (they
    were never acknowledged, but they are valid objects: `archive verify` would otherwise report them
    as orphans), partial files removed."""
    files = tiers.file_store(runtime.config)
    recovered = recover_unsynced(runtime.engine, files)
    if recovered:
        LOGGER.warning(
            "removed %d object(s) an interruption cut short before their sync (never acknowledged)", len(recovered)
        )
    adoption = adopt_pending(runtime.engine, files)
    if adoption.adopted or adoption.set_aside:
        LOGGER.warning(
            "indexed %d file(s) an interrupted run had stored but not indexed (never acknowledged); "
            "%d set aside in quarantine/orphans",
            len(adoption.adopted),
            len(adoption.set_aside),
        )
    if adoption.incomplete:
        LOGGER.warning("removed %d file(s) cut short by an interruption (never acknowledged)", len(adoption.incomplete))
    removed = files.remove_incoming_leftovers()
    if removed:
        LOGGER.warning("removed %d partial file(s) left by an interrupted run", removed)
    return files


def archive_handlers(
    runtime: process.Runtime,
    files: FileStore,
    trail: AuditTrail | DiscardingRecorder,
    received: Signal,
    policy: AccessPolicy,
) -> list[Any]:
    """The archive's services (storage, query/retrieve, MPPS, storage commitment) as pynetdicom
    handlers: the same in the daemon's process and in each serving process."""
    ingest = Ingest(files, Index(runtime.engine, share_flush=True))
    archive = ArchiveServices(runtime.settings, runtime.engine, files, ingest, policy, DicomAudit(trail))
    try:
        retrieve.warm_up(runtime.engine)
    except SQLAlchemyError as error:  # the first retrieve will say more
        LOGGER.warning("retrieve statements not compiled ahead: %s", error)
    performed = PerformedStepServices(runtime.engine, policy)
    commitments = CommitmentServices(runtime.settings, runtime.engine, policy, received)
    return [*archive.handlers(), *performed.handlers(), *commitments.handlers()]


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    runtime = process.start(arguments, "The DICOM archive: storage, query/retrieve, MPPS and storage commitment SCP.")
    if runtime is None:
        return 2
    config = runtime.config
    files = file_store(runtime)
    received = threading.Event()
    trail = open_trail(config, APPLICATION)
    count = serving_processes(config.dicom.processes)
    serving = ServingProcesses(arguments, count, received) if count > 1 else None
    if serving is not None and not serving.start():
        serving.stop()
        close_trail(trail, APPLICATION)
        return 1
    policy = AccessPolicy(runtime.settings, "archive")
    handlers = archive_handlers(runtime, files, trail, received, policy) if serving is None else []
    server = start_dicom_server(
        runtime, f"DICOM archive {config.dicom.ae_title}", config.dicom.ae_title, add_archive_contexts, handlers,
        (config.dicom.bind_address, config.dicom.port), policy, serving,
    )  # fmt: skip
    if server is None:
        if serving is not None:
            serving.stop()
        close_trail(trail, APPLICATION)
        return 1
    if serving is not None:
        runtime.reloaded.append(lambda _config: serving.reload())
        LOGGER.info("%d serving processes", count)
    checker = Loop(
        "commitment", lambda: commitment.check_received(runtime.engine, files), timedelta(seconds=5), received
    )
    senders = {CHANNEL: CommitmentReporter(runtime.settings, runtime.engine).send}
    courier = Courier(runtime.engine, senders, lambda _channel: COMMITMENT_RETRY)
    reporter = Loop("commitment-reports", courier.deliver_next, DELIVERY_IDLE)
    checker.start()
    reporter.start()
    return serve(runtime, server, serving, checker, reporter, trail)


def serve(
    runtime: process.Runtime,
    server: DicomServer,
    serving: ServingProcesses | None,
    checker: Loop,
    reporter: Loop,
    trail: AuditTrail | DiscardingRecorder,
) -> int:
    def healthy() -> bool:
        loops = checker.is_alive() and reporter.is_alive()
        return process.database_answers(runtime.engine) and loops and (serving is None or serving.healthy())

    try:
        return process.serve(
            runtime, healthy, f"{server.name} on port {server.port}", name="appliance-dicom",
            announcement=server.listening,
        )  # fmt: skip
    finally:
        server.stop()
        if serving is not None:
            serving.stop()
        checker.stop()
        reporter.stop()
        close_trail(trail, APPLICATION)
        runtime.engine.dispose()
        LOGGER.info("%s stopped", server.name)


if __name__ == "__main__":
    raise SystemExit(main())
