"""MLLP (HL7 v2 Minimal Lower Layer Protocol): frames are 0x0B, the message, 0x1C 0x0D.

`MllpServer` is a threaded TCP server: one thread per connection, messages answered in order on
that connection, a size limit per frame, an idle timeout, and a stop that lets the message in
flight finish. `send_and_receive` is the client side (the outbound queue and the tests use it).
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable

LOGGER = logging.getLogger(__name__)

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
DEFAULT_MAXIMUM_BYTES = 1024 * 1024
IDLE_TIMEOUT_SECONDS = 300.0
POLL_SECONDS = 0.5
RECEIVE_BYTES = 65536


class FrameTooLarge(Exception):
    """A frame grew past the size limit before its end block arrived."""


class ConnectionClosed(Exception):
    """The peer closed the connection (or it timed out) before a complete frame."""


def frame(message: bytes) -> bytes:
    return START_BLOCK + message + END_BLOCK


class FrameReader:
    """Reads MLLP frames from a socket; bytes before a start block are skipped (and logged)."""

    def __init__(self, connection: socket.socket, maximum_bytes: int, stopping: Callable[[], bool]) -> None:
        self.connection = connection
        self.maximum_bytes = maximum_bytes
        self.stopping = stopping
        self.buffer = bytearray()

    def next_frame(self, idle_timeout: float = IDLE_TIMEOUT_SECONDS) -> bytes:
        """The content of the next frame. Raises ConnectionClosed or FrameTooLarge."""
        last_data = time.monotonic()
        while True:
            found = self.complete_frame()
            if found is not None:
                return found
            if len(self.buffer) > self.maximum_bytes + len(START_BLOCK) + len(END_BLOCK):
                raise FrameTooLarge(f"frame larger than {self.maximum_bytes} bytes")
            if self.stopping() and not self.buffer:
                raise ConnectionClosed("stopping")
            try:
                chunk = self.connection.recv(RECEIVE_BYTES)
            except TimeoutError:
                if time.monotonic() - last_data >= idle_timeout:
                    raise ConnectionClosed("idle timeout") from None
                continue
            if not chunk:
                raise ConnectionClosed("closed by the peer" + (" inside a frame" if self.buffer else ""))
            last_data = time.monotonic()
            self.buffer += chunk

    def complete_frame(self) -> bytes | None:
        start = self.buffer.find(START_BLOCK)
        if start < 0:
            if self.buffer.strip():
                LOGGER.warning("skipped %d bytes outside any MLLP frame", len(self.buffer))
            self.buffer.clear()
            return None
        if start > 0:
            LOGGER.warning("skipped %d bytes before an MLLP start block", start)
            del self.buffer[:start]
        end = self.buffer.find(END_BLOCK, 1)
        if end < 0:
            return None
        restart = self.buffer.rfind(START_BLOCK, 1, end)
        if restart > 0:
            LOGGER.warning("dropped %d bytes of a frame that a new start block interrupted", restart)
            del self.buffer[:restart]
            end -= restart
        content = bytes(self.buffer[1:end])
        del self.buffer[: end + len(END_BLOCK)]
        return content


Handler = Callable[[bytes, str], bytes]
OversizeAnswer = Callable[[], bytes]


class MllpServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """Threaded MLLP listener: `handler(message, peer) -> answer` for each frame received."""

    allow_reuse_address = True
    daemon_threads = False
    block_on_close = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: Handler,
        oversize_answer: OversizeAnswer,
        maximum_bytes: int = DEFAULT_MAXIMUM_BYTES,
    ) -> None:
        self.message_handler = handler
        self.oversize_answer = oversize_answer
        self.maximum_bytes = maximum_bytes
        self.stopping = threading.Event()
        super().__init__(address, ConnectionHandler)

    def stop(self) -> None:
        """Stop accepting; connections finish the message in flight, then close; wait for them."""
        self.stopping.set()
        self.shutdown()
        self.server_close()


class ConnectionHandler(socketserver.BaseRequestHandler):
    server: MllpServer

    def handle(self) -> None:
        connection: socket.socket = self.request
        connection.settimeout(POLL_SECONDS)
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = f"{self.client_address[0]}:{self.client_address[1]}"
        reader = FrameReader(connection, self.server.maximum_bytes, self.server.stopping.is_set)
        while not self.server.stopping.is_set():
            try:
                message = reader.next_frame()
            except ConnectionClosed as closed:
                LOGGER.debug("connection from %s ended: %s", peer, closed)
                if "inside a frame" in str(closed):
                    LOGGER.warning("connection from %s closed inside a frame (truncated message dropped)", peer)
                return
            except FrameTooLarge as error:
                LOGGER.warning("closing connection from %s: %s", peer, error)
                self.send(connection, self.server.oversize_answer(), peer)
                return
            if not self.send(connection, self.server.message_handler(message, peer), peer):
                return

    def send(self, connection: socket.socket, answer: bytes, peer: str) -> bool:
        try:
            connection.sendall(frame(answer))
        except OSError as error:
            LOGGER.warning("cannot answer %s: %s", peer, error)
            return False
        return True


def send_and_receive(host: str, port: int, message: bytes, timeout: float = 30.0) -> bytes:
    """Send one framed message on a new connection and return the content of the answer frame."""
    with socket.create_connection((host, port), timeout=timeout) as connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection.sendall(frame(message))
        return read_answer(connection, timeout)


def read_answer(connection: socket.socket, timeout: float = 30.0) -> bytes:
    """The content of the next frame on a client connection (raises ConnectionClosed)."""
    connection.settimeout(min(timeout, POLL_SECONDS))
    reader = FrameReader(connection, DEFAULT_MAXIMUM_BYTES * 16, lambda: False)
    return reader.next_frame(idle_timeout=timeout)
