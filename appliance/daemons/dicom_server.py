"""A pynetdicom server as the DICOM daemons run it: the AE with its settings and contexts, guarded
against broken and hostile peers (`dicom.guarded_server`), bound (its daemon announces it, "...
listening on host:port", once it serves: `DicomServer.listening`), and stopped so that associations
in flight can finish."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pynetdicom import AE
from pynetdicom.transport import AssociationServer

from appliance.daemons.runtime import Runtime
from appliance.dicom import pynetdicom_patches
from appliance.dicom.guarded_server import (
    Guard,
    GuardedServer,
    Handoff,
    install_thread_hook,
    quiet_pynetdicom_tracebacks,
)
from appliance.dicom.handed_server import HandedServer
from appliance.dicom.peers import AccessPolicy

LOGGER = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 60.0
ACSE_TIMEOUT_SECONDS = 30


@dataclass
class DicomServer:
    name: str
    ae: AE
    server: AssociationServer

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def listening(self) -> str:
        """The line that says where the server listens (printed by `runtime.serve`)."""
        return f"{self.name} listening on {self.server.server_address[0]}:{self.port}"

    def stop(self) -> None:
        """Stop accepting, give the associations in flight time to finish, then abort what is left."""
        self.server.shutdown()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while self.ae.active_associations and time.monotonic() < deadline:
            time.sleep(0.1)
        for association in self.ae.active_associations:
            LOGGER.warning("aborting association with %s at shutdown", association.requestor.ae_title)
            association.abort()
        self.server.server_close()


def start_dicom_server(
    runtime: Runtime,
    name: str,
    ae_title: str,
    add_contexts: Callable[[AE], None],
    handlers: list[Any],
    address: tuple[str, int],
    policy: AccessPolicy,
    handoff: Handoff | None = None,
) -> DicomServer | None:
    """Bind and start the server, print where it listens; None (logged, naming the service and the
    address) when the address cannot be bound. `policy` admits callers before pynetdicom sees them;
    with a `handoff`, serving processes run the associations admitted."""
    ae = prepared_ae(runtime, ae_title, add_contexts)
    guard = Guard(policy.service, runtime.settings, policy)
    try:
        server = ae.make_server(
            address, evt_handlers=handlers, server_class=GuardedServer, guard=guard, handoff=handoff
        )
    except OSError as error:
        LOGGER.error("%s cannot listen on %s:%d: %s", name, address[0], address[1], error.strerror or error)
        return None
    threading.Thread(target=server.serve_forever, name=f"{policy.service}-acceptor", daemon=True).start()
    return DicomServer(name, ae, server)


def prepared_ae(runtime: Runtime, ae_title: str, add_contexts: Callable[[AE], None]) -> AE:
    """The AE with the configured limits and timeouts and its contexts, pynetdicom patched and quiet."""
    pynetdicom_patches.apply()
    quiet_pynetdicom_tracebacks()
    install_thread_hook()
    dicom = runtime.config.dicom
    ae = AE(ae_title=ae_title)
    ae.maximum_pdu_size = dicom.maximum_pdu_bytes
    ae.maximum_associations = dicom.maximum_associations
    ae.network_timeout = dicom.network_timeout_seconds
    ae.dimse_timeout = dicom.dimse_timeout_seconds
    ae.acse_timeout = ACSE_TIMEOUT_SECONDS
    add_contexts(ae)
    return ae


def start_handed_server(
    runtime: Runtime,
    name: str,
    add_contexts: Callable[[AE], None],
    handlers: list[Any],
    policy: AccessPolicy,
    channel: socket.socket,
) -> DicomServer:
    """A serving process's server (`dicom.handoff`): its connections come from the acceptor's channel."""
    dicom = runtime.config.dicom
    ae = prepared_ae(runtime, dicom.ae_title, add_contexts)
    guard = Guard(policy.service, runtime.settings, policy)
    server = ae.make_server((dicom.bind_address, dicom.port), evt_handlers=handlers, server_class=HandedServer,
                            guard=guard, channel=channel)  # fmt: skip
    threading.Thread(target=server.serve_forever, name=f"{policy.service}-handed", daemon=True).start()
    return DicomServer(name, ae, server)
