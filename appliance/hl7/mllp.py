"""MLLP (HL7 v2 Minimal Lower Layer Protocol): frames are 0x0B, the message, 0x1C 0x0D.

`FrameBuffer` cuts received bytes into frames (the listener, `listener.py`, feeds it from a selector);
`FrameReader` reads frames from a blocking socket; `send_and_receive` is the client side (the
outbound queue, the command line and the tests use it).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
DEFAULT_MAXIMUM_BYTES = 1024 * 1024
IDLE_TIMEOUT_SECONDS = 300.0
POLL_SECONDS = 0.5
RECEIVE_BYTES = 65536

Notice = Callable[[str], None]  # told what was dropped (bytes outside frames), for the log


class FrameTooLarge(Exception):
    """A frame grew past the size limit before its end block arrived."""


class ConnectionClosed(Exception):
    """The peer closed the connection (or it timed out) before a complete frame."""


def frame(message: bytes) -> bytes:
    return START_BLOCK + message + END_BLOCK


def ignore(_text: str) -> None:
    """A `Notice` that says nothing (the client side)."""


class FrameBuffer:
    """Bytes received on one connection, cut into frames; bytes outside a frame are dropped and
    `notice` is told so. At most `maximum_bytes` of a frame are held."""

    def __init__(self, maximum_bytes: int, notice: Notice = ignore) -> None:
        self.maximum_bytes = maximum_bytes
        self.notice = notice
        self.buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def inside_a_frame(self) -> bool:
        """Whether part of a frame has been received (its end block not yet)."""
        return bool(self.buffer)

    def next_frame(self) -> bytes | None:
        """The content of the next complete frame, or None. Raises FrameTooLarge."""
        found = self.complete_frame()
        if found is None and len(self.buffer) > self.maximum_bytes + len(START_BLOCK) + len(END_BLOCK):
            raise FrameTooLarge(f"frame larger than {self.maximum_bytes} bytes")
        return found

    def complete_frame(self) -> bytes | None:
        start = self.buffer.find(START_BLOCK)
        if start < 0:
            if self.buffer.strip():
                self.notice(f"skipped {len(self.buffer)} bytes outside any MLLP frame")
            self.buffer.clear()
            return None
        if start > 0:
            if self.buffer[:start].strip():
                self.notice(f"skipped {start} bytes before an MLLP start block")
            del self.buffer[:start]
        end = self.buffer.find(END_BLOCK, 1)
        if end < 0:
            return None
        restart = self.buffer.rfind(START_BLOCK, 1, end)
        if restart > 0:
            self.notice(f"dropped {restart} bytes of a frame that a new start block interrupted")
            del self.buffer[:restart]
            end -= restart
        content = bytes(self.buffer[1:end])
        del self.buffer[: end + len(END_BLOCK)]
        return content


class FrameReader:
    """Reads MLLP frames from a blocking socket (with a short timeout set), until `stopping()`."""

    def __init__(
        self, connection: socket.socket, maximum_bytes: int, stopping: Callable[[], bool], notice: Notice = ignore
    ) -> None:
        self.connection = connection
        self.stopping = stopping
        self.frames = FrameBuffer(maximum_bytes, notice)

    def next_frame(self, idle_timeout: float = IDLE_TIMEOUT_SECONDS) -> bytes:
        """The content of the next frame. Raises ConnectionClosed or FrameTooLarge."""
        last_data = time.monotonic()
        while True:
            found = self.frames.next_frame()
            if found is not None:
                return found
            if self.stopping() and not self.frames.inside_a_frame():
                raise ConnectionClosed("stopping")
            try:
                chunk = self.connection.recv(RECEIVE_BYTES)
            except TimeoutError:
                if time.monotonic() - last_data >= idle_timeout:
                    raise ConnectionClosed("idle timeout") from None
                continue
            if not chunk:
                inside = " inside a frame" if self.frames.inside_a_frame() else ""
                raise ConnectionClosed(f"closed by the peer{inside}")
            last_data = time.monotonic()
            self.frames.feed(chunk)


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
