"""pynetdicom's association server, guarded against broken and hostile peers (A1, A6, W1, S2).

pynetdicom as shipped (3.0) gives a connection an association slot as soon as it is accepted: the
association thread (which the slot count is) waits up to the ACSE timeout (30 s) for an
A-ASSOCIATE-RQ, even after the peer has gone or sent garbage; the accepted socket has no timeout,
so a peer that sends 3 bytes and waits blocks the DUL thread in `recv` for ever; and the DUL reads
a whole PDU, whatever length it announces, before the calling AE title is looked at.

Here (subclasses, configured through `AE.make_server`; nothing of pynetdicom is patched):

- `GuardedRequestHandler.handle` reads the association request itself (`Guard.admit`, with
  `admission`'s bounded steps) before pynetdicom creates an association: a connection that closes,
  stalls, sends garbage, a bad request or an unknown calling AE title is answered and closed at
  once, and never holds an association slot. The request is then handed to pynetdicom as read
  (`GuardedSocket`) and as decoded (`GuardedDUL`: decoding it twice cost 5 to 8 ms an association).
- Until its request is read a connection is a *handshake*: at most `HANDSHAKES_PER_ADDRESS` per
  address and `UNRESERVED_HANDSHAKES` from addresses that are no configured peer's host; a new one
  past either limit closes the oldest (a real request takes milliseconds, a stalled one is the
  oldest). Handshakes from configured peers' hosts are never closed for others: those places are
  reserved. Each handshake has `association_request_timeout_seconds` to send its whole request.
- `maximum_associations_per_address` associations per address (transient rejection past it).
- The accepted socket gets the network timeout, so a stalled PDU ends the association.
- `GuardedSocket` refuses a PDU longer than the maximum we announced before reading it (A-ABORT).
- Each refused connection is one WARNING line, rate-limited (`RefusalLog`); pynetdicom's
  tracebacks are kept out of the journal (`QuietTracebacks`).

And, for the time between a peer's A-ASSOCIATE-RQ and our A-ASSOCIATE-AC (A5): a connection is run
by a thread kept from an earlier one (`Workers`) rather than a new thread, and its `Association`
is one built while the server was idle (`Standby`). Raw A-ASSOCIATE-RQ to A-ASSOCIATE-AC, the
archive daemon, medians of 150 associations, 3 alternating runs each: one process 3.8-4.2 ms
before, 2.9-3.2 ms after; two serving processes 4.6-5.5 ms before, 3.4-3.7 ms after. With
`pynetdicom_patches`' `accept_first` too, in a quieter hour (medians of 200): one process
2.69-2.79 -> 1.99-2.40 ms, two serving processes 3.04-3.19 -> 2.32-2.52 ms.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pynetdicom import evt, transport
from pynetdicom._globals import MODE_ACCEPTOR
from pynetdicom.association import Association
from pynetdicom.dul import DULServiceProvider
from pynetdicom.transport import AddressInformation, AssociationSocket, RequestHandler, ThreadedAssociationServer

from appliance.config import Config, Settings
from appliance.dicom import admission, pynetdicom_patches
from appliance.dicom.admission import Answer, CheckedRequest
from appliance.dicom.peers import AccessPolicy

LOGGER = logging.getLogger(__name__)

HANDSHAKES_PER_ADDRESS = 4
UNRESERVED_HANDSHAKES = 32
SEND_TIMEOUT_SECONDS = 2.0
LISTEN_BACKLOG = 128  # socketserver's 5 drops connections (1 s SYN retry) when a few arrive at once
LOG_BURST = 20  # refusal lines logged at once, then one every LOG_INTERVAL_SECONDS
LOG_INTERVAL_SECONDS = 6.0
WORKER_IDLE_SECONDS = 300.0  # a connection's thread waits this long for the next connection, then ends


class RefusalLog:
    """One WARNING line per refused connection, at most `LOG_BURST` at once then one every
    `LOG_INTERVAL_SECONDS`; the next line logged says how many were left out."""

    def __init__(self, burst: int = LOG_BURST, interval: float = LOG_INTERVAL_SECONDS) -> None:
        self.burst = burst
        self.interval = interval
        self.tokens = float(burst)
        self.updated = time.monotonic()
        self.left_out = 0
        self.lock = threading.Lock()

    def refused(self, message: str) -> None:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(float(self.burst), self.tokens + (now - self.updated) / self.interval)
            self.updated = now
            if self.tokens < 1:
                self.left_out += 1
                return
            self.tokens -= 1
            left_out, self.left_out = self.left_out, 0
        suffix = f" ({left_out} other refusal(s) not logged)" if left_out else ""
        LOGGER.warning("%s%s", message, suffix)


@dataclass
class Handshakes:
    """Connections whose association request is not read yet, oldest first."""

    open: dict[socket.socket, tuple[str, bool]] = field(default_factory=dict)
    evicted: set[socket.socket] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, connection: socket.socket, address: str, reserved: bool) -> list[socket.socket]:
        """Count `connection`; return the handshakes it pushes out (closed by the caller)."""
        with self.lock:
            same_address = [other for other, (where, _) in self.open.items() if where == address]
            unreserved = [other for other, (_, kept) in self.open.items() if not kept]
            out: list[socket.socket] = []
            if len(same_address) >= HANDSHAKES_PER_ADDRESS:
                out.append(same_address[0])
            elif not reserved and len(unreserved) >= UNRESERVED_HANDSHAKES:
                out.append(unreserved[0])
            for other in out:
                del self.open[other]
                self.evicted.add(other)
            self.open[connection] = (address, reserved)
            return out

    def done(self, connection: socket.socket) -> bool:
        """Forget `connection`; whether it had been pushed out by a newer one."""
        with self.lock:
            self.open.pop(connection, None)
            if connection in self.evicted:
                self.evicted.discard(connection)
                return True
            return False


@dataclass
class Guard:
    """What a guarded server checks, for one service (`archive` or `worklist`)."""

    service: str
    settings: Settings
    policy: AccessPolicy
    log: RefusalLog = field(default_factory=RefusalLog)
    handshakes: Handshakes = field(default_factory=Handshakes)
    reserved_for: tuple[Config | None, frozenset[str]] = (None, frozenset())

    def is_reserved(self, address: str) -> bool:
        """Whether `address` is a configured peer's host (names resolved once per configuration)."""
        config = self.settings.current
        if self.reserved_for[0] is not config:
            self.reserved_for = (config, addresses_of(peer.host for peer in config.peers))
        return address in self.reserved_for[1]

    def refuse(self, connection: socket.socket, address: str, answer: Answer, calling: str | None = None) -> None:
        """Send the answer (if any), close, log one line."""
        if answer.pdu is not None:
            with contextlib.suppress(OSError):
                connection.settimeout(SEND_TIMEOUT_SECONDS)
                connection.sendall(answer.pdu)
        close(connection)
        if calling is None:
            self.log.refused(f"{self.service}: connection from {address} refused: {answer.reason}")
        else:
            self.log.refused(f"{self.service} association from {calling or '(blank)'} ({address}) rejected: "
                             f"{answer.reason}")  # fmt: skip

    def admit(
        self, connection: socket.socket, address: str, associations_from: Callable[[str], int]
    ) -> CheckedRequest | None:
        """Read the association request of a new connection; the whole request, decoded, when
        pynetdicom may take it over, None when the connection was answered and closed."""
        dicom = self.settings.current.dicom
        deadline = time.monotonic() + dicom.association_request_timeout_seconds
        header, why = receive(connection, admission.HEADER_BYTES, deadline)
        if len(header) < admission.HEADER_BYTES:
            self.refuse(connection, address, Answer(None, f"{why} before an association request"))
            return None
        answer = admission.check_header(header)
        if answer is not None:
            self.refuse(connection, address, answer)
            return None
        fixed, why = receive(connection, admission.FIXED_PART_BYTES, deadline)
        if len(fixed) < admission.FIXED_PART_BYTES:
            self.refuse(connection, address, Answer(None, f"association request cut short ({why})"))
            return None
        return self.admit_caller(connection, address, header, fixed, deadline, associations_from)

    def admit_caller(
        self,
        connection: socket.socket,
        address: str,
        header: bytes,
        fixed: bytes,
        deadline: float,
        associations_from: Callable[[str], int],
    ) -> CheckedRequest | None:
        """The calling AE title and the address, then the size, then the rest of the request."""
        calling = admission.calling_ae_title(fixed)
        decision = self.policy.admit(calling, address) if calling else None
        if decision is None or not decision.admitted:
            reason = decision.reason if decision else "blank or invalid calling AE title"
            self.refuse(connection, address, admission.unknown_caller(reason), calling)
            return None
        answer = admission.check_size(header)
        maximum = self.settings.current.dicom.maximum_associations_per_address
        if answer is None and associations_from(address) >= maximum:
            answer = admission.too_many(f"{maximum} associations already open from {address}")
        if answer is not None:
            self.refuse(connection, address, answer, calling)
            return None
        rest, why = receive(connection, admission.pdu_length(header) - admission.FIXED_PART_BYTES, deadline)
        request = header + fixed + rest
        if len(request) < admission.HEADER_BYTES + admission.pdu_length(header):
            self.refuse(connection, address, Answer(None, f"association request cut short ({why})"), calling)
            return None
        checked = admission.check_request(request)
        if isinstance(checked, Answer):
            self.refuse(connection, address, checked, calling)
            return None
        return checked


