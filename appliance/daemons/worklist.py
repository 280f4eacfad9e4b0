"""`appliance-worklist`: the Modality Worklist SCP on its own port and AE title (W1), a daemon of
its own so that the worklist stays up while the archive restarts. SIGHUP reloads the profiles,
stations and peers without dropping the associations in flight."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pynetdicom import AE

from appliance.audit.activity import close_trail, open_trail
from appliance.daemons import runtime as process
from appliance.daemons.dicom_server import start_dicom_server
from appliance.dicom.audit import DicomAudit
from appliance.dicom.contexts import QUERY_TRANSFER_SYNTAXES, VERIFICATION
from appliance.dicom.peers import AccessPolicy
from appliance.dicom.worklist_scp import MODALITY_WORKLIST_FIND, WorklistService

LOGGER = logging.getLogger(__name__)

APPLICATION = "appliance-worklist"


def add_worklist_contexts(ae: AE) -> None:
    ae.add_supported_context(VERIFICATION, QUERY_TRANSFER_SYNTAXES)
    ae.add_supported_context(MODALITY_WORKLIST_FIND, QUERY_TRANSFER_SYNTAXES)


def main(argv: Sequence[str] | None = None) -> int:
    runtime = process.start(argv, "The Modality Worklist SCP.")
    if runtime is None:
        return 2
    worklist = runtime.config.worklist
    trail = open_trail(runtime.config, APPLICATION)
    policy = AccessPolicy(runtime.settings, "worklist")
    service = WorklistService(runtime.settings, runtime.engine, policy, DicomAudit(trail))
    name = f"worklist {worklist.ae_title}"
    address = (worklist.bind_address, worklist.port)
    server = start_dicom_server(
        runtime, name, worklist.ae_title, add_worklist_contexts, service.handlers(), address, policy
    )
    if server is None:
        close_trail(trail, APPLICATION)
        return 1
    try:
        return process.serve(
            runtime,
            lambda: process.database_answers(runtime.engine),
            f"{server.name} on port {server.port}",
            name="appliance-worklist",
            announcement=server.listening,
        )
    finally:
        server.stop()
        close_trail(trail, APPLICATION)
        runtime.engine.dispose()
        LOGGER.info("%s stopped", server.name)


if __name__ == "__main__":
    raise SystemExit(main())
