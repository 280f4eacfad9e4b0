"""Raw DICOM upper-layer PDUs for tests that play a broken or hostile peer (PS3.8 9.3): built with
pynetdicom's encoder, then sent (and damaged) on a plain socket."""

from __future__ import annotations

import socket
import struct
import time

from pynetdicom.pdu import A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import A_ASSOCIATE, MaximumLengthNotification
from pynetdicom.presentation import build_context

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
VERIFICATION = "1.2.840.10008.1.1"
EXPLICIT_LITTLE = "1.2.840.10008.1.2.1"
IMPLICIT_LITTLE = "1.2.840.10008.1.2"


def associate_request(
    calling: str,
    called: str = "APPLIANCE",
    contexts: tuple[tuple[str, tuple[str, ...]], ...] = ((VERIFICATION, (EXPLICIT_LITTLE, IMPLICIT_LITTLE)),),
    maximum_length: int = 16384,
) -> bytes:
    """An A-ASSOCIATE-RQ PDU proposing `contexts` (abstract syntax, transfer syntaxes) as 1, 3, 5..."""
    primitive = A_ASSOCIATE()
    primitive.application_context_name = APPLICATION_CONTEXT
    primitive.calling_ae_title = calling
    primitive.called_ae_title = called
    proposed = []
    for number, (abstract, syntaxes) in enumerate(contexts):
        context = build_context(abstract, list(syntaxes))
        context.context_id = 2 * number + 1
        proposed.append(context)
    primitive.presentation_context_definition_list = proposed
    length = MaximumLengthNotification()
    length.maximum_length_received = maximum_length
    primitive.user_information = [length]
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(primitive)
    return bytes(pdu.encode())


def with_calling(request: bytes, calling: bytes) -> bytes:
    """`request` with the calling AE title field replaced by `calling` (16 bytes, padded)."""
    return request[:26] + calling.ljust(16, b" ")[:16] + request[42:]


def items(request: bytes) -> list[tuple[int, int]]:
    """(offset, type) of each variable item of an A-ASSOCIATE-RQ."""
    found, position = [], 74
    while position + 4 <= len(request):
        found.append((position, request[position]))
        position += 4 + struct.unpack_from(">H", request, position + 2)[0]
    return found


def with_context_id(request: bytes, context_id: int) -> bytes:
    """`request` with its first presentation context's ID set to `context_id`."""
    offset = next(position for position, kind in items(request) if kind == 0x20)
    return request[: offset + 4] + bytes([context_id]) + request[offset + 5 :]


def p_data(context_id: int, fragments: list[tuple[int, bytes]]) -> bytes:
    """A P-DATA-TF PDU of (message control header, bytes) fragments on one context."""
    body = b"".join(struct.pack(">IBB", len(data) + 2, context_id, header) + data for header, data in fragments)
    return struct.pack(">BBI", 0x04, 0, len(body)) + body


IP_BIND_ADDRESS_NO_PORT = 24  # Linux 4.2, <linux/in.h>
RELEASE_REQUEST = struct.pack(">BBIL", 0x05, 0, 4, 0)


def connect(port: int, source: str = "127.0.0.1", timeout: float = 5) -> socket.socket:
    """A TCP connection to the daemon on 127.0.0.1, from `source` (another loopback address plays
    another machine)."""
    connection = socket.socket()
    connection.settimeout(timeout)
    # The port is chosen at connect() time, so that it never meets one of the daemon's TIME_WAIT.
    connection.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
    connection.bind((source, 0))
    connection.connect(("127.0.0.1", port))
    return connection


def read_pdu(connection: socket.socket, timeout: float = 5) -> bytes:
    """The next PDU the daemon sends (b'' when it closed first)."""
    connection.settimeout(timeout)
    header = receive_exactly(connection, 6)
    if len(header) < 6:
        return b""
    return header + receive_exactly(connection, struct.unpack_from(">I", header, 2)[0])


def receive_exactly(connection: socket.socket, count: int) -> bytes:
    received = bytearray()
    while len(received) < count:
        try:
            chunk = connection.recv(count - len(received))
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        received += chunk
    return bytes(received)


def closed_by_peer(connection: socket.socket, timeout: float = 5) -> bool:
    """Whether the daemon closes the connection within `timeout` (anything it still sends is read)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        connection.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if not connection.recv(65536):
                return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
    return False


def rejection(port: int, calling: str, abstract_syntax: str = VERIFICATION) -> tuple[int, int, int] | None:
    """(result, source, reason) of the A-ASSOCIATE-RJ the daemon answers `calling` proposing
    `abstract_syntax`, read on a plain socket; None when it answers otherwise. pynetdicom's own
    requestor cannot tell this reliably: when the rejection comes fast, its DUL thread may read it
    and close the socket before its main thread checks that the socket is connected, and the
    association is then reported aborted instead of rejected (about 1 in 20 on loopback)."""
    with connect(port) as connection:
        proposed = ((abstract_syntax, (EXPLICIT_LITTLE, IMPLICIT_LITTLE)),)
        connection.sendall(associate_request(calling, contexts=proposed))
        answer = read_pdu(connection)
    if answer[:1] != b"\x03" or len(answer) < 10:
        return None
    return answer[7], answer[8], answer[9]
