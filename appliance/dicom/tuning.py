"""pynetdicom settings and two narrow corrections, all applied once by `apply()`.

Measured on the target machine (shared/research/pynetdicom-performance.md):
- TCP_NODELAY on every DICOM socket: without it every DIMSE round trip waits ~40 ms for a delayed
  ACK (a 600-image retrieve takes 17 s instead of 3 s). pynetdicom never sets it.
- The acceptor's presentation contexts are only read during negotiation, yet pynetdicom deep-copies
  the whole list for every association (~30-50 ms with every storage SOP class); we share it.
- Logging every C-FIND identifier costs 12% on large answers and would put patient data in the
  general log: off.
- Files are streamed from disk on retrieve when their transfer syntax was accepted
  (STORE_SEND_CHUNKED_DATASET): no decode, no re-encode.
- A requestor's reactor thread can take the C-STORE-RSP meant for `send_c_store` (a race in
  pynetdicom 3.0: the reactor checks its pause flag before the sender clears it), stalling a C-MOVE
  for the DIMSE timeout. `serialise_reactor` closes the window with one lock.
- pynetdicom's association and DUL threads poll every 1 ms; each image then waits up to twice that
  for nothing. While at most two associations are open they poll every 0.2 ms instead (more
  threads polling that fast would burn both cores); `PollingClock` decides.
- Command sets (group 0000, implicit VR little endian, a dozen simple elements) are encoded by a
  small dedicated writer instead of pydicom's generic one, twice per DIMSE message
  (`encode_command_set`), and so are C-FIND and worklist identifiers (`encoding`); anything unusual
  goes to pydicom.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Any

import pydicom.config
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pynetdicom import _config, association, dimse_messages, dul, evt, transport
from pynetdicom.events import Event

from appliance.dicom import encoding

_applied = False
FAST_POLL_SECONDS = 0.0002
FAST_POLL_MAXIMUM_ASSOCIATIONS = 2
SLOW_POLL_SECONDS = 0.001


class PollingClock:
    """Stands in for the `time` module inside pynetdicom's association and DUL modules."""

    def __init__(self) -> None:
        self.open_connections = 0
        self.lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        if seconds <= SLOW_POLL_SECONDS and self.open_connections <= FAST_POLL_MAXIMUM_ASSOCIATIONS:
            seconds = min(seconds, FAST_POLL_SECONDS)
        time.sleep(seconds)

    def opened(self, _event: Event) -> None:
        with self.lock:
            self.open_connections += 1

    def closed(self, _event: Event) -> None:
        with self.lock:
            self.open_connections -= 1

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


CLOCK = PollingClock()


def apply() -> None:
    """Set the process-wide pynetdicom and pydicom options (idempotent)."""
    global _applied
    if _applied:
        return
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    _config.STORE_SEND_CHUNKED_DATASET = True
    _config.LOG_HANDLER_LEVEL = "none"
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    pydicom.config.settings.writing_validation_mode = pydicom.config.IGNORE
    transport.deepcopy = share_contexts  # type: ignore[assignment,attr-defined]
    association.time = CLOCK  # type: ignore[assignment,attr-defined]
    dul.time = CLOCK  # type: ignore[assignment,attr-defined]
    dimse_messages.encode = encode_command_set  # type: ignore[assignment,attr-defined]
    encoding.install()
    _applied = True


def share_contexts(contexts: list[Any]) -> list[Any]:
    """Stands in for pynetdicom's per-association deepcopy of the acceptor's contexts."""
    return list(contexts)


def set_no_delay(event: Event) -> None:
    """EVT_CONN_OPEN handler: turn off Nagle's algorithm on the association's socket."""
    association_socket = event.assoc.dul.socket
    if association_socket is not None and association_socket.socket is not None:
        association_socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def serialise_reactor(event: Event) -> None:
    """EVT_CONN_OPEN handler for associations we request (C-MOVE sub-associations).

    The reactor polls DIMSE without blocking; a sender clears the reactor checkpoint and then
    sends. Holding one lock around the reactor's poll, and taking it once before each send, means
    that after a send starts the reactor can no longer take a message off the queue.
    """
    association = event.assoc
    dimse = association.dimse
    lock = threading.RLock()
    checkpoint = association._reactor_checkpoint
    original_get = dimse.get_msg
    original_send = dimse.send_msg

    def get_msg(block: bool = False) -> Any:
        if block:
            return original_get(block=True)
        with lock:
            if not checkpoint.is_set():
                return None, None
            return original_get(block=False)

    def send_msg(primitive: Any, context_id: int) -> None:
        with lock:
            pass
        original_send(primitive, context_id)

    dimse.get_msg = get_msg  # type: ignore[method-assign]
    dimse.send_msg = send_msg  # type: ignore[method-assign]


PYDICOM_ENCODE = dimse_messages.encode  # type: ignore[attr-defined]
TEXT_PADDING = {"UI": b"\0", "AE": b" ", "SH": b" ", "LO": b" ", "CS": b" "}


def encode_command_set(
    dataset: Dataset, is_implicit_vr: bool, is_little_endian: bool, deflated: bool = False
) -> bytes | None:
    """Encode a DIMSE command set (PS3.7 E.1: group 0000, implicit VR little endian)."""
    if not (is_implicit_vr and is_little_endian) or deflated:
        return PYDICOM_ENCODE(dataset, is_implicit_vr, is_little_endian, deflated)
    parts = []
    for element in dataset:
        value = command_value(element.tag, element.VR, element.value)
        if value is None:
            return PYDICOM_ENCODE(dataset, is_implicit_vr, is_little_endian, deflated)
        parts.append(struct.pack("<HHI", element.tag.group, element.tag.element, len(value)) + value)
    return b"".join(parts)


def command_value(tag: Any, vr: str, value: Any) -> bytes | None:
    """The encoded value of one command element, or None when pydicom must handle it."""
    if tag.group != 0 or isinstance(value, (MultiValue, list, tuple)):
        return None
    if value is None or value == "":
        return b""
    if vr == "US":
        return struct.pack("<H", value)
    if vr == "UL":
        return struct.pack("<I", value)
    if vr in TEXT_PADDING and isinstance(value, str) and value.isascii():
        encoded = value.encode("ascii")
        return encoded + TEXT_PADDING[vr] if len(encoded) % 2 else encoded
    return None


CONNECTION_HANDLERS = [
    (evt.EVT_CONN_OPEN, set_no_delay),
    (evt.EVT_CONN_OPEN, CLOCK.opened),
    (evt.EVT_CONN_CLOSE, CLOCK.closed),
]
REQUESTOR_HANDLERS = [*CONNECTION_HANDLERS, (evt.EVT_CONN_OPEN, serialise_reactor)]