def addresses_of(hosts: Iterable[str]) -> frozenset[str]:
    """The addresses of `hosts` (addresses or names; a name that does not resolve has none)."""
    found: set[str] = set()
    for host in hosts:
        try:
            found.update(str(info[4][0]) for info in socket.getaddrinfo(host, None))
        except OSError:
            continue
    return frozenset(found)


def receive(connection: socket.socket, count: int, deadline: float) -> tuple[bytes, str]:
    """Up to `count` bytes before `deadline`; fewer when the peer closed, reset or stalled (the
    second value says which)."""
    received = bytearray()
    while len(received) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return bytes(received), "nothing more sent in time"
        try:
            connection.settimeout(remaining)
            chunk = connection.recv(min(count - len(received), 65536))
        except TimeoutError:
            return bytes(received), "nothing more sent in time"
        except OSError as error:
            return bytes(received), f"connection {type(error).__name__}"
        if not chunk:
            return bytes(received), "closed"
        received += chunk
    return bytes(received), ""


def close(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)
    connection.close()


class GuardedSocket(AssociationSocket):
    """pynetdicom's socket wrapper, given the association request already read, and refusing a
    PDU longer than the maximum announced before reading it."""

    pending: bytearray
    maximum_pdu_bytes: int
    oversized: Callable[[int], None]

    @classmethod
    def take_over(
        cls, wrapped: AssociationSocket, request: bytes, maximum_pdu_bytes: int, oversized: Callable[[int], None]
    ) -> None:
        """Make pynetdicom's socket wrapper of a new association a GuardedSocket (pynetdicom creates
        it, and queues its transport event, in `RequestHandler._create_association`)."""
        wrapped.__class__ = cls
        guarded: Any = wrapped
        guarded.pending = bytearray(request)
        guarded.maximum_pdu_bytes = maximum_pdu_bytes
        guarded.oversized = oversized

    @property
    def ready(self) -> bool:
        if self.pending and self.socket is not None:
            return True
        return bool(AssociationSocket.ready.fget(self))  # type: ignore[attr-defined]

    def recv(self, nr_bytes: int) -> bytearray:
        """pynetdicom reads a PDU as `recv(6)` then `recv(length)`: the request first, from what
        was read already; then a length over the maximum is refused unread."""
        if self.pending:
            served = self.pending[:nr_bytes]
            del self.pending[:nr_bytes]
            return served
        if nr_bytes > self.maximum_pdu_bytes + admission.HEADER_BYTES:
            self.oversized(nr_bytes)
            return bytearray()
        assert self.socket is not None
        return receive_into(self.socket, nr_bytes)


