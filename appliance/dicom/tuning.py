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
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import pydicom.config
from pynetdicom import _config, evt, transport
from pynetdicom.events import Event

_applied = False


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


CONNECTION_HANDLERS = [(evt.EVT_CONN_OPEN, set_no_delay)]
REQUESTOR_HANDLERS = [(evt.EVT_CONN_OPEN, set_no_delay), (evt.EVT_CONN_OPEN, serialise_reactor)]
