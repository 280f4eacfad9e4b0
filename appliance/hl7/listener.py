"""The MLLP listener: one selector thread accepts the connections and reads their frames, a small
pool of worker threads answers them. An idle connection costs a socket, not a thread (1,000 idle
connections used to be 1,003 threads); which connections are kept is `admission.py`'s decision.

Each connection's messages are answered in order, one at a time: while one is with a worker,
nothing more is read from that connection. A frame larger than the limit is answered (AR) and its
connection closed. Every refusal (connection refused or displaced, frame too large, bytes outside a
frame, connection closed inside a frame) writes one rate-limited WARNING line (`refusals.py`).
`stop` stops accepting, lets the messages in flight be answered, then closes every connection.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from appliance.hl7.admission import ConnectionLimits, Held, Verdict, admit
from appliance.hl7.mllp import RECEIVE_BYTES, FrameBuffer, FrameTooLarge, frame
from appliance.hl7.refusals import REFUSALS

LOGGER = logging.getLogger(__name__)

Handler = Callable[[bytes, str], bytes]  # (message, peer) -> answer, never raises
OversizeAnswer = Callable[[], bytes]
WORKER_THREADS = 4
POLL_SECONDS = 0.2
STOP_GRACE_SECONDS = 30.0
ACCEPT_PAUSE_SECONDS = 0.5  # when the process runs out of file descriptors
BACKLOG = 128
DEFAULT_LIMITS = ConnectionLimits()


class Connection:
    """One accepted connection: its frames, the answer being written, and its state."""

    def __init__(self, sock: socket.socket, address: tuple[str, int], limits: ConnectionLimits, now: float) -> None:
        self.socket = sock
        self.key = sock.fileno()  # the listener's key for it, kept after the socket is closed
        self.address = str(address[0])
        self.peer = f"{address[0]}:{address[1]}"
        self.trusted = limits.is_trusted(self.address)
        self.frames: FrameBuffer | None = None
        self.outgoing = bytearray()
        self.busy = False  # a message is with a worker
        self.answered = 0
        self.closing = False  # close once `outgoing` is written
        self.last_activity = now

    def held(self) -> Held:
        displaceable = not self.answered and not self.busy and not self.closing
        return Held(self.key, self.address, self.trusted, displaceable, self.last_activity)


class MllpServer:
    """`handler(message, peer) -> answer` for each frame received, within `limits`."""

    def __init__(
        self,
        address: tuple[str, int],
        handler: Handler,
        oversize_answer: OversizeAnswer,
        maximum_bytes: int,
        limits: ConnectionLimits = DEFAULT_LIMITS,
    ) -> None:
        self.handler = handler
        self.oversize_answer = oversize_answer
        self.maximum_bytes = maximum_bytes
        self.limits = limits  # replaced on reload; read at each new connection
        self.listener = listening_socket(address)
        self.server_address: tuple[str, int] = self.listener.getsockname()[:2]
        self.selector = selectors.DefaultSelector()
        self.wake_reader, self.wake_writer = socket.socketpair()
        self.wake_reader.setblocking(False)
        self.wake_writer.setblocking(False)
        self.workers = ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="mllp-worker")
        self.answers: queue.SimpleQueue[tuple[Connection, bytes | None]] = queue.SimpleQueue()
        self.connections: dict[int, Connection] = {}
        self.stopping = threading.Event()
        self.finished = threading.Event()
        self.accept_paused_until = 0.0

    def serve_forever(self, poll_interval: float = POLL_SECONDS) -> None:
        """The selector loop, until `stop`; then the messages in flight are answered and every
        connection closed."""
        self.selector.register(self.listener, selectors.EVENT_READ, "listener")
        self.selector.register(self.wake_reader, selectors.EVENT_READ, "wake")
        try:
            while not self.stopping.is_set():
                self.turn(poll_interval)
            self.drain()
        finally:
            self.close_everything()
            self.finished.set()

    def stop(self) -> None:
        """Stop accepting; let the messages in flight be answered; close; wait for all of it."""
        self.stopping.set()
        self.wake()
        self.finished.wait(STOP_GRACE_SECONDS + 10)

    def connection_count(self) -> int:
        return len(self.connections)

    def turn(self, poll_interval: float) -> None:
        """One round of the loop: the sockets that are ready, answers from workers, timeouts."""
        for key, mask in self.selector.select(poll_interval):
            if key.data == "listener":
                self.accept_all()
            elif key.data == "wake":
                self.drain_wake()
            else:
                self.serve(key.data, mask)
        self.deliver_answers()
        self.expire_idle()
        self.resume_accepting()
        REFUSALS.flush()

    # Accepting

    def accept_all(self) -> None:
        while True:
            try:
                sock, address = self.listener.accept()
            except BlockingIOError:
                return
            except OSError as error:
                self.pause_accepting(error)
                return
            self.take(sock, address)

    def take(self, sock: socket.socket, address: tuple[str, int]) -> None:
        now = time.monotonic()
        connection = Connection(sock, address, self.limits, now)
        decision = admit(self.limits, (held.held() for held in self.connections.values()), connection.address)
        if decision.verdict is Verdict.REFUSE:
            REFUSALS.warning(LOGGER, "refused MLLP connection from %s: %s", connection.peer, decision.reason)
            abort(sock)
            return
        if decision.displaced is not None:
            displaced = self.connections[decision.displaced.key]
            idle = round(now - displaced.last_activity)
            REFUSALS.warning(
                LOGGER, "closed MLLP connection from %s, which sent no message (idle %d s), to make room for %s (%s)",
                displaced.peer, idle, connection.peer, decision.reason,
            )  # fmt: skip
            self.close(displaced)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection.frames = FrameBuffer(self.maximum_bytes, lambda text: self.notice(connection, text))
        self.connections[connection.key] = connection
        self.selector.register(sock, selectors.EVENT_READ, connection)
        LOGGER.debug("MLLP connection from %s (%d held)", connection.peer, len(self.connections))

    def pause_accepting(self, error: OSError) -> None:
        """Out of file descriptors (or another accept failure): stop accepting for a moment rather
        than spin on a listener that stays readable."""
        if error.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
            REFUSALS.warning(LOGGER, "cannot accept MLLP connections for now: %s", error.strerror or error)
            self.selector.unregister(self.listener)
            self.accept_paused_until = time.monotonic() + ACCEPT_PAUSE_SECONDS
        else:
            REFUSALS.warning(LOGGER, "MLLP accept failed: %s", error.strerror or error)

    def resume_accepting(self) -> None:
        if self.accept_paused_until and time.monotonic() >= self.accept_paused_until:
            self.accept_paused_until = 0.0
            self.selector.register(self.listener, selectors.EVENT_READ, "listener")

    # Reading and writing

    def serve(self, connection: Connection, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            self.write(connection)
        if mask & selectors.EVENT_READ and self.is_open(connection):
            self.read(connection)

    def read(self, connection: Connection) -> None:
        assert connection.frames is not None
        try:
            data = connection.socket.recv(RECEIVE_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            LOGGER.debug("MLLP connection from %s failed: %s", connection.peer, error)
            self.close(connection)
            return
        if not data:
            if connection.frames.inside_a_frame():
                REFUSALS.warning(
                    LOGGER, "connection from %s closed inside a frame (truncated message dropped)", connection.peer
                )
            self.close(connection)
            return
        connection.last_activity = time.monotonic()
        connection.frames.feed(data)
        self.dispatch(connection)

    def dispatch(self, connection: Connection) -> None:
        """Hand the next complete frame to a worker (one at a time per connection)."""
        if connection.busy or connection.closing or connection.frames is None or self.stopping.is_set():
            self.update_interest(connection)
            return
        try:
            message = connection.frames.next_frame()
        except FrameTooLarge as error:
            REFUSALS.warning(LOGGER, "closing connection from %s: %s", connection.peer, error)
            connection.frames.buffer.clear()
            self.queue_answer(connection, self.oversize_answer())
            connection.closing = True
            self.update_interest(connection)
            return
        if message is not None:
            connection.busy = True
            self.workers.submit(self.work, connection, message)
        self.update_interest(connection)

    def work(self, connection: Connection, message: bytes) -> None:
        """In a worker thread: the answer, handed back to the loop (None: close without one)."""
        answer: bytes | None
        try:
            answer = self.handler(message, connection.peer)
        except Exception:  # outermost in a worker: the connection is closed, the listener goes on
            LOGGER.exception("no answer for a frame from %s: connection closed", connection.peer)
            answer = None
        self.answers.put((connection, answer))
        self.wake()

    def deliver_answers(self) -> None:
        while True:
            try:
                connection, answer = self.answers.get_nowait()
            except queue.Empty:
                return
            connection.busy = False
            if not self.is_open(connection):
                continue
            if answer is None:
                self.close(connection)
                continue
            connection.answered += 1
            self.queue_answer(connection, answer)
            self.write(connection)
            if self.is_open(connection):
                self.dispatch(connection)

    def queue_answer(self, connection: Connection, answer: bytes) -> None:
        connection.outgoing += frame(answer)

    def write(self, connection: Connection) -> None:
        try:
            sent = connection.socket.send(connection.outgoing) if connection.outgoing else 0
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as error:
            LOGGER.warning("cannot answer %s: %s", connection.peer, error)
            self.close(connection)
            return
        del connection.outgoing[:sent]
        if connection.closing and not connection.outgoing:
            self.close(connection)
            return
        self.update_interest(connection)

    def update_interest(self, connection: Connection) -> None:
        """Read unless a message is with a worker or the connection is closing; write while an
        answer is not all sent."""
        events = 0 if connection.busy or connection.closing else selectors.EVENT_READ
        events |= selectors.EVENT_WRITE if connection.outgoing else 0
        registered = self.is_registered(connection)
        if events and registered:
            self.selector.modify(connection.socket, events, connection)
        elif events:
            self.selector.register(connection.socket, events, connection)
        elif registered:
            self.selector.unregister(connection.socket)

    def is_open(self, connection: Connection) -> bool:
        return self.connections.get(connection.key) is connection

    def is_registered(self, connection: Connection) -> bool:
        try:
            self.selector.get_key(connection.socket)
        except KeyError:
            return False
        return True

    def notice(self, connection: Connection, text: str) -> None:
        REFUSALS.warning(LOGGER, "connection from %s: %s", connection.peer, text)

    # Time and the end

    def expire_idle(self) -> None:
        now = time.monotonic()
        for connection in list(self.connections.values()):
            if not connection.busy and now - connection.last_activity >= self.limits.idle_seconds:
                LOGGER.debug("closing idle MLLP connection from %s", connection.peer)
                self.close(connection)

    def close(self, connection: Connection) -> None:
        if not self.is_open(connection):
            return
        del self.connections[connection.key]
        if self.is_registered(connection):
            self.selector.unregister(connection.socket)
        connection.socket.close()

    def drain(self) -> None:
        """After `stop`: accept nothing more, answer what the workers hold, write the answers."""
        if not self.accept_paused_until:
            self.selector.unregister(self.listener)
        self.listener.close()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while time.monotonic() < deadline and any(held.busy or held.outgoing for held in self.connections.values()):
            for key, mask in self.selector.select(POLL_SECONDS):
                if key.data == "wake":
                    self.drain_wake()
                elif isinstance(key.data, Connection) and mask & selectors.EVENT_WRITE:
                    self.write(key.data)
            self.deliver_answers()

    def close_everything(self) -> None:
        self.workers.shutdown(wait=True)
        for connection in list(self.connections.values()):
            self.close(connection)
        for sock in (self.listener, self.wake_reader, self.wake_writer):
            sock.close()
        self.selector.close()

    def wake(self) -> None:
        with contextlib.suppress(OSError):  # already awake (the pair is full), or closed
            self.wake_writer.send(b"\0")

    def drain_wake(self) -> None:
        try:
            while self.wake_reader.recv(4096):
                pass
        except (BlockingIOError, OSError):
            return


def listening_socket(address: tuple[str, int]) -> socket.socket:
    """A non-blocking listening socket on `address` (raises OSError with the system's own words)."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def abort(sock: socket.socket) -> None:
    """Close a refused connection at once, without waiting on the peer."""
    with contextlib.suppress(OSError):
        sock.close()