def receive_into(connection: socket.socket, count: int) -> bytearray:
    """`count` bytes read straight into one buffer, fewer when the peer closed first; what
    pynetdicom's `recv` does in reads of 4 KB each appended to a growing buffer (130 reads and
    copies for a CT image sent in one PDU). Raises what `socket.recv_into` raises (the timeout)."""
    received = bytearray(count)
    done = 0
    with memoryview(received) as view:
        while done < count:
            read = connection.recv_into(view[done:], count - done)
            if not read:
                break
            done += read
    if done < count:
        del received[done:]
    return received


class GuardedDUL(DULServiceProvider):
    """pynetdicom's DUL provider, given the association request already decoded: the first PDU it
    reads, the same bytes, is not decoded again."""

    checked: CheckedRequest | None

    @classmethod
    def take_over(cls, wrapped: DULServiceProvider, checked: CheckedRequest) -> None:
        """Make the DUL provider of a new association (not started yet) a GuardedDUL."""
        wrapped.__class__ = cls
        guarded: Any = wrapped
        guarded.checked = checked

    def _decode_pdu(self, bytestream: bytearray) -> tuple[Any, str]:
        """As pynetdicom's, with its events, for the request `checked` holds; decoded otherwise."""
        checked, self.checked = self.checked, None
        if checked is None or bytestream != checked.received:
            return super()._decode_pdu(bytestream)
        evt.trigger(self.assoc, evt.EVT_DATA_RECV, {"data": checked.received})
        evt.trigger(self.assoc, evt.EVT_PDU_RECV, {"pdu": checked})
        return checked, ASSOCIATE_RQ_RECEIVED


