"""Helpers for the HL7 tests: golden messages, a persistent MLLP client, reading ACKs, a fake RIS."""

from __future__ import annotations

import socket
import socketserver
import threading
from pathlib import Path
from typing import Any

from appliance.hl7.mllp import frame, read_answer

DATA = Path(__file__).parent / "data" / "hl7"


def golden(name: str) -> bytes:
    return (DATA / name).read_bytes()


def replaced(message: bytes, **replacements: str) -> bytes:
    """The message with `old=new` texts replaced (ASCII keys: control IDs, IPPs, order numbers)."""
    for old, new in replacements.items():
        message = message.replace(old.encode("ascii"), new.encode("ascii"))
    return message


def segment_field(answer: bytes, segment: str, number: int) -> str:
    """Field `number` of the first `segment` of an answer (MSH counted as in the standard)."""
    for line in answer.decode("latin-1").split("\r"):
        fields = line.split("|")
        if fields[0] == segment:
            if segment == "MSH":
                fields = ["MSH", "|", *fields[1:]]
            return fields[number] if number < len(fields) else ""
    return ""


def ack_code(answer: bytes) -> str:
    return segment_field(answer, "MSA", 1)


class MllpClient:
    """One TCP connection to an MLLP listener; `send` waits for the answer."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.connection = socket.create_connection((host, port), timeout=30)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, message: bytes) -> bytes:
        self.connection.sendall(frame(message))
        return read_answer(self.connection, timeout=30)

    def send_raw(self, data: bytes) -> None:
        self.connection.sendall(data)

    def read(self) -> bytes:
        return read_answer(self.connection, timeout=30)

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> MllpClient:
        return self

    def __exit__(self, *_exception: Any) -> None:
        self.close()


class FakeRis:
    """A test MLLP server playing the RIS: records every message and answers AA, or AE to the
    control IDs listed in `refuse`."""

    def __init__(self, port: int, refuse: frozenset[str] = frozenset()) -> None:
        self.port = port
        self.refuse = refuse
        self.received: list[bytes] = []
        self.server: socketserver.ThreadingTCPServer | None = None

    def start(self) -> FakeRis:
        received = self.received
        refuse = self.refuse

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                while True:
                    try:
                        message = read_answer(self.request, timeout=10)
                    except Exception:
                        return
                    received.append(message)
                    control_id = segment_field(message, "MSH", 10)
                    code = "AE" if control_id in refuse else "AA"
                    self.request.sendall(
                        frame(f"MSH|^~\\&|RIS||PACS||20250101||ACK|X|P|2.5\rMSA|{code}|{control_id}\r".encode())
                    )

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
