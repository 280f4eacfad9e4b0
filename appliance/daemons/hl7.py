"""`appliance-hl7`: the MLLP listener for the RIS (patients, orders, PDQ) and the messages to it.

Ready (sd_notify) once the port is bound, the index is open and the messages stored but not applied
before the last stop have been applied. SIGHUP reloads the configuration (accepted facilities,
stations, the RIS link) for the next message. On SIGTERM it stops accepting, lets the message in
flight on each connection finish, stops the outbound delivery, then closes the index.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import Engine

from appliance.audit.activity import close_trail, host_name, open_trail
from appliance.audit.events import Participant, ParticipantKind, ParticipantRole, Recorder
from appliance.audit.trail import DiscardingRecorder
from appliance.config import Config
from appliance.daemons import runtime as process
from appliance.daemons.loops import Loop
from appliance.hl7.admission import ConnectionLimits
from appliance.hl7.audit import Hl7Audit
from appliance.hl7.handlers import ApplyOrder, Policies
from appliance.hl7.listener import MllpServer
from appliance.hl7.outbound import CHANNEL, RisSender, enqueue_events
from appliance.hl7.pdq import audited_pdq
from appliance.hl7.router import Identity, Receiver, handler_table
from appliance.hl7.segments import PractisePolicy
from appliance.outbox import RetryPolicy
from appliance.outbox.courier import Courier
from appliance.patients.identities import IdentityPolicy
from appliance.worklist.scheduling import apply_order

LOGGER = logging.getLogger(__name__)

ENQUEUE_EVERY = timedelta(seconds=1)
APPLICATION = "appliance-hl7"


def build_receiver(
    engine: Engine, config: Config, apply: ApplyOrder = apply_order, recorder: Recorder | None = None
) -> Receiver:
    receiver = Receiver(engine, {}, identity_of(config))
    configure(receiver, config, apply, recorder or DiscardingRecorder())
    return receiver


def identity_of(config: Config) -> Identity:
    hl7 = config.hl7
    return Identity(hl7.application, hl7.facility, hl7.accepted_sending_facilities)


def configure(
    receiver: Receiver, config: Config, apply: ApplyOrder = apply_order, recorder: Recorder | None = None
) -> None:
    """Bind the message handlers and the audit to `config` (at start, and again on each reload)."""
    policies = Policies(
        practise=PractisePolicy(config.hl7.patient_id_authority),
        identity=IdentityPolicy(refuse_test_ins=config.hl7.refuse_test_ins),
        config=config,
    )
    identity = identity_of(config)
    engine = receiver.engine
    receiver.identity = identity
    receiver.handlers = handler_table(policies, apply)
    listener = Participant(f"{identity.application}|{identity.facility}", False, ParticipantKind.NODE, host_name(),
                           role=ParticipantRole.DESTINATION)  # fmt: skip
    audit = Hl7Audit(recorder or DiscardingRecorder(), policies.practise, listener)
    receiver.audit = audit
    receiver.queries = {("QBP", "Q22"): audited_pdq(engine, identity, policies.practise, audit)}


def connection_limits(config: Config) -> ConnectionLimits:
    """`hl7.connections`, its trusted host names resolved to addresses (and the RIS's host trusted)."""
    connections = config.hl7.connections
    hosts = set(connections.trusted_addresses) | ({config.hl7.ris.host} if config.hl7.ris.host else set())
    return ConnectionLimits(
        maximum=connections.maximum,
        per_address=connections.per_address,
        reserved=connections.reserved,
        trusted=frozenset(address for host in sorted(hosts) for address in addresses_of(host)),
        idle_seconds=float(connections.idle_timeout_seconds),
    )


def addresses_of(host: str) -> set[str]:
    """The IP addresses of `host` (itself when it is one); none, with a warning, when it does not resolve."""
    try:
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError as error:
        LOGGER.warning("trusted HL7 host %s does not resolve (%s): not trusted until it does", host, error)
        return set()
    return {str(info[4][0]) for info in found} | {host}


def start_listener(config: Config, receiver: Receiver) -> tuple[MllpServer, threading.Thread] | None:
    address = (config.hl7.bind_address, config.hl7.port)
    maximum_bytes = config.hl7.maximum_message_kilobytes * 1024
    try:
        server = MllpServer(
            address, receiver.receive, receiver.oversize_answer, maximum_bytes, connection_limits(config)
        )
    except OSError as error:
        LOGGER.error("HL7 listener cannot listen on %s:%d: %s", address[0], address[1], error.strerror or error)
        return None
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="mllp", daemon=True)
    thread.start()
    return server, thread


def ris_retry(runtime: process.Runtime) -> RetryPolicy:
    ris = runtime.config.hl7.ris
    return RetryPolicy(ris.retry_initial_seconds, ris.retry_maximum_seconds, ris.refusals_before_parking)


def enqueue_round(runtime: process.Runtime) -> int:
    """Workflow changes to messages for the RIS, when a RIS is configured (read at each round)."""
    if not runtime.config.hl7.ris.enabled:
        return 0
    return enqueue_events(runtime.engine, runtime.config)


def main(argv: Sequence[str] | None = None) -> int:
    runtime = process.start(argv, "The HL7 link with the RIS: MLLP listener and outbound queue.")
    if runtime is None:
        return 2
    trail = open_trail(runtime.config, APPLICATION)
    receiver = build_receiver(runtime.engine, runtime.config, recorder=trail)
    runtime.reloaded.append(lambda config: configure(receiver, config, recorder=trail))
    recovered = receiver.recover()
    if recovered:
        LOGGER.warning("applied %d message(s) stored before the last stop", recovered)
    listening = start_listener(runtime.config, receiver)
    if listening is None:
        close_trail(trail, APPLICATION)
        return 1
    server, thread = listening
    runtime.reloaded.append(lambda config: setattr(server, "limits", connection_limits(config)))
    enqueuer = Loop("hl7-enqueue", lambda: enqueue_round(runtime), ENQUEUE_EVERY)
    courier = Courier(runtime.engine, {CHANNEL: RisSender(runtime.settings).send}, lambda _: ris_retry(runtime))
    deliverer = Loop("hl7-ris", courier.deliver_next, ENQUEUE_EVERY)
    if not runtime.config.hl7.ris.enabled:
        LOGGER.info("no RIS configured (hl7.ris.host): nothing is sent")
    enqueuer.start()
    deliverer.start()
    host, port = str(server.server_address[0]), int(server.server_address[1])
    try:
        return process.serve(
            runtime,
            lambda: process.database_answers(runtime.engine) and thread.is_alive() and deliverer.is_alive(),
            f"HL7 listener on port {port}",
            name="appliance-hl7",
            announcement=f"HL7 listener listening on {host}:{port}",
        )
    finally:
        server.stop()
        enqueuer.stop()
        deliverer.stop()
        close_trail(trail, APPLICATION)
        runtime.engine.dispose()
        LOGGER.info("HL7 listener stopped")


if __name__ == "__main__":
    raise SystemExit(main())
