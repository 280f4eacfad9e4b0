"""`appliance-hl7`: the MLLP listener for the RIS (patients, orders, PDQ) and the outbound queue.

Ready (sd_notify) once the port is bound, the index is open and the messages stored but not applied
before the last stop have been applied; on SIGTERM it stops accepting, lets the message in flight on
each connection finish, stops the outbound sender, then closes the index.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from appliance import service
from appliance.config import Config
from appliance.hl7.handlers import ApplyOrder, Policies
from appliance.hl7.mllp import MllpServer
from appliance.hl7.outbound import OutboundSender
from appliance.hl7.pdq import answer_pdq
from appliance.hl7.router import Identity, Receiver, handler_table
from appliance.hl7.segments import PractisePolicy
from appliance.patients.identities import IdentityPolicy

LOGGER = logging.getLogger(__name__)


def order_applier() -> ApplyOrder:
    from appliance.worklist.scheduling import apply_order

    return apply_order


def build_receiver(runtime: service.Runtime, apply_order: ApplyOrder) -> Receiver:
    config = runtime.config.hl7
    policies = Policies(
        practise=PractisePolicy(config.patient_id_authority),
        identity=IdentityPolicy(refuse_test_ins=config.refuse_test_ins),
        config=runtime.config,
    )
    identity = Identity(config.application, config.facility, config.accepted_sending_facilities)
    queries = {("QBP", "Q22"): lambda message: answer_pdq(runtime.engine, message, identity, policies.practise)}
    return Receiver(runtime.engine, handler_table(policies, apply_order), identity, queries)


def start_server(config: Config, receiver: Receiver) -> tuple[MllpServer, threading.Thread]:
    server = MllpServer(
        (config.hl7.bind_address, config.hl7.port),
        receiver.receive,
        receiver.oversize_answer,
        config.hl7.maximum_message_kilobytes * 1024,
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="mllp", daemon=True)
    thread.start()
    return server, thread


def main(argv: Sequence[str] | None = None) -> int:
    runtime = service.start(argv, "The HL7 link with the RIS: MLLP listener and outbound queue.")
    if runtime is None:
        return 2
    config = runtime.config
    receiver = build_receiver(runtime, order_applier())
    recovered = receiver.recover()
    if recovered:
        LOGGER.warning("applied %d message(s) stored before the last stop", recovered)
    try:
        server, thread = start_server(config, receiver)
    except OSError as error:
        LOGGER.error("cannot listen on %s:%d: %s", config.hl7.bind_address, config.hl7.port, error)
        return 1
    sender = OutboundSender(runtime.engine, config)
    sender.start()
    host, port = str(server.server_address[0]), int(server.server_address[1])
    print(f"HL7 listener listening on {host}:{port}", flush=True)
    try:
        return service.serve_until_stopped(
            lambda: service.database_answers(runtime.engine) and thread.is_alive(), f"HL7 listener on port {port}"
        )
    finally:
        server.stop()
        sender.stop()
        runtime.engine.dispose()
        LOGGER.info("HL7 listener stopped")


if __name__ == "__main__":
    raise SystemExit(main())