ASSOCIATE_RQ_RECEIVED = "Evt6"  # the state machine's event for an A-ASSOCIATE-RQ PDU (PS3.8 9.2.3)


class Workers:
    """The threads that run the handlers of accepted connections, kept for the next connections.

    socketserver starts a thread for each connection; starting one (and waiting until it runs)
    took 0.25 to 0.33 ms of the time between a peer's connection and our A-ASSOCIATE-AC. Here a
    connection goes to a thread that has finished its previous one, when there is one; otherwise a
    new thread is started, as before. A thread left idle for `WORKER_IDLE_SECONDS` ends."""

    def __init__(self, run: Callable[[Any, Any], None], name: str) -> None:
        self.run = run
        self.name = name
        self.waiting: queue.SimpleQueue[tuple[Any, Any]] = queue.SimpleQueue()
        self.idle = 0
        self.lock = threading.Lock()

    def submit(self, request: Any, address: Any) -> None:
        """Run `request` in an idle thread, or in a new one."""
        with self.lock:
            if self.idle:
                self.idle -= 1
                self.waiting.put((request, address))
                return
        threading.Thread(target=self.work, args=(request, address), name=self.name, daemon=True).start()

    def work(self, request: Any, address: Any) -> None:
        while True:
            self.run(request, address)
            taken = self.next()
            if taken is None:
                return
            request, address = taken

    def next(self) -> tuple[Any, Any] | None:
        """The next connection for this thread, None when none came in time (the thread ends)."""
        with self.lock:
            self.idle += 1
        try:
            return self.waiting.get(timeout=WORKER_IDLE_SECONDS)
        except queue.Empty:
            with self.lock:  # a connection submitted meanwhile was put while holding this lock
                if not self.waiting.empty():
                    return self.waiting.get()
                self.idle -= 1
                return None


class Standby:
    """The association of the next connection, built before the connection comes (A5).

    pynetdicom builds an acceptor's `Association` when the connection has come (its DUL provider,
    its service providers, a copy of the server's presentation contexts, a binding of each of the
    server's event handlers): 0.5 ms of the 2.2 ms between a peer's A-ASSOCIATE-RQ and our
    A-ASSOCIATE-AC. Nothing of it depends on the connection, which `connect` gives it afterwards,
    as pynetdicom's `set_socket` allows. One is kept per server, built when the server starts and
    after each association has ended (while the server is idle, not while a peer waits); it is used
    only when the server's settings, contexts and handlers are still those it was built with."""

    def __init__(self, server: ThreadedAssociationServer) -> None:
        self.server = server
        self.lock = threading.Lock()
        self.kept: tuple[tuple[object, ...], Association] | None = None

    def take(self) -> Association:
        """The association built ahead if it still fits the server, a new one otherwise."""
        with self.lock:
            kept, self.kept = self.kept, None
        if kept is not None and kept[0] == blueprint(self.server):
            return kept[1]
        return acceptor_association(self.server)

    def prepare(self) -> None:
        """Build the next connection's association, unless one is kept already."""
        with self.lock:
            if self.kept is not None:
                return
        built = (blueprint(self.server), acceptor_association(self.server))
        with self.lock:
            if self.kept is None:
                self.kept = built


