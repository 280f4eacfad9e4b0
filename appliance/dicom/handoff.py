"""Connections handed from the archive's acceptor to the processes that serve them (A5).

Python runs one thread at a time per process, so one process cannot ingest on more than one core.
The archive daemon can therefore run several *serving processes* (`dicom.processes`): its own
process accepts each connection and checks the association request (`guarded_server.Guard`:
calling AE title, size, per-address and total limits), then hands the connection, with the
request it read, to the serving process with the fewest associations open (between equals, the one
last handed the same request bytes, which it keeps decoded), which answers the request and runs the
association to its end.

The channel between the acceptor and a serving process is one AF_UNIX stream socket pair:

- acceptor to server: a connection (its descriptor, `SCM_RIGHTS`) with a fixed header (token,
  request length, peer port, peer host length), then the peer host and the request's bytes;
- server to acceptor: 9-byte messages, a kind and a token: READY once it serves, ENDED when the
  association of a token has ended (its place is free again), RECEIVED when a storage commitment
  request waits to be checked (the acceptor's process runs the check), RELOADED when it has read
  its configuration again (SIGHUP), ALIVE in answer to a liveness question.

The liveness question is a header of zeros (token `QUESTION`) without a descriptor. The server
thread that takes the hand-overs answers it, so an answer says that the process can still take a
connection; the acceptor kills and replaces one that has not answered for a while
(`daemons.serving`).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from dataclasses import dataclass

HEADER = struct.Struct(">QIHB")  # token, request length, peer port, peer host length
MESSAGE = struct.Struct(">cQ")  # kind, token
READY = b"R"
ENDED = b"E"
RELOADED = b"L"
RECEIVED = b"C"
ALIVE = b"A"
QUESTION = 0  # the token of a liveness question (hand-overs count from 1)
BROKEN_OFF = "the channel from the acceptor broke off in the middle of a hand-over"


@dataclass(frozen=True)
class Handed:
    """A connection's association request as the acceptor read it, and where it comes from."""

    token: int
    address: tuple[str, int]
    request: bytes


def channel_pair() -> tuple[socket.socket, socket.socket]:
    """The acceptor's end and the serving process's end of a new channel."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


def hand(channel: socket.socket, connection: socket.socket, handed: Handed) -> None:
    """Send `connection` (a duplicate of its descriptor: the caller closes its own) and its request.
    The caller serialises the sends of one channel. Raises OSError when the serving process is gone."""
    host = handed.address[0].encode()
    header = HEADER.pack(handed.token, len(handed.request), handed.address[1], len(host))
    socket.send_fds(channel, [header], [connection.fileno()])
    channel.sendall(host + handed.request)


def ask_alive(channel: socket.socket) -> None:
    """Ask the serving process whether it is alive (it answers ALIVE), without waiting: raises
    BlockingIOError when its channel is full (it reads nothing), OSError when it is gone. The
    caller serialises the sends of one channel."""
    question = HEADER.pack(QUESTION, 0, 0, 0)
    sent = channel.send(question, socket.MSG_DONTWAIT)
    if sent < len(question):  # a unix stream socket takes so small a message whole; kept whole
        channel.sendall(question[sent:])


def take(channel: socket.socket) -> tuple[socket.socket, Handed] | Handed | None:
    """The next connection handed over, as a socket of this process, and its request; a liveness
    question alone (a `Handed` whose token is `QUESTION`); None when the acceptor has closed the
    channel."""
    header, descriptors, _flags, _address = socket.recv_fds(channel, HEADER.size, 1)
    if not header:
        return None
    connection = socket.socket(fileno=descriptors[0]) if descriptors else None
    header += read_exactly(channel, HEADER.size - len(header))
    if len(header) < HEADER.size:
        raise ConnectionError(BROKEN_OFF)
    token, request_length, port, host_length = HEADER.unpack(header)
    if token == QUESTION and connection is None:
        return Handed(QUESTION, ("", 0), b"")
    body = read_exactly(channel, host_length + request_length)
    if connection is None or len(body) < host_length + request_length:
        raise ConnectionError(BROKEN_OFF)
    return connection, Handed(token, (body[:host_length].decode(), port), body[host_length:])


def read_exactly(channel: socket.socket, count: int) -> bytes:
    """`count` bytes, fewer only when the other end closed."""
    received = bytearray()
    while len(received) < count:
        chunk = channel.recv(count - len(received))
        if not chunk:
            break
        received += chunk
    return bytes(received)


class Reports:
    """What a serving process tells its acceptor; each message sent whole (one lock)."""

    def __init__(self, channel: socket.socket) -> None:
        self.channel = channel
        self.lock = threading.Lock()

    def send(self, kind: bytes, token: int = 0) -> None:
        """Send one message; nothing when the acceptor is gone (this process is then stopping)."""
        with self.lock, contextlib.suppress(OSError):
            self.channel.sendall(MESSAGE.pack(kind, token))

    def ready(self) -> None:
        self.send(READY)

    def reloaded(self) -> None:
        self.send(RELOADED)

    def ended(self, token: int) -> None:
        self.send(ENDED, token)

    def alive(self) -> None:
        self.send(ALIVE)

    def set(self) -> None:
        """A storage commitment request waits to be checked (stands for the acceptor's event)."""
        self.send(RECEIVED)


def next_report(channel: socket.socket) -> tuple[bytes, int] | None:
    """The next message of a serving process; None when it has closed its end (it ended; a reset
    when it was killed with something left unread)."""
    try:
        message = read_exactly(channel, MESSAGE.size)
    except OSError:
        return None
    if len(message) < MESSAGE.size:
        return None
    kind, token = MESSAGE.unpack(message)
    return bytes(kind), int(token)
