"""`appliance-worklist`: the Modality Worklist SCP on its own port and AE title (W1), a daemon of
its own so that the worklist stays up while the archive restarts."""

from __future__ import annotations

from collections.abc import Sequence

from pynetdicom import AE
from pynetdicom.transport import AssociationServer

from appliance import service
from appliance.dicom import tuning
from appliance.dicom.contexts import QUERY_TRANSFER_SYNTAXES, VERIFICATION
from appliance.dicom.daemon import run_service
from appliance.dicom.peers import AccessPolicy
from appliance.dicom.worklist_scp import MODALITY_WORKLIST_FIND, WorklistService


def worklist_server(runtime: service.Runtime) -> tuple[AE, AssociationServer, str]:
    tuning.apply()
    config = runtime.config
    ae = AE(ae_title=config.worklist.ae_title)
    ae.maximum_associations = config.dicom.maximum_associations
    ae.network_timeout = config.dicom.network_timeout_seconds
    ae.add_supported_context(VERIFICATION, QUERY_TRANSFER_SYNTAXES)
    ae.add_supported_context(MODALITY_WORKLIST_FIND, QUERY_TRANSFER_SYNTAXES)
    handlers = WorklistService(config, runtime.engine, AccessPolicy(config)).handlers()
    address = (config.worklist.bind_address, config.worklist.port)
    server = ae.start_server(address, block=False, evt_handlers=handlers)
    assert server is not None
    return ae, server, f"worklist {config.worklist.ae_title}"


def main(argv: Sequence[str] | None = None) -> int:
    return run_service(argv, "The Modality Worklist SCP.", worklist_server)


if __name__ == "__main__":
    raise SystemExit(main())