def blueprint(server: ThreadedAssociationServer) -> tuple[object, ...]:
    """What an acceptor association is built from (`acceptor_association`)."""
    ae = server.ae
    handlers = {event: list(bound) if isinstance(bound, list) else bound for event, bound in server._handlers.items()}
    return (
        ae.maximum_pdu_size, server.ae_title, ae.implementation_class_uid, ae.implementation_version_name,
        ae.acse_timeout, ae.dimse_timeout, ae.network_timeout, ae.connection_timeout,
        id(server.contexts), len(server.contexts), handlers,
    )  # fmt: skip


def acceptor_association(server: ThreadedAssociationServer) -> Association:
    """An acceptor association of `server` without its connection: what pynetdicom's
    `RequestHandler._create_association` makes, less the socket wrapper and the two addresses
    (`connect`). The contexts are copied by `pynetdicom.transport`'s `deepcopy`, which the
    `shared_contexts` patch replaces."""
    ae = server.ae
    association = Association(ae, MODE_ACCEPTOR)
    association._server = server
    acceptor = association.acceptor
    acceptor.maximum_length = ae.maximum_pdu_size
    acceptor.ae_title = server.ae_title
    acceptor.implementation_class_uid = ae.implementation_class_uid
    acceptor.implementation_version_name = ae.implementation_version_name
    acceptor.supported_contexts = vars(transport)["deepcopy"](server.contexts)
    handlers: dict[Any, Any] = server._handlers
    for event, bound in handlers.items():
        if event.is_intervention:
            if bound:
                association.bind(event, *bound)
        elif isinstance(event, evt.NotificationEvent):
            for handler, arguments in bound:
                association.bind(event, handler, arguments)
    return association


def connect(
    association: Association, connection: socket.socket, local: AddressInformation, remote: AddressInformation
) -> None:
    """Give an association from `acceptor_association` its connection (the rest of what
    pynetdicom's `_create_association` does)."""
    association.name = f"AcceptorThread@{datetime.now():%Y%m%d%H%M%S}"
    association.set_socket(AssociationSocket(association, client_socket=connection))
    association.acceptor.address_info = local
    association.requestor.address_info = remote


class GuardedRequestHandler(RequestHandler):
    """Reads and checks the association request before pynetdicom's handler takes the connection."""

    server: GuardedServer
    request: socket.socket
    association_request: CheckedRequest | None = None
    association: Association | None = None

    def handle(self) -> None:
        guard = self.server.guard
        address = str(self.client_address[0])
        try:
            request = guard.admit(self.request, address, self.server.associations_from)
        finally:
            if guard.handshakes.done(self.request):
                LOGGER.debug("%s: handshake from %s pushed out by a newer one", guard.service, address)
        if request is None:
            return
        if self.server.handoff is not None:
            self.server.hand_over(self.request, address, int(self.client_address[1]), request)
            return
        self.association_request = request
        self.request.settimeout(self.server.guard.settings.current.dicom.network_timeout_seconds)
        super().handle()
        self.wait_for_end()
        self.server.standby.prepare()

    def wait_for_end(self) -> None:
        """Wait until the association started here has ended."""
        if self.association is not None:
            self.association.join()

    def _create_association(self) -> Association:
        association = self.server.standby.take()
        connect(association, self.request, self.local, self.remote)
        self.association = association
        guard = self.server.guard
        address = str(self.client_address[0])
        maximum = guard.settings.current.dicom.maximum_pdu_bytes
        connection = self.request

        def oversized(length: int) -> None:
            guard.refuse(
                connection,
                address,
                Answer(
                    admission.abort(admission.INVALID_PARAMETER_VALUE), f"PDU of {length} bytes (at most {maximum})"
                ),
                str(association.requestor.ae_title).strip(),
            )

        assert association.dul.socket is not None and self.association_request is not None
        GuardedSocket.take_over(association.dul.socket, self.association_request.received, maximum, oversized)
        GuardedDUL.take_over(association.dul, self.association_request)
        return association


class Handoff(Protocol):
    """The serving processes an acceptor hands its admitted connections to (`handoff`)."""

    def hand(
        self, connection: socket.socket, address: tuple[str, int], request: bytes, most: int, most_from_address: int
    ) -> str | None:
        """Hand the connection over (the caller then closes its own descriptor) unless `most`
        associations are open already, or `most_from_address` from its address (checked and
        counted at once); why not when it was not."""

    def associations_from(self, address: str) -> int:
        """Associations handed over from `address` that have not ended."""


