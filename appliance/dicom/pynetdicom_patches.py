"""Everything the appliance changes in pynetdicom, in one place, each change with its reason and
what it gains, measured one patch at a time by `make bench` (`tests/bench/bench_patches.py`: the
archive daemon with every patch, then without each; a percentage below is how much slower or
costlier the archive is without the patch).

Process-wide, applied by `apply()`:
- `no_delay`: TCP_NODELAY on every DICOM socket (EVT_CONN_OPEN handlers below). Without it every
  DIMSE round trip waits for a delayed ACK: a C-GET of 200 images takes 4.8 s instead of 1.0 s, a
  C-MOVE 7.2 s instead of 1.2 s.
- `shared_contexts`: the acceptor's presentation contexts are only read during negotiation, yet
  pynetdicom deep-copies the whole list (179 contexts, 2,738 transfer syntaxes here) for every
  association: 19 ms of CPU; an association (open, C-ECHO, release) takes 34 ms instead of 23 ms.
  We hand it a shallow copy.
- `quiet_identifiers`: logging every C-FIND identifier costs 12 % on large answers and would put
  patient data in the general log: off (a documented `_config` switch; not in the bench).
- `streamed_files`: files are streamed from disk on retrieve when their transfer syntax was accepted
  (`STORE_SEND_CHUNKED_DATASET`, a documented switch): no decode, no re-encode.
- `fast_polling`: pynetdicom's association and DUL threads poll every 1 ms, so each image waits up to
  twice that for nothing. While at most two associations are open they poll every 0.2 ms
  (`PollingClock`); more threads polling that fast would burn both cores. C-GET of 200 images
  1.28 s instead of 1.02 s (+25 %), C-MOVE +24 %; no gain on C-FIND; it costs about 15 % more CPU.
- `command_writer`: DIMSE command sets (group 0000, a dozen simple elements) are encoded by a small
  dedicated writer instead of pydicom's generic one, twice per message (13 µs instead of 130 µs, micro-benchmark).
  Archive CPU: C-FIND of 500 matches 250 ms instead of 385 ms (+54 %), C-GET and C-MOVE +22 to
  +24 %; wall-clock +16 to +28 %.
- `identifier_writer`: C-FIND and worklist identifiers are written by `encoding.encode_identifier`
  (byte-identical to pydicom's, tested) instead of pydicom's writer: about 0.2 ms of CPU per
  answer, C-FIND of 500 matches 250 ms of CPU instead of 345 ms (wall-clock +8 %, within the noise).
  It also passes on identifiers written beforehand (`encoding.PreEncoded`: the worklist's kept
  answers); without this patch the worklist builds Datasets again (`worklist_scp`).
Per association (installed by the services' EVT_CONN_OPEN / EVT_ESTABLISHED handlers):
- `serialise_reactor` (correctness): a requestor's reactor thread can take the C-STORE-RSP meant for
  `send_c_store` (pynetdicom 3.0: the reactor checks its pause flag before the sender clears it),
  stalling a C-MOVE sub-association for the DIMSE timeout. One lock closes the window. It costs
  nothing measurable (the stall did not occur in the bench's 15 C-MOVEs without it).
- `throttled_retrieve_responses`: C-GET/C-MOVE Pending responses at most every 0.2 s (they are
  optional, PS3.4 C.4.2.3, C.4.3.3; one per image doubles the messages of a retrieve): archive CPU
  for C-GET and C-MOVE of 200 images +19 to +22 % without it (wall-clock within the noise).
- the final C-GET / C-MOVE status (correctness, in force on any version: it only wraps
  `dimse.send_msg`, through which every message goes): pynetdicom's handler protocol has no way to
  refuse a C-GET before its sub-operation count, or a C-MOVE before its destination; the handler
  notes the refusal (`refuse_retrieve`: 0124H, A900H) and this filter puts it in the final response.
  A C-MOVE whose known destination refused the association answers A702 (unable to perform
  sub-operations) instead of pynetdicom's A801 (destination unknown), with the address in the log.

Measured on a shared 2-vCPU KVM guest (AMD EPYC), Debian 12, Python 3.11.7, pynetdicom 3.0.4,
pydicom 3.0.2, DCMTK 3.6.7, loopback, with other jobs running: 1-minute load average 1.4 to 4.9.
`make bench` 5 times (CPU times: the last 3), each 3 rounds through every variant; figures are the
medians of the runs' medians. The same variant varied by up to 30 % wall-clock between runs (the
CPU times less), so only the larger differences mean anything.

The internal patches (all but `no_delay`, a socket option) are applied only to the pynetdicom
versions they were written and measured against (`PATCHED_VERSIONS`): on another version the
internals may have changed, so only the documented switches and `no_delay` are applied (the
per-association handlers then do nothing) and a warning says so. This module still imports there.
`tests/unit/dicom/test_pynetdicom_patches.py` is the canary: it fails when the source of a patched
internal changes, so that an upgrade re-checks every patch here.

Each patch can be left out by name, `apply(disabled=...)`, to measure what it gains. The daemons
call `apply()`, which reads the names from the environment variable `APPLIANCE_BENCH_DISABLED_PATCHES`
(comma-separated): a measurement aid set only by `tests/bench/bench_patches.py`, not a setting.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pydicom.config
import pynetdicom
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pynetdicom import _config, association, dimse_messages, dsutils, dul, evt, service_class, transport
from pynetdicom.dimse_primitives import C_GET, C_MOVE
from pynetdicom.events import Event

from appliance.dicom import encoding
from appliance.dicom.statuses import MOVE_DESTINATION_UNKNOWN, PENDING, UNABLE_TO_PERFORM_SUBOPERATIONS

LOGGER = logging.getLogger(__name__)

PATCHED_VERSIONS = ("3.0.",)
PATCHES = (
    "no_delay",
    "shared_contexts",
    "fast_polling",
    "command_writer",
    "identifier_writer",
    "serialise_reactor",
    "throttled_retrieve_responses",
)
PUBLIC_PATCHES = frozenset({"no_delay"})  # only a socket option: in force on any pynetdicom version
MEASUREMENT_ENVIRONMENT = "APPLIANCE_BENCH_DISABLED_PATCHES"
PENDING_INTERVAL_SECONDS = 0.2
MOVE_DESTINATION_ATTRIBUTE = "appliance_move_destination"
REFUSAL_ATTRIBUTE = "appliance_retrieve_refusal"
SUBOPERATION_COUNTERS = (
    "NumberOfRemainingSuboperations",
    "NumberOfCompletedSuboperations",
    "NumberOfFailedSuboperations",
    "NumberOfWarningSuboperations",
)
FAST_POLL_SECONDS = 0.0002
FAST_POLL_MAXIMUM_ASSOCIATIONS = 2
SLOW_POLL_SECONDS = 0.001
_disabled: frozenset[str] = frozenset()


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


def apply(disabled: frozenset[str] | None = None) -> bool:
    """Set the documented switches, and patch pynetdicom's internals when its version is one the
    patches were written for, except the patches named in `disabled` (None: those named in
    `MEASUREMENT_ENVIRONMENT`, normally none). Can be called again; returns whether this pynetdicom
    version takes the internal patches. Raises ValueError for an unknown patch name."""
    global _disabled
    _disabled = known_patches(measurement_disabled() if disabled is None else disabled)
    set_switches()
    supported = supported_version(pynetdicom.__version__)
    if not supported:
        LOGGER.warning("pynetdicom %s: internal patches not applied (written for %s)", pynetdicom.__version__,
                       ", ".join(PATCHED_VERSIONS))  # fmt: skip
    if _disabled:
        LOGGER.warning("pynetdicom patches disabled for a measurement: %s", ", ".join(sorted(_disabled)))
    for patch, replacements in REPLACEMENTS.items():
        for replacement in replacements:
            replacement.put(in_force(patch))
    return supported


def set_switches() -> None:
    """pynetdicom's and pydicom's documented switches: `quiet_identifiers`, `streamed_files`, no validation."""
    _config.LOG_REQUEST_IDENTIFIERS = False  # quiet_identifiers
    _config.LOG_RESPONSE_IDENTIFIERS = False
    _config.LOG_HANDLER_LEVEL = "none"
    _config.STORE_SEND_CHUNKED_DATASET = True  # streamed_files
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    pydicom.config.settings.writing_validation_mode = pydicom.config.IGNORE


def known_patches(names: frozenset[str]) -> frozenset[str]:
    """`names`, checked; raises ValueError naming what is not one of `PATCHES`."""
    unknown = names - set(PATCHES)
    if unknown:
        raise ValueError(f"unknown pynetdicom patch(es): {', '.join(sorted(unknown))}; known: {', '.join(PATCHES)}")
    return names


def measurement_disabled() -> frozenset[str]:
    """The patches named (comma-separated) in the environment variable `MEASUREMENT_ENVIRONMENT`.

    A measurement aid for `tests/bench/bench_patches.py`, which sets it for the daemons it starts
    to measure what each patch gains; it is not a setting, and nothing on the box sets it."""
    names = os.environ.get(MEASUREMENT_ENVIRONMENT, "").split(",")
    return frozenset(name.strip() for name in names if name.strip())


def in_force(patch: str) -> bool:
    """Whether `patch` applies: not disabled, and for a patch of internals, on a version it was written for."""
    return patch not in _disabled and (patch in PUBLIC_PATCHES or supported_version(pynetdicom.__version__))


def supported_version(version: str) -> bool:
    """Whether the internal patches were written and measured against this pynetdicom `version`."""
    return version.startswith(PATCHED_VERSIONS)


@dataclass(frozen=True)
class Replacement:
    """A global of a pynetdicom module that a process-wide patch replaces."""

    module: ModuleType
    name: str
    original: Any
    patched: Any

    def put(self, patched: bool) -> None:
        """Put the replacement in, or the original back (a global this pynetdicom lacks stays absent)."""
        if patched:
            setattr(self.module, self.name, self.patched)
        elif self.original is not None:
            setattr(self.module, self.name, self.original)
        elif hasattr(self.module, self.name):
            delattr(self.module, self.name)


def replacement(module: ModuleType, name: str, patched: Any) -> Replacement:
    """What patching `module.name` takes; importing this module must not fail on another pynetdicom."""
    return Replacement(module, name, getattr(module, name, None), patched)


def share_contexts(contexts: list[Any]) -> list[Any]:
    """Stands in for pynetdicom's per-association deepcopy of the acceptor's contexts."""
    return list(contexts)


def set_no_delay(event: Event) -> None:
    """EVT_CONN_OPEN handler: turn off Nagle's algorithm on the association's socket (`no_delay`)."""
    if not in_force("no_delay"):
        return
    association_socket = event.assoc.dul.socket
    if association_socket is not None and association_socket.socket is not None:
        association_socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def serialise_reactor(event: Event) -> None:
    """EVT_CONN_OPEN handler for associations we request (C-MOVE sub-associations).

    The reactor polls DIMSE without blocking; a sender clears the reactor checkpoint and then
    sends. Holding one lock around the reactor's poll, and taking it once before each send, means
    that after a send starts the reactor can no longer take a message off the queue.
    """
    if not in_force("serialise_reactor"):
        return
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


PYDICOM_ENCODE = dsutils.encode
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


def throttled_retrieve_responses(event: Event) -> None:
    """EVT_ESTABLISHED handler: filter the C-GET / C-MOVE responses of one association (see above).

    The final status (a refusal the handler decided, A702 for a destination that did not answer) is
    a matter of correctness and is always in force; throttling Pending responses only when the patch
    is.
    """
    association = event.assoc
    original: Any = association.dimse.send_msg
    throttle = in_force("throttled_retrieve_responses")
    last_sent = [0.0]

    def send_msg(primitive: Any, context_id: int) -> None:
        if isinstance(primitive, (C_GET, C_MOVE)) and primitive.Status == PENDING:
            now = time.monotonic()
            if throttle and now - last_sent[0] < PENDING_INTERVAL_SECONDS:
                return
            last_sent[0] = now
        elif isinstance(primitive, (C_GET, C_MOVE)):
            final_response(association, primitive)
        original(primitive, context_id)

    association.dimse.send_msg = send_msg  # type: ignore[method-assign]


def final_response(association: Any, primitive: C_GET | C_MOVE) -> None:
    """The final C-GET / C-MOVE response: a refusal the handler decided, or A702 for a destination
    that did not accept the association."""
    refusal = getattr(association, REFUSAL_ATTRIBUTE, None)
    destination = getattr(association, MOVE_DESTINATION_ATTRIBUTE, "")
    setattr(association, REFUSAL_ATTRIBUTE, None)  # both notes hold for one request only
    setattr(association, MOVE_DESTINATION_ATTRIBUTE, "")
    if refusal is not None:
        primitive.Status = refusal
        for counter in SUBOPERATION_COUNTERS:
            setattr(primitive, counter, None)
    elif isinstance(primitive, C_MOVE) and primitive.Status == MOVE_DESTINATION_UNKNOWN and destination:
        LOGGER.error("C-MOVE: destination %s refused the association or did not answer: A702", destination)
        primitive.Status = UNABLE_TO_PERFORM_SUBOPERATIONS


def refuse_retrieve(association: Any, status: int) -> None:
    """Make the final response of the C-GET / C-MOVE in progress carry `status`: pynetdicom's
    handler protocol has no refusal before the sub-operation count (C-GET) or the destination
    (C-MOVE); the handler then yields 0 sub-operations, or no destination, and this status replaces
    pynetdicom's answer to that."""
    setattr(association, REFUSAL_ATTRIBUTE, status)


def note_move_destination(association: Any, destination: str) -> None:
    """Tell `throttled_retrieve_responses` that the C-MOVE destination is a configured peer."""
    setattr(association, MOVE_DESTINATION_ATTRIBUTE, destination)


CONNECTION_HANDLERS = [
    (evt.EVT_CONN_OPEN, set_no_delay),
    (evt.EVT_CONN_OPEN, CLOCK.opened),
    (evt.EVT_CONN_CLOSE, CLOCK.closed),
]
REQUESTOR_HANDLERS = [*CONNECTION_HANDLERS, (evt.EVT_CONN_OPEN, serialise_reactor)]
# The module globals the process-wide patches replace, by patch (`apply` puts them in or takes them out).
REPLACEMENTS = {
    "shared_contexts": [replacement(transport, "deepcopy", share_contexts)],
    "fast_polling": [replacement(association, "time", CLOCK), replacement(dul, "time", CLOCK)],
    "command_writer": [replacement(dimse_messages, "encode", encode_command_set)],
    "identifier_writer": [replacement(service_class, "encode", encoding.encode_identifier)],
}
