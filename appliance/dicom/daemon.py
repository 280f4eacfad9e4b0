"""`appliance-dicom`: the archive daemon (storage, query/retrieve).

Ready (sd_notify) once the port is bound and the index is open; on SIGTERM it stops accepting,
lets the associations in flight finish (up to a grace period), then closes the index.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from pynetdicom import AE
from pynetdicom.transport import AssociationServer

from appliance import service
from appliance.archive.index import Index
from appliance.archive.ingest import Ingest
from appliance.archive.storage import FileStore
from appliance.config import Config
from appliance.dicom import tuning
from appliance.dicom.archive_scp import ArchiveServices
from appliance.dicom.contexts import add_archive_contexts
from appliance.dicom.peers import AccessPolicy

LOGGER = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 60.0


def build_services(runtime: service.Runtime) -> ArchiveServices:
    config = runtime.config
    files = FileStore(config.storage.data_directory, config.storage.minimum_free_space_mb * 1024 * 1024)
    removed = files.remove_incoming_leftovers()
    if removed:
        LOGGER.warning("removed %d partial file(s) left by an interrupted run", removed)
    index = Index(runtime.engine)
    return ArchiveServices(config, runtime.engine, files, Ingest(files, index), AccessPolicy(config))


def build_ae(config: Config) -> AE:
    tuning.apply()
    ae = AE(ae_title=config.dicom.ae_title)
    ae.maximum_pdu_size = 0
    ae.maximum_associations = config.dicom.maximum_associations
    ae.network_timeout = config.dicom.network_timeout_seconds
    ae.dimse_timeout = config.dicom.dimse_timeout_seconds
    ae.acse_timeout = 30
    add_archive_contexts(ae)
    return ae


def start_server(runtime: service.Runtime) -> tuple[AE, AssociationServer]:
    services = build_services(runtime)
    ae = build_ae(runtime.config)
    address = (runtime.config.dicom.bind_address, runtime.config.dicom.port)
    server = ae.start_server(address, block=False, evt_handlers=services.handlers())
    assert server is not None
    return ae, server


def stop_server(ae: AE, server: AssociationServer) -> None:
    """Stop accepting, give the associations in flight time to finish, then abort what is left."""
    server.shutdown()
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while ae.active_associations and time.monotonic() < deadline:
        time.sleep(0.1)
    for association in ae.active_associations:
        LOGGER.warning("aborting association with %s at shutdown", association.requestor.ae_title)
        association.abort()
    server.server_close()


def main(argv: Sequence[str] | None = None) -> int:
    return run_service(argv, "The DICOM archive: storage and query/retrieve SCP.", archive_server)


def archive_server(runtime: service.Runtime) -> tuple[AE, AssociationServer, str]:
    ae, server = start_server(runtime)
    return ae, server, f"DICOM archive {runtime.config.dicom.ae_title}"


def run_service(
    argv: Sequence[str] | None,
    description: str,
    start: Callable[[service.Runtime], tuple[AE, AssociationServer, str]],
) -> int:
    """Start a DICOM service, say where it listens, serve until SIGTERM, then stop cleanly."""
    runtime = service.start(argv, description)
    if runtime is None:
        return 2
    try:
        ae, server, name = start(runtime)
    except OSError as error:
        LOGGER.error("cannot listen: %s", error)
        return 1
    host, port = server.server_address[:2]
    print(f"{name} listening on {host}:{port}", flush=True)
    try:
        return service.serve_until_stopped(lambda: service.database_answers(runtime.engine), f"{name} on port {port}")
    finally:
        stop_server(ae, server)
        runtime.engine.dispose()
        LOGGER.info("%s stopped", name)


if __name__ == "__main__":
    raise SystemExit(main())