class GuardedServer(ThreadedAssociationServer):
    """The association server with a `Guard`; made by `AE.make_server(..., guard=...)`. With a
    `handoff`, it only accepts and admits: the serving processes run the associations."""

    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG
    handler_class: type[RequestHandler] = GuardedRequestHandler

    def __init__(self, *arguments: Any, guard: Guard, handoff: Handoff | None = None, **keywords: Any) -> None:
        self.guard = guard
        self.handoff = handoff
        self.standby = Standby(self)
        self.workers = Workers(self.process_request_thread, f"{guard.service}-connection")
        keywords["request_handler"] = self.handler_class
        super().__init__(*arguments, **keywords)
        if handoff is None:
            self.standby.prepare()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Run the connection's handler in one of the server's threads (`Workers`)."""
        self.workers.submit(request, client_address)

    def hand_over(self, connection: socket.socket, host: str, port: int, request: CheckedRequest) -> None:
        """Hand an admitted connection to a serving process; refused (transient) past the total of
        associations or its address's (counted again here, exactly: `Guard` counted before reading
        the whole request), or when no serving process can take it."""
        assert self.handoff is not None
        from_address = self.guard.settings.current.dicom.maximum_associations_per_address
        refused = self.handoff.hand(
            connection, (host, port), request.received, self.ae.maximum_associations, from_address
        )
        if refused is None:
            connection.close()  # this process's descriptor only: the serving process has its own
        else:
            self.guard.refuse(connection, host, admission.too_many(refused), str(request.calling_ae_title).strip())

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """In the accepting thread: count the new handshake, close those it pushes out."""
        address = str(client_address[0])
        for pushed_out in self.guard.handshakes.add(request, address, self.guard.is_reserved(address)):
            with contextlib.suppress(OSError):
                pushed_out.shutdown(socket.SHUT_RDWR)
        return True

    def associations_from(self, address: str) -> int:
        if self.handoff is not None:
            return self.handoff.associations_from(address)
        return sum(1 for association in self.active_associations if association.requestor.address == address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One line instead of socketserver's traceback on stderr."""
        LOGGER.error("%s: connection from %s failed", self.guard.service, client_address[0], exc_info=False)

    def shutdown(self) -> None:
        """Stop accepting and close the listening socket (the AE keeps no list of this server)."""
        socketserver.BaseServer.shutdown(self)
        self.server_close()


def end_broken_association(hook_arguments: Any) -> bool:
    """A `threading.excepthook` step: a pynetdicom DUL thread that died on a peer's malformed
    message (pynetdicom 3.0 raises in its state machine: a command set without Command Field, an
    event the state does not allow) gets one WARNING line instead of a traceback, and its peer an
    A-ABORT; its association then ends (it checks that the DUL thread is alive). Whether it was one."""
    thread = hook_arguments.thread
    if not isinstance(thread, DULServiceProvider):
        return False
    pynetdicom_patches.abort_malformed(thread.assoc, hook_arguments.exc_value)
    return True


def install_thread_hook() -> None:
    """Put `end_broken_association` in front of the process's `threading.excepthook` (once)."""
    previous = threading.excepthook
    if getattr(previous, "appliance_guard", False):
        return

    def hook(arguments: Any) -> None:
        if not end_broken_association(arguments):
            previous(arguments)

    hook.appliance_guard = True  # type: ignore[attr-defined]
    threading.excepthook = hook


class QuietTracebacks(logging.Filter):
    """On pynetdicom's loggers: drop the records that only carry an exception's traceback
    (`LOGGER.exception(exc)`; the line before says what happened), and keep the others' text
    without a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.msg, BaseException):
            return False
        record.exc_info = None
        record.exc_text = None
        return True


def quiet_pynetdicom_tracebacks() -> None:
    """Install `QuietTracebacks` on pynetdicom's loggers (a filter does not apply to the records
    of child loggers, so on each of them), once."""
    names = ["pynetdicom", *(name for name in logging.Logger.manager.loggerDict if name.startswith("pynetdicom."))]
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, QuietTracebacks) for existing in logger.filters):
            logger.addFilter(QuietTracebacks())
