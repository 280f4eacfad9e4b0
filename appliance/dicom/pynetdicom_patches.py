"""Everything the appliance changes in pynetdicom, in one place, each change with its reason and
what it gains, measured one patch at a time by `make bench` (`tests/bench/bench_patches.py`: the
archive daemon with every patch, then without each; a percentage below is how much slower or
costlier the archive is without the patch).

Process-wide, applied by `apply()`:
- `no_delay`: TCP_NODELAY on every DICOM socket (EVT_CONN_OPEN handlers below). Without it every
  DIMSE round trip waits for a delayed ACK: a C-GET of 200 images takes 4.8 s instead of 1.0 s, a
  C-MOVE 7.2 s instead of 1.2 s.
- `quick_ack`: each read of an association's socket is followed by TCP_QUICKACK (Linux), which
  sends at once an acknowledgement the kernel would hold for its delayed-ACK timer (40 ms). A peer
  that leaves Nagle's algorithm on (DCMTK's default unless its TCP_NODELAY variable says otherwise)
  writes a short PDU in two parts and holds the second until the first is acknowledged, so each
  C-STORE response of a retrieve waited 40 ms. 50 CT images to storescp/getscu with Nagle on:
  C-MOVE 2.36 s without it, 0.20 s with it; C-GET 2.30 s / 0.15 s (the reference archive, Orthanc
  1.10, 2.27 s for both: it waits too); storescu with Nagle on, 0.47 s / 0.37 s. With peers that
  turn Nagle off: no difference beyond the noise. One `setsockopt` per read (two per PDU).
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
  Two sleeps are not slept at all: pynetdicom's DUL sleeps once before its first look, which for
  an association we accept holds the request the acceptor read already (`holds_unread`: it looks
  at once), and for one we request comes before its association queues the request (there is no
  connection to poll yet: `woken_by_request` waits for that put). Each was 0.2 to 0.25 ms of every
  association: C-ECHO association set-up 1.67 -> 1.47 ms (medians of 6 alternating runs of 40),
  C-MOVE's first image 18.3-20.3 -> 17.3-19.1 ms (3 alternating runs of 8).
- `socket_wait`: a DUL thread's poll sleep (with `fast_polling`) ends as soon as its socket is
  readable (select with the same timeout) instead of running its course, so a C-STORE response is
  read when it comes. Retrieve of 200 uncompressed CT images to storescp/getscu, medians of 6
  alternating runs (before these two patches, with both, with all but this one): C-MOVE 0.396 s
  without it, 0.329 s with it; C-GET 0.355 s / 0.325 s. Ingest: no difference beyond the noise.
- `wake_on_arrival` (with `fast_polling`, whose clock it runs in): an association's reactor and
  DUL threads no longer poll while idle; each sleeps until something arrives for it, at most
  `WAKE_POLL_SECONDS` (10 ms, for what wakes nobody: pynetdicom's timers, a kill). The reactor
  thread waits on an event set when a DIMSE message or an A-RELEASE/A-ABORT indication is queued
  for it, or a sender asks it to pause; the DUL thread polls its socket and an eventfd written
  when a PDU is queued for it to send, an event for its state machine, or it is asked to stop
  (`Wakeup`). Where that cannot be (TLS, whose buffer poll does not see; bytes already read by
  the guard; not Linux) they poll as before. One idle association used to cost a quarter of a core
  (both threads looking every 0.2 ms), now 2 %; two, half a core, now 5 %. Ingest, daemon alone
  with and without it, 300 CT images over one association, medians of 3 alternating runs: the
  daemon's CPU 2.47 -> 1.89 s, wall-clock 2.77 -> 2.39 s; over four associations 2.35 -> 2.09 s of
  CPU; 300 one-image studies 3.19 -> 2.39 s of CPU, 3.24 -> 2.79 s wall-clock.
- `prompt_kill` (with `fast_polling`, whose clock it runs in): pynetdicom's `Association.kill` asks
  its DUL to stop, which `stop_dul` only does once the DUL is back in its idle state (Sta1), and
  sleeps 10 ms between two asks. A release calls it as soon as the A-RELEASE-RP is in, often
  before the DUL has closed the connection and reached Sta1: the release of a C-MOVE's
  sub-association then took 11 ms instead of about 1 ms, and the C-MOVE's final response waits for
  that release. Timestamps in the daemon, C-MOVEs of 200 images to storescp: 11 ms in 6 of 6, 2 of
  4 and 1 of 6 C-MOVEs in three sittings (none of 16 in a fourth); with the patch, 0.6 to 1.7 ms in
  each of 22. The first 10 ms of an association's kill waits (several threads may kill one
  association) look at the DUL's state every 0.2 ms instead; after that (a DUL waiting out a timer
  after an abort, say) `kill` sleeps as pynetdicom has it.
- `command_writer`: DIMSE command sets (group 0000, a dozen simple elements) are encoded by a small
  dedicated writer instead of pydicom's generic one, twice per message (13 µs instead of 130 µs, micro-benchmark).
  Archive CPU: C-FIND of 500 matches 250 ms instead of 385 ms (+54 %), C-GET and C-MOVE +22 to
  +24 %; wall-clock +16 to +28 %.
- `identifier_writer`: C-FIND and worklist identifiers are written by `encoding.encode_identifier`
  (byte-identical to pydicom's, tested) instead of pydicom's writer: about 0.2 ms of CPU per
  answer, C-FIND of 500 matches 250 ms of CPU instead of 345 ms (wall-clock +8 %, within the noise).
  It also passes on identifiers written beforehand (`encoding.PreEncoded`: the worklist's kept
  answers); without this patch the worklist builds Datasets again (`worklist_scp`).
- `uid_checks`: pynetdicom checks every UID of an A-ASSOCIATE-RQ several times (decoding the PDU,
  making its primitive, building and negotiating presentation contexts) through pydicom's
  `UID.is_valid`, which looks its regular expression up in `re`'s cache each time: about 2,800 checks
  for DCMTK's getscu (120 storage contexts with their syntaxes), half the CPU of the negotiation.
  `uid_is_valid` gives the same answer with the expression compiled once, and remembers it for the
  standard's own UIDs (SOP classes, transfer syntaxes: a bounded set). Decoding getscu's recorded
  request, making its primitive, `retrieve_contexts` and the negotiation take 10.8 ms of CPU
  without it, 6.6 ms with it (minimum of 100, in-process). The other UIDs' answers, and those of
  pynetdicom's UI validator (`_config.VALIDATORS`, its documented table), are kept for the last
  few messages: a C-STORE's SOP Instance UID went three times through each (the request and
  response primitives, `command_reader`'s check, the index's attributes).
- `negotiation_once` (`negotiation.py`): a peer proposes the same presentation contexts on every
  association, yet pynetdicom negotiates them against the archive's 179 contexts, then makes and
  encodes the A-ASSOCIATE-AC, each time. Both are kept for the last 32 distinct inputs (the
  requestor's decoded request, shared by `admission.decoded`, the acceptor's contexts, the
  requested roles; the accept primitive's content): the same answer, the same bytes. DCMTK
  getscu's request (121 storage contexts), in-process, medians of 35: negotiation 2.1-2.5 ms ->
  0.2 ms, the A-ASSOCIATE-AC 3.1-5.7 ms -> 0.04 ms (measured with two qemu guests busy on the
  machine's two cores).
- `accept_first`: pynetdicom's reactor thread queues the A-ASSOCIATE-AC for the DUL thread, then
  goes on with its own work (the EVT_ACCEPTED and EVT_ESTABLISHED handlers, its loop) while the DUL,
  woken, waits for the interpreter lock: the AC left 240-280 us after it was queued. Here the
  reactor waits (lock released, at most `ACCEPT_WAIT_SECONDS`) until the DUL's AE-7 action has
  written it (`send_accept_first`, and AE-7 in the state machine's table of actions followed by a
  signal). In the archive daemon (marks in the process, medians of 90 associations), start of
  the negotiation to AC written 475 -> 346 us; raw A-ASSOCIATE-RQ to -AC from outside, medians of
  200, 4 alternating runs with and without it: one process 1.93-2.27 ms / 2.04-2.41 ms, two
  serving processes 2.41-2.78 ms / 2.41-2.84 ms.
- `requestor_answer` (correctness): a requestor (a C-MOVE's sub-association, a forward, a storage
  commitment report) sends its A-ASSOCIATE-RQ, then its thread looks whether the connection was
  made (pynetdicom 3.0's `_negotiate_as_requestor`: `_is_connected` after `_ready`). A peer that
  answers at once with an A-ASSOCIATE-RJ (or an A-ABORT) has the DUL close the connection after
  queuing the answer; when that happened before the thread looked, it took the closed connection
  for one never made and aborted: the rejection was lost (pynetdicom logged an abort instead of
  the rejection and its reason, and `is_rejected`, which the tests read, was false). With
  `fast_polling` the DUL is quick enough for that: 13 and 15 of 200 transient rejections in a row
  were read as aborts (0 of 150 without `fast_polling`). Here `AssociationSocket._is_connected`
  says whether the connection was made, and stays so once closed (`connection_made`); pynetdicom's
  other readers of it (`ready`, `close`) look first at the socket, None once closed. 0 of 400 with
  it; reading it costs 0.1 us more (a property).
Per association (installed by the services' EVT_CONN_OPEN / EVT_ESTABLISHED handlers):
- `serialise_reactor` (correctness): a requestor's reactor thread can take the C-STORE-RSP meant for
  `send_c_store` (pynetdicom 3.0: the reactor checks its pause flag before the sender clears it),
  stalling a C-MOVE sub-association for the DIMSE timeout. One lock closes the window. It costs
  nothing measurable (the stall did not occur in the bench's 15 C-MOVEs without it).
- `held_reactor`: on a C-MOVE sub-association (any association we request, with
  `serialise_reactor`), the reactor thread stays paused from one `direct_store` to the next
  (`HeldReactor`) instead of being woken after each store and paused again before the next: one
  wake-up of that thread per image, which took the interpreter lock from the sender. The release,
  an abort or a kill resumes it; a response the sender did not read itself ends the hold. Held, it
  still comes out every 50 ms to look at its association between stores (a peer's A-ABORT or
  release request, the DUL's end, the idle timeout). 200 CT images to storescp, one daemon, 16
  and 12 alternating runs with and without it (the peer's files on tmpfs), medians: uncompressed
  C-MOVE 204 -> 189 ms, stored as JPEG-LS to a JPEG-LS peer 155 -> 143 ms; C-GET (not concerned)
  172 / 167 ms.
- `throttled_retrieve_responses`: C-GET/C-MOVE Pending responses at most every 0.2 s (they are
  optional, PS3.4 C.4.2.3, C.4.3.3; one per image doubles the messages of a retrieve): archive CPU
  for C-GET and C-MOVE of 200 images +19 to +22 % without it (wall-clock within the noise).
- `direct_store`: the C-STORE sub-operations of a retrieve (C-GET on its own association, C-MOVE
  sub-associations) are written by `direct_store`: the command set encoded by hand, the data set
  (the stored file's bytes read from disk, or the encoded bytes of a decoded object) cut into
  P-DATA-TF PDUs at the peer's maximum length, and written in blocks of about 1 MB with one system
  call each, instead of one `P_DATA` primitive per PDU through pynetdicom's DUL queue, state machine
  and PDU encoder (with a 1 to 0.2 ms poll between them). The response is read by
  `direct_response`, or as pynetdicom reads it; the DUL's own writes (Pending responses, A-RELEASE)
  take the same per-association lock, so no PDU of another message comes between the PDUs of one
  message (PS3.8 9.3.5.1). The PDU and DIMSE "sent" events are not triggered for these messages
  (the appliance has no handler for them).
- `direct_response`: the response to each of those C-STORE requests is read by the thread that wrote
  the request, straight from the socket, instead of by the DUL thread (woken by its poll, its state
  machine, `StoreReader`, the DIMSE queue, then the sender woken again): 160 us per image before, 76
  us with it (timestamps in the daemon, 2,000 images). The sender holds a per-association read lock
  from just after its request until the response (the DUL thread takes it to look at its socket, so
  they never read at once), peeks, and takes the bytes only when they are one whole plain
  C-STORE-RSP to that request on that context; anything else (a C-CANCEL, an A-ABORT, an Error
  Comment, a PDU not all there, a closed connection, the DUL having read since the request) is left
  to the DUL, woken at once to read it as before. While a sender reads its responses (until 5 ms
  after the last, or until something is queued for the DUL to send) the DUL's idle sleep does not
  end when the socket turns readable: woken at each response only to wait for the lock, it took the
  interpreter lock from the sender (without this, the patch gained 5 %). Not for TLS, nor with
  handlers on the "received" events (not triggered for these responses). 200 CT images, DCMTK getscu
  and movescu to storescp, medians of 4 alternating rounds of 6 runs without and with it:
  uncompressed C-MOVE 0.289 -> 0.247 s, C-GET 0.255 -> 0.207 s; stored as JPEG-LS to a JPEG-LS peer,
  C-MOVE 0.220 -> 0.190 s, C-GET 0.199 -> 0.164 s.
  The response DCMTK's and pynetdicom's SCPs write (the request's UIDs echoed, a status alone) is
  recognised by its bytes (`usual_response`) instead of decoded and checked element by element, the
  status Dataset handed back is made once per status (`status_of`), and the rest of a response whose
  start came alone (DCMTK writes a PDU's header and its fragment apart) is waited for, 2 ms at most,
  instead of leaving the whole response to the DUL; a peer that is late with it (Nagle's algorithm
  on: the rest waits for an acknowledgement) is not waited for again. The response's decoding was a
  third of the sending thread's CPU (py-spy, C-MOVE of the compressed study). Both daemons up, 10
  alternating rounds, medians: stored as JPEG-LS to a JPEG-LS peer, C-MOVE 158 -> 139 ms (the
  archive's CPU 95 -> 80 ms), C-GET 133 -> 121 ms; uncompressed, C-MOVE 213 -> 203 ms, C-GET 194 ->
  182 ms.
- `command_reader`: received P-DATA goes to `StoreReader` instead of `receive_primitive`: a plain
  C-STORE-RQ (its usual elements, ASCII, a data set) or a plain C-STORE-RSP (a status alone) has
  its command set decoded here and its primitive made through pynetdicom's own setters, instead of
  pydicom's reader, a command set Dataset and a copy of each element by keyword (with two copies of
  each data fragment). Anything else is replayed to pynetdicom primitive by primitive, so it reads,
  logs and aborts as it would. In the DUL thread, 35 us instead of 658 us per CT image (512 KB,
  micro-benchmark). On the archive's associations (the requests it stores, the responses of a
  C-GET's sub-operations) and on every association it requests (C-MOVE sub-associations,
  forwarding, storage commitment reports: `REQUESTOR_HANDLERS`). Retrieve as for `socket_wait`:
  C-MOVE 0.403 s without the response side, 0.329 s with it; C-GET 0.373 s / 0.325 s (both
  patches: C-MOVE 0.423 -> 0.329 s, C-GET 0.415 -> 0.325 s, the daemon's CPU 0.30 -> 0.20 s and
  0.26 -> 0.18 s).
- `store_responses`: a C-STORE response (status, optional Error Comment) is encoded by hand and
  written from the association thread through the DUL's socket wrapper (its send lock, its
  transport-closed event), instead of a command set Dataset, a P-DATA queued for the DUL thread
  (woken by its poll), its state machine and PDU encoder; only in the data transfer state, with
  nothing queued for the DUL, no handler on the "sent" events (they are not triggered). 4 us
  instead of 118 us per response plus the DUL's wake-up (micro-benchmark). Both: 200 CT images
  over one association, archive CPU 1.36 s instead of 1.42 s and storescu 1.68 s instead of
  1.91 s (medians of 4 alternating runs, load 1.3 to 2.4: close to the noise of a shared machine);
  400 small images 2.58 s of CPU instead of 3.08 s, storescu 3.20 s instead of 4.06 s.
- `direct_requests`: on the archive's associations, the reactor thread, idle, reads its peer's
  P-DATA-TF PDUs itself (`read_requests`) and gives them to the same `StoreReader`, instead of the
  DUL thread reading each PDU (woken by its poll, the PDU decoded into objects, its state machine,
  the DIMSE queue, then the reactor woken): one thread instead of two per PDU, no hand-over between
  them. It takes over only once the DUL has handed over every PDU it read, and leaves to the DUL,
  for the rest of the association, anything but a P-DATA-TF (an A-RELEASE-RQ, an A-ABORT), a PDU
  over the maximum (refused there), and a PDU malformed or cut short (put back where the DUL reads
  first, so it answers it as before); not for TLS, nor with handlers on the PDU "received" events.
  The daemon alone, DCMTK storescu, medians of 6 alternating runs with and without it: 200 CT
  images over one association 0.610 -> 0.515 s (the archive's CPU 2.32 -> 2.12 ms per image); 400
  small images 0.882 -> 0.791 s (1.78 -> 1.60 ms); four associations at once 0.448 / 0.477 s, and
  0.727 / 0.721 s over 10 runs in a slower hour: no difference there (bound by the cores).
  Answered sooner, a pynetdicom 3.0 requestor without `serialise_reactor` (a script, a gateway
  built on pynetdicom) meets its own race more often: its reactor thread takes the response its
  `send_c_store` waits for, which then times out (here 2 of about 1,200 stores, none without this
  patch; the image is stored, and sent again it is a duplicate of the same bytes). DCMTK's tools
  and the archive's own requestors do not have that race.
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

import contextlib
import functools
import logging
import os
import re
import select
import socket
import ssl
import struct
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from io import BytesIO
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO, Protocol, TypeGuard

import pydicom.config
import pydicom.uid
import pynetdicom
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pynetdicom import _config, acse, association, dimse_messages, dsutils, dul, evt, fsm, service_class, transport
from pynetdicom.dimse_primitives import C_GET, C_MOVE, C_STORE
from pynetdicom.dsutils import split_dataset
from pynetdicom.events import Event
from pynetdicom.pdu_primitives import P_DATA

from appliance.dicom import admission, encoding, negotiation
from appliance.dicom.statuses import MOVE_DESTINATION_UNKNOWN, PENDING, UNABLE_TO_PERFORM_SUBOPERATIONS

LOGGER = logging.getLogger(__name__)

PATCHED_VERSIONS = ("3.0.",)
PATCHES = (
    "no_delay",
    "quick_ack",
    "shared_contexts",
    "fast_polling",
    "socket_wait",
    "wake_on_arrival",
    "command_writer",
    "identifier_writer",
    "uid_checks",
    "negotiation_once",
    "accept_first",
    "requestor_answer",
    "serialise_reactor",
    "held_reactor",
    "throttled_retrieve_responses",
    "direct_store",
    "direct_response",
    "command_reader",
    "store_responses",
    "direct_requests",
    "prompt_kill",
)
QUICK_ACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only
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
SELECT_LIMIT = 1024  # FD_SETSIZE: select() takes no descriptor from here on
_disabled: frozenset[str] = frozenset()


class PollingClock:
    """Stands in for the `time` module inside pynetdicom's association and DUL modules."""

    def __init__(self) -> None:
        self.open_connections = 0
        self.lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        thread = threading.current_thread()
        if holds_unread(thread):
            return
        caller = sys._getframe(1)
        if caller.f_code in REACTOR_LOOPS and woken_on_arrival(thread):
            return
        if (
            caller.f_code is KILL_LOOP
            and in_force("prompt_kill")
            and until_dul_stoppable(caller.f_locals["self"], seconds)
        ):
            return
        if seconds <= SLOW_POLL_SECONDS and self.open_connections <= FAST_POLL_MAXIMUM_ASSOCIATIONS:
            seconds = min(seconds, FAST_POLL_SECONDS)
        if woken_by_request(thread, seconds):
            return
        connection = dul_connection(thread) if in_force("socket_wait") else None
        if connection is None:
            time.sleep(seconds)
            return
        try:  # select (as pynetdicom's own `ready`): poll and epoll round 0.2 ms up to 1 ms
            select.select([connection], [], [], seconds)
        except (OSError, ValueError):  # closed meanwhile: its DUL sees it at its next look
            time.sleep(seconds)

    def opened(self, _event: Event) -> None:
        with self.lock:
            self.open_connections += 1

    def closed(self, _event: Event) -> None:
        with self.lock:
            self.open_connections -= 1

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def holds_unread(thread: threading.Thread) -> bool:
    """Whether `thread` is a DUL thread whose socket wrapper holds bytes already read, unread by the
    DUL: the association request the acceptor read (`GuardedSocket.pending`). No poll of the
    connection sees them, and pynetdicom's DUL sleeps once before its first look: it looks now
    instead (a quarter of a millisecond of every association, issue 14)."""
    if not isinstance(thread, dul.DULServiceProvider):
        return False
    return bool(getattr(thread.socket, "pending", None))


def woken_by_request(thread: threading.Thread, seconds: float) -> bool:
    """Sleep the sleep of a DUL thread not connected yet (of an association being requested: a
    C-MOVE's sub-association, a forward) until its association queues a primitive for it (the
    request, PS3.8 Evt1) or `seconds` pass; False (nothing waited) for any other thread. No poll can
    wait for that put (there is no connection yet), and pynetdicom's first loop sleeps before its
    first look: the request used to wait out that sleep (a quarter of a millisecond)."""
    if not isinstance(thread, dul.DULServiceProvider):
        return False
    association_socket: Any = thread.socket
    if association_socket is None or association_socket._is_connected:
        return False
    primitives = thread.to_provider_queue
    if primitives.empty():
        with primitives.not_empty:  # a put notifies it; one landing just before this waits `seconds`
            primitives.not_empty.wait(seconds)
    return True


def dul_connection(thread: threading.Thread) -> socket.socket | None:
    """The connection whose arrivals end the poll sleep of `thread` (`socket_wait`): a DUL
    thread's socket while it is connected, not TLS (data may wait in its buffer unseen by select)
    and with nothing already read waiting (`GuardedSocket.pending`); None for any other thread."""
    if not isinstance(thread, dul.DULServiceProvider):
        return None
    association_socket: Any = thread.socket
    if association_socket is None or not association_socket._is_connected:
        return None
    if getattr(association_socket, "pending", None):
        return None
    connection = association_socket.socket
    if connection is None or isinstance(connection, ssl.SSLSocket) or connection.fileno() >= SELECT_LIMIT:
        return None
    return connection  # type: ignore[no-any-return]


CLOCK = PollingClock()
# The loops whose idle sleep `wake_on_arrival` takes over: the other sleeps of these threads (a
# sender waiting for its reactor to pause) keep their own, but for `kill`'s (`prompt_kill`).
REACTOR_LOOPS = frozenset({association.Association._run_reactor.__code__, dul.DULServiceProvider.run_reactor.__code__})
WAKE_POLL_SECONDS = 0.01  # `wake_on_arrival`: the longest idle sleep, for what wakes nobody (timers)
KILL_LOOP = association.Association.kill.__code__  # `prompt_kill`: its wait for the DUL to stop
KILL_POLL_SECONDS = 0.0002  # `prompt_kill`: how often a kill looks whether its DUL may stop ...
KILL_POLL_WINDOW_SECONDS = 0.01  # ... for this long after its association's first kill wait
KILL_WAIT_ATTRIBUTE = "appliance_kill_wait"


def until_dul_stoppable(association: Any, seconds: float) -> bool:
    """`prompt_kill`: a sleep of `Association.kill` between two calls of `stop_dul`, which only
    stops a DUL back in its idle state (Sta1), ended as soon as the DUL is there or has ended, at
    most `seconds` (pynetdicom's 10 ms); False (nothing waited) once `KILL_POLL_WINDOW_SECONDS`
    have passed since the association's first kill wait: a DUL that does not stop by then
    (waiting out a timer after an abort, say) is looked at every 10 ms as pynetdicom does, not
    every 0.2 ms for as long. Several threads may kill one association (its reactor as well)."""
    now = time.monotonic()
    first = vars(association).setdefault(KILL_WAIT_ATTRIBUTE, now)
    deadline = min(now + seconds, first + KILL_POLL_WINDOW_SECONDS)
    if now >= deadline:
        return False
    provider = association.dul
    while provider.is_alive() and provider.state_machine.current_state != "Sta1" and time.monotonic() < deadline:
        time.sleep(KILL_POLL_SECONDS)
    return True


WAKEUP_ATTRIBUTE = "appliance_wakeup"
HAS_EVENTFD = hasattr(os, "eventfd")  # Linux


class Wakeup:
    """What ends the idle sleeps of one association's two threads (`wake_on_arrival`): an event
    for its reactor thread, set when a message or an indication is queued for it, and an eventfd
    beside the socket for its DUL thread, written when something is queued for the DUL to send.

    The eventfd is closed by `close` (connection closed, or the DUL collected), but never while
    the DUL thread polls it: then that thread closes it once its poll is over, so a descriptor
    number the system has given to another file is never polled or read here."""

    def __init__(self) -> None:
        self.arrival = threading.Event()
        self.descriptor = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.lock = threading.Lock()
        self.closed = False
        self.polling = False

    def wake_reactor(self) -> None:
        self.arrival.set()

    def wake_dul(self) -> None:
        with self.lock:
            if not self.closed:
                os.eventfd_write(self.descriptor, 1)

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            if not self.polling:
                os.close(self.descriptor)

    def reactor_sleep(self) -> None:
        """The reactor thread: until something is queued for it, at most `WAKE_POLL_SECONDS`."""
        self.arrival.wait(WAKE_POLL_SECONDS)
        self.arrival.clear()  # before the reactor looks: what is queued after this sets it again

    def dul_sleep(self, connection: socket.socket | None, seconds: float = 0.0) -> bool:
        """The DUL thread: until `connection` (if any) is readable or something is queued for the
        DUL, at most `seconds` or else `WAKE_POLL_SECONDS`; False (nothing waited) once closed."""
        with self.lock:
            if self.closed:
                return False
            self.polling = True
        try:
            poller = select.poll()
            if connection is not None:
                poller.register(connection, select.POLLIN)
            poller.register(self.descriptor, select.POLLIN)
            if any(
                descriptor == self.descriptor for descriptor, _ in poller.poll((seconds or WAKE_POLL_SECONDS) * 1000)
            ):
                os.eventfd_read(self.descriptor)  # reset; nonblocking, and it was readable
        except (OSError, ValueError):  # the connection closed meanwhile: the DUL sees it at its next look
            pass
        finally:
            with self.lock:
                self.polling = False
                if self.closed:
                    os.close(self.descriptor)
        return True


def woken_on_arrival(thread: threading.Thread) -> bool:
    """Sleep the idle sleep of `thread` woken by its association's `Wakeup`; False (nothing
    waited) when it has none: not a reactor or DUL thread, TLS, or the connection closed."""
    if isinstance(thread, association.Association):
        wakeup = getattr(thread, WAKEUP_ATTRIBUTE, None)
        if wakeup is None:
            return False
        if not read_requests(thread):
            wakeup.reactor_sleep()
        return True
    if isinstance(thread, dul.DULServiceProvider):
        wakeup = getattr(thread.assoc, WAKEUP_ATTRIBUTE, None)
        connection = dul_connection(thread)
        if wakeup is None or connection is None:
            return False
        reads: DulReads | None = getattr(thread.assoc, READ_LOCK_ATTRIBUTE, None)
        quiet = reads.quiet_seconds() if reads is not None else 0.0
        return bool(wakeup.dul_sleep(None, quiet) if quiet else wakeup.dul_sleep(connection))
    return False


def wake_on_arrival(event: Event) -> None:
    """EVT_CONN_OPEN handler: give the association a `Wakeup` and have each queue its threads read
    wake the reader when something is put in it; the reactor is also woken when a sender asks it to
    pause, the DUL when it is asked to stop. A put racing this setup wakes nobody: the sleep it
    lands in ends after `WAKE_POLL_SECONDS` anyway."""
    if not in_force("wake_on_arrival") or not HAS_EVENTFD:
        return
    watched: Any = event.assoc
    wakeup = Wakeup()
    signal_after(watched.dimse.msg_queue, "put", wakeup.wake_reactor)
    signal_after(watched.dul.to_user_queue, "put", wakeup.wake_reactor)
    signal_after(watched._reactor_checkpoint, "clear", wakeup.wake_reactor)
    signal_after(watched.dul.to_provider_queue, "put", wakeup.wake_dul)
    signal_after(watched.dul.event_queue, "put", wakeup.wake_dul)
    signal_after(watched.dul, "kill_dul", wakeup.wake_dul)
    signal_before(watched.dul, "stop_dul", lambda: stop_at_once(watched.dul, wakeup))
    weakref.finalize(watched.dul, wakeup.close)
    setattr(watched, WAKEUP_ATTRIBUTE, wakeup)


def signal_after(owner: Any, name: str, signal: Callable[[], None]) -> None:
    """Replace the method `name` of the object `owner` (on the instance) by one that calls it, then `signal`."""
    original = getattr(owner, name)

    def signalling(*arguments: Any, **keywords: Any) -> Any:
        result = original(*arguments, **keywords)
        signal()
        return result

    setattr(owner, name, signalling)


def signal_before(owner: Any, name: str, signal: Callable[[], None]) -> None:
    """Replace the method `name` of the object `owner` (on the instance) by one that calls `signal`, then it."""
    original = getattr(owner, name)

    def signalling(*arguments: Any, **keywords: Any) -> Any:
        signal()
        return original(*arguments, **keywords)

    setattr(owner, name, signalling)


def stop_at_once(provider: dul.DULServiceProvider, wakeup: Wakeup) -> None:
    """Before `stop_dul` (which then waits for the DUL thread to end): the same stop flag, set
    here, and the DUL woken to see it."""
    if provider.state_machine.current_state == "Sta1":
        provider._kill_thread = True
        wakeup.wake_dul()


def unwake(event: Event) -> None:
    """EVT_CONN_CLOSE handler: the association's eventfd is closed (see `Wakeup`)."""
    wakeup = getattr(event.assoc, WAKEUP_ATTRIBUTE, None)
    if wakeup is not None:
        wakeup.close()


ACCEPT_SENT_ATTRIBUTE = "appliance_accept_sent"
ACCEPT_WAIT_SECONDS = 0.02  # the longest the reactor waits for its DUL to write the A-ASSOCIATE-AC
ORIGINAL_SEND_ACCEPT: Any = getattr(acse.ACSE, "send_accept", None)
ORIGINAL_ACTIONS: dict[str, Any] = getattr(fsm, "ACTIONS", {})
ACCEPT_ACTION = "AE-7"  # Sta3 + Evt7: send the A-ASSOCIATE-AC PDU (PS3.8 9.2)


def send_accept_first(provider: Any) -> None:
    """Stands in for `ACSE.send_accept` (`accept_first`): queue the accept for the DUL thread as
    pynetdicom does, then wait (without the interpreter lock) until the DUL has written it."""
    sent = threading.Event()
    provider.assoc.__dict__[ACCEPT_SENT_ATTRIBUTE] = sent
    ORIGINAL_SEND_ACCEPT(provider)
    sent.wait(ACCEPT_WAIT_SECONDS)


def accept_then_signal(provider: Any) -> str:
    """The state machine's AE-7 action, as pynetdicom's, then the waiting reactor is told."""
    try:
        return str(ORIGINAL_ACTIONS[ACCEPT_ACTION][1](provider))
    finally:
        sent: threading.Event | None = provider.assoc.__dict__.get(ACCEPT_SENT_ATTRIBUTE)
        if sent is not None:
            sent.set()


def signalling_actions() -> dict[str, Any]:
    """pynetdicom's table of state machine actions, with `accept_then_signal` for AE-7."""
    if ACCEPT_ACTION not in ORIGINAL_ACTIONS:
        return ORIGINAL_ACTIONS
    description, _action, next_state = ORIGINAL_ACTIONS[ACCEPT_ACTION]
    return {**ORIGINAL_ACTIONS, ACCEPT_ACTION: (description, accept_then_signal, next_state)}


CONNECTED_ATTRIBUTE = "_is_connected"  # pynetdicom's AssociationSocket attribute, kept in the instance


def connection_made(wrapper: Any) -> bool:
    """Stands in for `AssociationSocket._is_connected` (`requestor_answer`): whether the connection
    was made, even if it has been closed since (then `wrapper.socket` is None)."""
    return bool(vars(wrapper).get(CONNECTED_ATTRIBUTE, False))


def note_connection(wrapper: Any, connected: bool) -> None:
    """pynetdicom sets `_is_connected` when the connection is made and clears it when it closes:
    the first is kept, the second is not (`connection_made`)."""
    vars(wrapper)[CONNECTED_ATTRIBUTE] = bool(connected) or connection_made(wrapper)


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
    """A global of a pynetdicom module (or an attribute of a class) that a process-wide patch replaces."""

    module: ModuleType | type
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


def replacement(module: ModuleType | type, name: str, patched: Any) -> Replacement:
    """What patching `module.name` takes; importing this module must not fail on another pynetdicom."""
    return Replacement(module, name, getattr(module, name, None), patched)


def share_contexts(contexts: list[Any]) -> list[Any]:
    """Stands in for pynetdicom's per-association deepcopy of the acceptor's contexts."""
    return list(contexts)


VALID_UID = re.compile(pydicom.uid.RE_VALID_UID)  # PS3.5 9.1
STANDARD_UID_ROOT = "1.2.840.10008."  # the standard's own UIDs (PS3.6 Annex A)
KNOWN_UIDS_LIMIT = 4096  # the standard defines fewer; a peer proposing made-up ones cannot grow it further
_known_uids: dict[str, bool] = {}


RECENT_UIDS_LIMIT = 256  # other UIDs: those of the last few messages (forgotten all at once when full)
_recent_uids: dict[str, bool] = {}
_recent_validations: dict[str, tuple[bool, str]] = {}
PYNETDICOM_VALIDATORS: dict[str, Callable[[Any], tuple[bool, str]]] = dict(getattr(_config, "VALIDATORS", {}))


def uid_is_valid(uid: str) -> bool:
    """Stands in for pydicom's `UID.is_valid` (`uid_checks`): the same answer (at most 64
    characters, PS3.5 9.1 components), remembered for the standard's UIDs, and for a while for
    the others: a C-STORE's SOP Instance UID is checked three times (its request primitive, its
    response primitive, the index's attributes)."""
    known = _known_uids.get(uid)
    if known is None:
        known = _recent_uids.get(uid)
    if known is None:
        known = len(uid) <= 64 and VALID_UID.match(uid) is not None
        if uid.startswith(STANDARD_UID_ROOT):
            if len(_known_uids) < KNOWN_UIDS_LIMIT:
                _known_uids[uid] = known
        else:
            remember(_recent_uids, uid, known)
    return known


def validate_ui(value: Any) -> tuple[bool, str]:
    """Stands in for pynetdicom's UI validator (`_config.VALIDATORS["UI"]`, `uid_checks`): its
    answer, remembered for the UIDs of the last few messages. pynetdicom validates a C-STORE's
    two UIDs when it makes the request primitive and again for the response (making a `UID` of
    each every time: 3 % of a serving process's time storing small studies), and `command_reader`
    checks them before either."""
    original = PYNETDICOM_VALIDATORS["UI"]
    if _config.ENFORCE_UID_CONFORMANCE or not isinstance(value, str):
        return original(value)
    answer = _recent_validations.get(value)
    if answer is None:
        answer = original(value)
        remember(_recent_validations, value, answer)
    return answer


def remember(memory: dict[str, Any], key: str, answer: Any) -> None:
    """Keep `answer` in `memory`, which is emptied first when `RECENT_UIDS_LIMIT` answers are in it."""
    if len(memory) >= RECENT_UIDS_LIMIT:
        memory.clear()
    memory[key] = answer


def set_no_delay(event: Event) -> None:
    """EVT_CONN_OPEN handler: turn off Nagle's algorithm on the association's socket (`no_delay`)."""
    if not in_force("no_delay"):
        return
    association_socket = event.assoc.dul.socket
    if association_socket is not None and association_socket.socket is not None:
        association_socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def acknowledge_promptly(event: Event) -> None:
    """EVT_CONN_OPEN handler: every read of the association's socket is followed by TCP_QUICKACK
    (`quick_ack`), which sends an acknowledgement the kernel was holding back at once."""
    if not in_force("quick_ack") or QUICK_ACK is None:
        return
    association_socket: Any = event.assoc.dul.socket  # its `recv` is replaced on this instance
    if association_socket is None:
        return

    def recv(nr_bytes: int) -> bytearray:
        received: bytearray = type(association_socket).recv(association_socket, nr_bytes)  # GuardedSocket's too
        acknowledge_now(association_socket.socket)
        return received

    association_socket.recv = recv


def acknowledge_now(connection: socket.socket | None) -> None:
    """Send the acknowledgement of what was read now rather than after the delayed-ACK timer."""
    if connection is None or QUICK_ACK is None:
        return
    try:
        connection.setsockopt(socket.IPPROTO_TCP, QUICK_ACK, 1)
    except OSError:  # closed meanwhile: the read that follows says so
        return


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
    setattr(association, REACTOR_LOCK_ATTRIBUTE, lock)


HELD_ATTRIBUTE = "appliance_held_reactor"
HELD_LOOK_SECONDS = 0.05  # `held_reactor`: how often a reactor held between stores still looks at its association


class HeldReactor:
    """`held_reactor`: the pause of a requestor's reactor thread (a C-MOVE sub-association) kept
    from the end of one `direct_store` to the start of the next (`hold`), instead of ended after
    each store and started again before the next: a wake-up of that thread per image, which took
    the interpreter lock from the sender. Any clearing of the checkpoint ends the hold (a store,
    pynetdicom's release); setting it (pynetdicom's release, abort, kill) resumes the reactor.

    While held, the reactor still comes out of its pause every `HELD_LOOK_SECONDS` to look at its
    association as its loop does between stores (a peer's A-ABORT or A-RELEASE-RQ, the DUL's end,
    the idle timeout), its DIMSE queue left closed by `serialise_reactor`; during a store it
    stays paused, as pynetdicom has it."""

    def __init__(self, association: Any) -> None:
        self.held = False
        checkpoint = association._reactor_checkpoint
        self.original_wait = checkpoint.wait
        checkpoint.wait = self.wait
        signal_before(checkpoint, "clear", self.end)

    def hold(self) -> None:
        self.held = True

    def end(self) -> None:
        self.held = False

    def wait(self, timeout: float | None = None) -> bool:
        """The reactor's wait for its checkpoint (pynetdicom's waits have no timeout)."""
        if timeout is not None:
            return bool(self.original_wait(timeout))
        while not self.original_wait(HELD_LOOK_SECONDS):
            if self.held:
                return False
        return True


def hold_reactor(event: Event) -> None:
    """EVT_CONN_OPEN handler for associations we request, after `serialise_reactor` (whose closed
    DIMSE queue a held reactor relies on): `held_reactor`."""
    if not in_force("held_reactor") or getattr(event.assoc, REACTOR_LOCK_ATTRIBUTE, None) is None:
        return
    setattr(event.assoc, HELD_ATTRIBUTE, HeldReactor(event.assoc))


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


P_DATA_TF = 0x04
# P-DATA-TF PDU header and the header of its one PDV item (PS3.8 9.3.5): PDU type, reserved, PDU
# length, item length, presentation context ID, message control header.
PDU_HEADER = struct.Struct(">BBIIBB")
PDU_OVERHEAD = 6  # item length, context ID and control header: the PDU length beyond the fragment
COMMAND_FRAGMENT, LAST_FRAGMENT = 0x01, 0x02
UNLIMITED_FRAGMENT_BYTES = 4 * 1024 * 1024  # a peer accepting PDUs of any length: fragments this long
WRITE_BLOCK_BYTES = 1024 * 1024  # PDUs joined up to about this size for each system call
C_STORE_RQ = 0x0001
DATA_SET_PRESENT = 0x0001  # CommandDataSetType, as pynetdicom writes it (anything but 0101H)
SEND_LOCK_ATTRIBUTE = "appliance_send_lock"
REACTOR_LOCK_ATTRIBUTE = "appliance_reactor_lock"
CONTEXTS_ATTRIBUTE = "appliance_store_contexts"
READ_LOCK_ATTRIBUTE = "appliance_read_lock"
READ_LOCK_WAIT_SECONDS = 0.005  # a sender waits this long for the read lock (the DUL holds it to look, or read)
RESPONSE_POLL_SECONDS = 0.05  # how often a sender waiting for its response looks whether the DUL needs the socket
RESPONSE_PEEK_BYTES = 1024  # a plain C-STORE-RSP PDU is about 170 bytes
RESPONSE_REST_SECONDS = 0.002  # how long a sender waits for the rest of a response whose start came alone
REST_LATE_ATTRIBUTE = "appliance_rest_late"  # set on an association whose peer sent a response's rest late
PEEK_FLAGS = int(socket.MSG_PEEK | socket.MSG_DONTWAIT)  # combined once: each `|` of two flags is an Enum call
QUIET_SECONDS = 0.005  # `DulReads`: the DUL leaves the socket to senders this long after their last response
META_GROUP_LENGTH = struct.Struct("<HH2sHI")  # (0002,0000) UL, explicit VR little endian
PREAMBLE_BYTES = 128


@dataclass(frozen=True)
class StoreRequest:
    """The parameters of one C-STORE request (PS3.7 9.1.1.1)."""

    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str  # of the data set: an accepted context must have exactly this syntax
    message_id: int
    priority: int = 2
    originator_ae_title: str | None = None
    originator_message_id: int | None = None


@dataclass(frozen=True)
class StoreContent:
    """The encoded data set of a C-STORE request: `data`, or the bytes of the file at `path` from
    `offset` (-1: where its data set starts, `data_set_start`)."""

    data: bytes | None = None
    path: Path | None = None
    offset: int = 0


def direct_store_installed(association: Any) -> bool:
    """Whether `direct_store` may be used on `association`: installs the per-association send lock
    (the DUL's writes take it too) when the patch is in force."""
    return in_force("direct_store") and send_lock_installed(association)


def send_lock_installed(association: Any) -> bool:
    """Install the per-association send lock (the DUL's writes take it too, so that the PDUs of a
    message written by this module and of one written by the DUL never mix); whether there is one."""
    if getattr(association, SEND_LOCK_ATTRIBUTE, None) is not None:
        return True
    association_socket = association.dul.socket
    if association_socket is None:
        return False
    lock = threading.Lock()
    original = association_socket.send

    def send(bytestream: bytes) -> None:
        with lock:
            original(bytestream)

    association_socket.send = send
    setattr(association, SEND_LOCK_ATTRIBUTE, lock)
    return True


def direct_store(
    association: Any, request: StoreRequest, content: StoreContent, meanwhile: Callable[[], None] | None = None
) -> Dataset:
    """Send one C-STORE request on `association` (see `direct_store` above) and wait for its
    response: the response's status elements, or an empty Dataset when none came (as pynetdicom's
    `send_c_store`: the association is then aborted). `meanwhile` runs once the request is
    written, while the peer takes it (the sender reads the next object then): it must not raise.

    Raises ValueError when no accepted context has the data set's transfer syntax, OSError when
    the file cannot be read.
    """
    context_id = context_for(association, request.sop_class_uid, request.transfer_syntax_uid)
    command = store_command(request)
    fragment = fragment_bytes(association.dimse.maximum_pdu_size)
    checkpoint = association._reactor_checkpoint
    checkpoint.clear()  # the reactor must not take the response off the queue (as pynetdicom does)
    plain = False  # a plain response, read here
    try:
        while not association._is_paused:
            time.sleep(0.0001)
        with getattr(association, REACTOR_LOCK_ATTRIBUTE, None) or threading.Lock():
            pass  # a reactor inside its poll (`serialise_reactor`) is out of it
        reads_before = dul_reads(association)
        if not write_message(association, context_id, command, content, fragment):
            return Dataset()
        if meanwhile is not None:
            meanwhile()
        usual = usual_response(context_id, request)
        answered, value = direct_response(association, context_id, request.message_id, reads_before, usual)
        response = None if answered else association.dimse.get_msg(block=True)[1]
        plain = value is not None
    finally:
        held: HeldReactor | None = getattr(association, HELD_ATTRIBUTE, None)
        if plain and held is not None and association.is_established:
            held.hold()  # until the next store, or the release
        else:
            checkpoint.set()
    if value is not None:
        return status_of(value)
    if response is None:
        association._handle_no_response()
        return Dataset()
    status: Dataset = association._check_received_status(response)
    return status


@functools.lru_cache(maxsize=256)
def status_of(value: int) -> Dataset:
    """What pynetdicom's `_check_received_status` makes of a plain response with this status, made
    once per status and shared: its callers (pynetdicom's C-GET and C-MOVE service, `retrieve`) only
    read it. A Dataset made for each image cost 11 µs in a micro-benchmark, and 13 % of the sending
    thread's samples under py-spy (C-MOVE of the compressed study), its caches cold."""
    status = Dataset()
    status.Status = value
    return status


def context_for(association: Any, sop_class_uid: str, transfer_syntax_uid: str) -> int:
    """The ID of the accepted context for sending `sop_class_uid` in exactly `transfer_syntax_uid`
    (looked up once per association: pynetdicom's lookup walks every accepted context).

    Raises ValueError when there is none."""
    found: dict[tuple[str, str], int] = association.__dict__.setdefault(CONTEXTS_ATTRIBUTE, {})
    key = (sop_class_uid, transfer_syntax_uid)
    if key not in found:
        context = association._get_valid_context(sop_class_uid, transfer_syntax_uid, "scu", allow_conversion=False)
        found[key] = int(context.context_id)
    return found[key]


class DulReads:
    """The per-association read lock (`direct_response`): the DUL thread takes it to look at and
    read its socket, so that it never reads while a sender reads its response itself; and how many
    PDUs it read so far (a sender that finds the count changed since it wrote its request lets the
    DUL deliver what it read: it may be the response).

    While a sender reads its responses itself (until `QUIET_SECONDS` after the last one, or until
    something is queued for the DUL to send) the DUL thread's idle sleep does not end when the
    socket becomes readable (`woken_on_arrival`): woken at each response only to wait for the lock,
    it cost the sender a switch of the interpreter lock per image. A sender leaving a PDU to the
    DUL wakes it (`direct_response`)."""

    def __init__(self, provider: Any) -> None:
        self.lock = threading.Lock()
        self.count = 0
        self.quiet_until = 0.0
        self.original = provider._is_transport_event
        provider._is_transport_event = self.is_transport_event
        signal_after(provider.to_provider_queue, "put", self.listen)

    def is_transport_event(self) -> bool:
        with self.lock:
            read = bool(self.original())
            self.count += read
            return read

    def quiet(self, seconds: float | None = None) -> None:
        """Leave the socket unwatched for `seconds` from now (`QUIET_SECONDS` when not given)."""
        self.quiet_until = time.monotonic() + (QUIET_SECONDS if seconds is None else seconds)

    def listen(self) -> None:
        self.quiet_until = 0.0

    def quiet_seconds(self) -> float:
        """How long the DUL's idle sleep may leave the socket unwatched from now (0: not at all)."""
        return max(0.0, self.quiet_until - time.monotonic())


def read_lock_installed(association: Any) -> bool:
    """Install the association's `DulReads` (called once it is established); whether it has one."""
    if getattr(association, READ_LOCK_ATTRIBUTE, None) is not None:
        return True
    if not in_force("direct_response"):
        return False
    setattr(association, READ_LOCK_ATTRIBUTE, DulReads(association.dul))
    return True


def dul_reads(association: Any) -> int:
    """How many PDUs the DUL thread of `association` read so far (-1: no `DulReads`)."""
    reads: DulReads | None = getattr(association, READ_LOCK_ATTRIBUTE, None)
    return -1 if reads is None else reads.count


def direct_response(
    association: Any, context_id: int, message_id: int, reads_before: int, usual: UsualResponse | None = None
) -> tuple[bool, int | None]:
    """The status of the response to the C-STORE request `message_id` that `direct_store` just
    wrote, read from the socket by the sending thread: (True, its status), or (True, None) when no
    response came within the DIMSE timeout (as pynetdicom's `get_msg`); (False, None) when it must
    come the usual way (`reads_before`: `dul_reads` before the request was written). `usual`: the
    response most peers write to that request (`usual_response`), recognised without decoding it.

    The usual way, the DUL thread reads the PDU, runs its state machine, hands the P-DATA to the
    DIMSE provider (`StoreReader`), which queues the response for the sender: two threads woken
    and 160 us per image. Here the sender holds the read lock (the DUL thread waits for it before
    it looks at the socket), waits until the socket is readable, and takes the PDU only when it is
    a whole plain C-STORE-RSP to this request on this context (looked at with MSG_PEEK first).
    Anything else (a C-CANCEL, an A-ABORT, a response with an Error Comment, a PDU not all there
    yet, the connection closed) is left unread for the DUL thread, which reads it as before; so
    is the socket when the DUL has something to send or is stopping.
    """
    reads: DulReads | None = getattr(association, READ_LOCK_ATTRIBUTE, None)
    answer = read_response(association, context_id, message_id, reads_before, reads, usual)
    if reads is not None:
        if answer[0]:
            reads.quiet()
        else:
            reads.listen()
            wakeup: Wakeup | None = getattr(association, WAKEUP_ATTRIBUTE, None)
            if wakeup is not None:
                wakeup.wake_dul()  # to read at once what is left to it
    return answer


def read_response(
    association: Any,
    context_id: int,
    message_id: int,
    reads_before: int,
    reads: DulReads | None,
    usual: UsualResponse | None = None,
) -> tuple[bool, int | None]:
    """`direct_response`'s reading, under the read lock."""
    connection = direct_read_connection(association)
    if connection is None or reads is None or not reads.lock.acquire(timeout=READ_LOCK_WAIT_SECONDS):
        return False, None
    try:
        if reads.count != reads_before:
            return False, None
        waited = response_waited(association, connection)
        if waited is not Waited.READABLE:
            return waited is Waited.OVERDUE, None
        peeked = peeked_response(connection, context_id, message_id, usual, association)
        if peeked is None:
            return False, None
        length, status = peeked
        if not taken(connection, length):
            return False, None
        association.dul._idle_timer.restart()  # what the DUL does after reading a PDU
        return True, status
    finally:
        reads.lock.release()


def taken(connection: socket.socket, length: int) -> bool:
    """Read the `length` bytes peeked on `connection`; False (the DUL then finds the connection
    broken, or the rest of a PDU it cannot read, and aborts) when they could not all be read."""
    try:
        return connection.recv_into(bytearray(length), length, socket.MSG_DONTWAIT) == length
    except OSError as error:
        LOGGER.warning("connection lost while reading a C-STORE response: %s", type(error).__name__)
        return False


def direct_read_connection(association: Any) -> socket.socket | None:
    """The plain socket a sender may read its response from, or None: TLS (its buffer is not the
    socket's), bytes the guard read ahead, a message pynetdicom or `StoreReader` started, a message
    already queued, something for the DUL to send, or handlers on the "received" events (they
    would not be triggered)."""
    if not in_force("direct_response"):
        return None
    provider = association.dul
    wrapper = provider.socket
    connection = getattr(wrapper, "socket", None)
    if connection is None or isinstance(connection, ssl.SSLSocket) or getattr(wrapper, "pending", None):
        return None
    dimse = association.dimse
    reader = getattr(dimse.receive_primitive, "__self__", None)
    if dimse.message is not None or (isinstance(reader, StoreReader) and reader.primitives):
        return None
    if not dimse.msg_queue.empty() or not provider.to_provider_queue.empty():
        return None
    if provider.state_machine.current_state != STATE_DATA_TRANSFER:
        return None
    received = (evt.EVT_PDU_RECV, evt.EVT_DATA_RECV, evt.EVT_DIMSE_RECV)
    if any(association.get_handlers(event) for event in received) or _config.STORE_RECV_CHUNKED_DATASET:
        return None
    return connection  # type: ignore[no-any-return]


class Waited(Enum):
    """How a sender's wait for its response ended."""

    READABLE = "readable"
    OVERDUE = "the DIMSE timeout passed"
    LEFT = "the DUL needs the socket"


def response_waited(association: Any, connection: socket.socket) -> Waited:
    """Wait until `connection` is readable, the DIMSE timeout passes, or the DUL needs the socket
    (something to send, stopping)."""
    timeout = association.dimse.dimse_timeout
    deadline = None if timeout is None else time.monotonic() + timeout
    poller = select.poll()
    poller.register(connection, select.POLLIN)
    provider = association.dul
    while not poller.poll(RESPONSE_POLL_SECONDS * 1000):
        if provider._kill_thread or association._kill or not provider.to_provider_queue.empty():
            return Waited.LEFT
        if deadline is not None and time.monotonic() >= deadline:
            return Waited.OVERDUE
    return Waited.READABLE


def peeked_response(
    connection: socket.socket,
    context_id: int,
    message_id: int,
    usual: UsualResponse | None = None,
    association: Any = None,
) -> tuple[int, int] | None:
    """(its length, its status) when the bytes waiting on `connection` start with one whole
    P-DATA-TF PDU holding a plain C-STORE-RSP to `message_id` on `context_id`, in one command
    fragment; None otherwise (nothing is read). The `usual` response is recognised by its bytes;
    any other is decoded. The rest of a response whose start came alone is waited for
    (`rest_peeked`), unless `association`'s peer was once late with it."""
    try:
        head = connection.recv(RESPONSE_PEEK_BYTES, PEEK_FLAGS)
        if association is not None and not getattr(association, REST_LATE_ATTRIBUTE, False):
            head = rest_peeked(connection, head, association)
    except OSError:
        return None
    recognised = None if usual is None else usual.status_in(head)
    return recognised or decoded_response(head, context_id, message_id)


def rest_peeked(connection: socket.socket, head: bytes, association: Any) -> bytes:
    """The bytes peeked on `connection`, `head`, or when they are the start of a short P-DATA-TF PDU,
    those peeked once the whole PDU is there (`RESPONSE_REST_SECONDS` at most: the socket's receive
    low-water mark is raised to the PDU's length meanwhile, so that its poll waits for them).

    DCMTK writes a PDU's header and its fragment apart, so a sender often looks between the two; a
    peer with TCP_NODELAY writes the rest at once. One with Nagle's algorithm on holds it until the
    start is acknowledged, which only a read does: `association` is then marked, and its responses
    are no longer waited for (the DUL reads them, as before)."""
    if len(head) < PDU_HEADER.size or head[0] != P_DATA_TF:
        return head
    length = int.from_bytes(head[2:6], "big") + 6
    if len(head) >= length or length > RESPONSE_PEEK_BYTES:
        return head
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, length)
    try:
        poller = select.poll()
        poller.register(connection, select.POLLIN)
        if not poller.poll(RESPONSE_REST_SECONDS * 1000):
            setattr(association, REST_LATE_ATTRIBUTE, True)
            return head
        return connection.recv(RESPONSE_PEEK_BYTES, PEEK_FLAGS)
    finally:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)


def decoded_response(head: bytes, context_id: int, message_id: int) -> tuple[int, int] | None:
    """`peeked_response` of the bytes `head`, decoded."""
    if len(head) < PDU_HEADER.size:
        return None
    pdu_type, _reserved, pdu_length, item_length, item_context, control = PDU_HEADER.unpack_from(head)
    length = pdu_length + 6
    if pdu_type != P_DATA_TF or item_length != pdu_length - 4 or len(head) < length:
        return None
    if item_context != context_id or control != COMMAND_FRAGMENT | LAST_FRAGMENT:
        return None
    values = store_message_values(head[PDU_HEADER.size : length])
    if values is None or values.get(0x0100) != C_STORE_RSP or values.get(0x0120) != message_id:
        return None
    return length, int(values[0x0900])


def write_message(association: Any, context_id: int, command: bytes, content: StoreContent, fragment: int) -> bool:
    """Write the command set and data set as P-DATA-TF PDUs; False (association aborted) when the
    connection failed mid-message. Raises OSError when the file cannot be read."""
    association_socket = association.dul.socket
    lock = getattr(association, SEND_LOCK_ATTRIBUTE)
    with ContentBlocks(content, context_id, fragment) as blocks, lock:
        try:
            first = True
            for block in blocks:
                parts = [*pdus(context_id, COMMAND_FRAGMENT, memoryview(command), fragment, True)] if first else []
                send_all(association_socket.socket, b"".join([*parts, *block]))
                first = False
            return True
        except OSError as error:
            if isinstance(error, FileNotFoundError | PermissionError | IsADirectoryError):
                raise
            LOGGER.warning("connection lost while sending a C-STORE request: %s", type(error).__name__)
    association.abort()
    return False


class ContentBlocks:
    """The data set's PDUs in blocks of about `WRITE_BLOCK_BYTES` (a context manager: the file is
    opened before the lock is taken and closed after)."""

    def __init__(self, content: StoreContent, context_id: int, fragment: int) -> None:
        self.content = content
        self.context_id = context_id
        self.fragment = fragment
        self.file: Any = None
        self.offset = content.offset

    def __enter__(self) -> Iterator[list[bytes | memoryview]]:
        if self.content.path is not None:
            self.file = open(self.content.path, "rb")  # closed by __exit__
            self.offset = self.content.offset if self.content.offset >= 0 else data_set_start(self.file)
            self.file.seek(self.offset)
        return self.blocks()

    def __exit__(self, *_exception: object) -> None:
        if self.file is not None:
            self.file.close()

    def blocks(self) -> Iterator[list[bytes | memoryview]]:
        per_block = max(1, WRITE_BLOCK_BYTES // self.fragment) * self.fragment
        if self.file is None:
            data = memoryview(self.content.data or b"")
            for start in range(0, max(len(data), 1), per_block):
                chunk = data[start : start + per_block]
                yield list(pdus(self.context_id, 0, chunk, self.fragment, start + per_block >= len(data)))
            return
        remaining = os.fstat(self.file.fileno()).st_size - self.offset
        while True:
            chunk = self.file.read(min(per_block, remaining))
            remaining -= len(chunk)
            yield list(pdus(self.context_id, 0, memoryview(chunk), self.fragment, remaining <= 0 or not chunk))
            if remaining <= 0 or not chunk:
                return


def data_set_start(file: BinaryIO) -> int:
    """Where the data set starts in a DICOM file (PS3.10: after the preamble, "DICM" and the file
    meta group, whose first element gives its length); the file is left at its start."""
    head = file.read(PREAMBLE_BYTES + 4 + META_GROUP_LENGTH.size)
    file.seek(0)
    if (
        head[PREAMBLE_BYTES : PREAMBLE_BYTES + 4] == b"DICM"
        and len(head) == PREAMBLE_BYTES + 4 + META_GROUP_LENGTH.size
    ):
        group, element, vr, length, value = META_GROUP_LENGTH.unpack_from(head, PREAMBLE_BYTES + 4)
        if (group, element, vr, length) == (2, 0, b"UL", 4):
            return PREAMBLE_BYTES + 4 + META_GROUP_LENGTH.size + int(value)
    offset = int(split_dataset(Path(file.name))[1])  # no group length first: pydicom finds the meta group's end
    return offset


def pdus(context_id: int, control: int, data: memoryview, fragment: int, last: bool) -> Iterator[bytes | memoryview]:
    """`data` as P-DATA-TF PDUs of one PDV each (header, fragment, header, fragment ...); the last
    one flagged as the message's last fragment of that part when `last`."""
    if not data:
        yield PDU_HEADER.pack(P_DATA_TF, 0, PDU_OVERHEAD, 2, context_id, control | (LAST_FRAGMENT if last else 0))
        return
    for start in range(0, len(data), fragment):
        piece = data[start : start + fragment]
        final = last and start + fragment >= len(data)
        flags = control | (LAST_FRAGMENT if final else 0)
        yield PDU_HEADER.pack(P_DATA_TF, 0, len(piece) + PDU_OVERHEAD, len(piece) + 2, context_id, flags)
        yield piece


def fragment_bytes(maximum_pdu_length: int) -> int:
    """The longest fragment a PDU of the peer's maximum length carries (0: any length)."""
    if not maximum_pdu_length:
        return UNLIMITED_FRAGMENT_BYTES
    return max(1, maximum_pdu_length - PDU_OVERHEAD)


def send_all(connection: socket.socket, data: bytes) -> None:
    """Write `data` whole; each `send` waits at most the socket's timeout (the network timeout)."""
    view = memoryview(data)
    while view:
        sent = connection.send(view)
        view = view[sent:]


def store_command(request: StoreRequest) -> bytes:
    """The C-STORE-RQ command set (PS3.7 9.3.1.1), implicit VR little endian, as pynetdicom writes it."""
    elements = [
        (0x0002, text(request.sop_class_uid, b"\0")),
        (0x0100, struct.pack("<H", C_STORE_RQ)),
        (0x0110, struct.pack("<H", request.message_id)),
        (0x0700, struct.pack("<H", request.priority)),
        (0x0800, struct.pack("<H", DATA_SET_PRESENT)),
        (0x1000, text(request.sop_instance_uid, b"\0")),
    ]
    if request.originator_ae_title:
        elements.append((0x1030, text(request.originator_ae_title.strip(), b" ")))
    if request.originator_message_id is not None:
        elements.append((0x1031, struct.pack("<H", request.originator_message_id)))
    body = b"".join(struct.pack("<HHI", 0, element, len(value)) + value for element, value in elements)
    return struct.pack("<HHII", 0, 0, 4, len(body)) + body


def text(value: str, padding: bytes) -> bytes:
    encoded = value.encode("ascii")
    return encoded + padding if len(encoded) % 2 else encoded


# The C-STORE-RQ command elements `command_reader` decodes (PS3.7 9.3.1.1), by element number (group
# 0000): their VR. Any other element, or one twice or out of order, and pynetdicom reads the message.
STORE_REQUEST_ELEMENTS = {
    0x0000: "UL",  # CommandGroupLength (pydicom does not check it either)
    0x0002: "UI",  # AffectedSOPClassUID
    0x0100: "US",  # CommandField
    0x0110: "US",  # MessageID
    0x0700: "US",  # Priority
    0x0800: "US",  # CommandDataSetType
    0x1000: "UI",  # AffectedSOPInstanceUID
    0x1030: "AE",  # MoveOriginatorApplicationEntityTitle
    0x1031: "US",  # MoveOriginatorMessageID
}
# The C-STORE-RSP command elements `command_reader` decodes (PS3.7 9.3.1.2): a status alone. A response
# with an Error Comment, an Offending Element or anything else is read by pynetdicom.
STORE_RESPONSE_ELEMENTS = {
    0x0000: "UL",  # CommandGroupLength
    0x0002: "UI",  # AffectedSOPClassUID
    0x0100: "US",  # CommandField
    0x0120: "US",  # MessageIDBeingRespondedTo
    0x0800: "US",  # CommandDataSetType
    0x0900: "US",  # Status
    0x1000: "UI",  # AffectedSOPInstanceUID
}
ELEMENT_HEADER = struct.Struct("<HHI")
NO_DATA_SET = 0x0101
C_STORE_RSP = 0x8001
PRIORITIES = (0, 1, 2)
STATE_DATA_TRANSFER = "Sta6"


class StoreReader:
    """Stands in for `DIMSEServiceProvider.receive_primitive` on one association (`command_reader`).

    pynetdicom decodes each command set with pydicom's reader into a Dataset, then copies its
    elements into a primitive through their keywords: about a tenth of the archive's CPU per stored
    image. A plain C-STORE-RQ (the elements of `STORE_REQUEST_ELEMENTS`, ASCII, valid UIDs, a data
    set) is decoded here and its primitive queued as pynetdicom queues it, through the primitive's
    own setters. Anything else (another command, an unexpected element or fragment, a handler on
    EVT_DIMSE_RECV, chunked reception) is handed to pynetdicom: every P-DATA primitive of the message
    so far is replayed to its `receive_primitive` in order, which then behaves as if it had read
    them itself (its errors, logs and aborts included). Runs in the DUL thread only.
    """

    def __init__(self, dimse: Any, original: Callable[[P_DATA], None]) -> None:
        self.dimse = dimse
        self.original = original
        self.handled = 0  # P-DATA primitives received so far (`read_requests` compares it with the DUL's reads)
        self.reset()

    def reset(self) -> None:
        self.primitives: list[P_DATA] = []  # of the message in progress, kept for a replay
        self.command = bytearray()
        self.values: dict[int, int | str] | None = None  # the command set, once read
        self.context_id = 0
        self.data_set = BytesIO()

    def receive(self, primitive: P_DATA) -> None:
        try:
            self.receive_one(primitive)
        finally:
            self.handled += 1

    def receive_one(self, primitive: P_DATA) -> None:
        if self.dimse.message is not None or primitive.__class__ is not P_DATA:
            self.original(primitive)  # a message pynetdicom has started, or not a P-DATA
            return
        if not self.primitives and not self.usable():
            self.original(primitive)
            return
        self.primitives.append(primitive)
        for context_id, data in primitive.presentation_data_value_list:
            complete = self.take(context_id, data)
            if complete is None:
                self.replay()
                return
            if complete:
                self.deliver()
                return

    def usable(self) -> bool:
        """Whether a new message may be read here (checked at its first fragment)."""
        if _config.STORE_RECV_CHUNKED_DATASET:
            return False
        return not self.dimse.assoc.get_handlers(evt.EVT_DIMSE_RECV)

    def take(self, context_id: int, data: bytes) -> bool | None:
        """Add one PDV: whether the message is complete, None when pynetdicom must read it."""
        if not data:
            return None
        control = data[0]
        if self.values is None:
            if not control & COMMAND_FRAGMENT:
                return None
            self.command += memoryview(data)[1:]
            if control & LAST_FRAGMENT:
                self.values = store_message_values(bytes(self.command))
                self.context_id = context_id
                if self.values is None:
                    return None
                return self.values[0x0100] == C_STORE_RSP  # a response has no data set
            return False
        if control & COMMAND_FRAGMENT:
            return None
        self.data_set.write(memoryview(data)[1:])
        return bool(control & LAST_FRAGMENT)

    def deliver(self) -> None:
        """Queue the request or response for its reader, as pynetdicom queues it."""
        assert self.values is not None
        try:
            if self.values[0x0100] == C_STORE_RSP:
                message = store_response_received(self.values, self.context_id)
            else:
                message = store_request(self.values, self.data_set, self.context_id)
        except (TypeError, ValueError):
            self.replay()
            return
        context_id = self.context_id
        self.reset()
        self.dimse.msg_queue.put((context_id, message))

    def replay(self) -> None:
        pending = self.primitives
        self.reset()
        for primitive in pending:
            self.original(primitive)


@dataclass(frozen=True)
class UsualResponse:
    """The C-STORE-RSP PDU that DCMTK's and pynetdicom's Storage SCPs (and so most peers) write to a
    request, around its status: the command set in one fragment, with the request's SOP class and
    instance UIDs and no other optional element."""

    before: bytes  # the PDU up to the status's value
    after: bytes  # the Affected SOP Instance UID element

    def status_in(self, head: bytes) -> tuple[int, int] | None:
        """(the PDU's length, its status) when `head` starts with this response; None otherwise."""
        end = len(self.before) + 2
        if not head.startswith(self.before) or not head.startswith(self.after, end):
            return None
        return end + len(self.after), int.from_bytes(head[end - 2 : end], "little")


def usual_response(context_id: int, request: StoreRequest) -> UsualResponse | None:
    """The response most peers write to `request` on `context_id`; None when a UID of the request is
    one pynetdicom would not take in a response (it is then decoded, as any other, and left to the
    DUL)."""
    validate = _config.VALIDATORS["UI"]
    class_uid, instance_uid = request.sop_class_uid, request.sop_instance_uid
    if not class_uid or not instance_uid or not validate(class_uid)[0] or not validate(instance_uid)[0]:
        return None
    elements = [
        element_bytes(0x0002, text(class_uid, b"\0")),
        element_bytes(0x0100, C_STORE_RSP.to_bytes(2, "little")),
        element_bytes(0x0120, request.message_id.to_bytes(2, "little")),
        element_bytes(0x0800, NO_DATA_SET.to_bytes(2, "little")),
    ]
    after = element_bytes(0x1000, text(instance_uid, b"\0"))
    status_header = ELEMENT_HEADER.pack(0, 0x0900, 2)
    body_length = sum(map(len, elements)) + len(status_header) + 2 + len(after)
    command_length = ELEMENT_HEADER.size + 4 + body_length
    header = PDU_HEADER.pack(
        P_DATA_TF, 0, command_length + PDU_OVERHEAD, command_length + 2, context_id, COMMAND_FRAGMENT | LAST_FRAGMENT
    )
    group_length = element_bytes(0x0000, body_length.to_bytes(4, "little"))
    return UsualResponse(b"".join([header, group_length, *elements, status_header]), after)


def element_bytes(element: int, value: bytes) -> bytes:
    """A group 0000 element, implicit VR little endian."""
    return ELEMENT_HEADER.pack(0, element, len(value)) + value


def store_message_values(command: bytes) -> dict[int, int | str] | None:
    """The elements of a plain C-STORE-RQ or C-STORE-RSP command set by element number; None for
    any other command set."""
    request = command_values(command, STORE_REQUEST_ELEMENTS)
    if request is not None and plain_store_request(request):
        return request
    response = command_values(command, STORE_RESPONSE_ELEMENTS)
    if response is not None and plain_store_response(response):
        return response
    return None


def command_values(command: bytes, elements: dict[int, str]) -> dict[int, int | str] | None:
    """The elements of an implicit VR little endian command set (PS3.7 E.1) by element number,
    decoded as pydicom decodes them; None when it has an element not in `elements` (by number:
    VR), one twice or out of order, or a value pydicom would decode otherwise."""
    values: dict[int, int | str] = {}
    offset, previous = 0, -1
    while offset < len(command):
        if offset + ELEMENT_HEADER.size > len(command):
            return None
        group, element, length = ELEMENT_HEADER.unpack_from(command, offset)
        offset += ELEMENT_HEADER.size
        vr = elements.get(element)
        if group != 0 or vr is None or element <= previous or offset + length > len(command):
            return None
        value = element_value(vr, command[offset : offset + length])
        if value is None:
            return None
        values[element] = value
        offset += length
        previous = element
    return values


def element_value(vr: str, value: bytes) -> int | str | None:
    """One element's value as pydicom decodes it (UI: trailing NULs and spaces removed; AE: spaces);
    None for a length or a character pydicom would decode otherwise (several values, not ASCII)."""
    if vr == "US":
        return int.from_bytes(value, "little") if len(value) == 2 else None
    if vr == "UL":
        return int.from_bytes(value, "little") if len(value) == 4 else None
    if not value.isascii() or b"\\" in value:
        return None
    decoded = value.decode("ascii")
    return decoded.rstrip("\0 ") if vr == "UI" else decoded.strip()


def plain_store_request(values: dict[int, int | str]) -> bool:
    """Whether decoded command elements are a C-STORE-RQ with a data set whose values pynetdicom's
    primitive takes without a warning or an error."""
    if values.get(0x0100) != C_STORE_RQ or values.get(0x0800, NO_DATA_SET) == NO_DATA_SET:
        return False
    if not isinstance(values.get(0x0110), int) or values.get(0x0700, 2) not in PRIORITIES:
        return False
    validate = _config.VALIDATORS
    for element in (0x0002, 0x1000):
        uid = values.get(element)
        if not isinstance(uid, str) or not uid or not validate["UI"](uid)[0]:
            return False
    title = values.get(0x1030)
    return title is None or (isinstance(title, str) and bool(title) and validate["AE"](title)[0])


def plain_store_response(values: dict[int, int | str]) -> bool:
    """Whether decoded command elements are a C-STORE-RSP without a data set whose values
    pynetdicom's primitive takes without a warning or an error."""
    if values.get(0x0100) != C_STORE_RSP or values.get(0x0800) != NO_DATA_SET:
        return False
    if not isinstance(values.get(0x0120), int) or not isinstance(values.get(0x0900), int):
        return False
    validate = _config.VALIDATORS["UI"]
    uids = (values.get(element) for element in (0x0002, 0x1000) if element in values)
    return all(isinstance(uid, str) and uid and validate(uid)[0] for uid in uids)


def store_response_received(values: dict[int, int | str], context_id: int) -> C_STORE:
    """The C-STORE response primitive pynetdicom's `message_to_primitive` makes of these values."""
    response = C_STORE()
    if 0x0002 in values:
        response.AffectedSOPClassUID = str(values[0x0002])
    response.MessageIDBeingRespondedTo = int(values[0x0120])
    response.Status = int(values[0x0900])
    if 0x1000 in values:
        response.AffectedSOPInstanceUID = str(values[0x1000])
    response._context_id = context_id
    response._dataset_path = None
    response._dataset_file = None
    return response


def store_request(values: dict[int, int | str], data_set: BytesIO, context_id: int) -> C_STORE:
    """The C-STORE request primitive pynetdicom's `message_to_primitive` makes of these values."""
    request = C_STORE()
    request.AffectedSOPClassUID = str(values[0x0002])
    request.MessageID = int(values[0x0110])
    if 0x0700 in values:
        request.Priority = int(values[0x0700])
    request.AffectedSOPInstanceUID = str(values[0x1000])
    if 0x1030 in values:
        request.MoveOriginatorApplicationEntityTitle = str(values[0x1030])
    if 0x1031 in values:
        request.MoveOriginatorMessageID = int(values[0x1031])
    request.DataSet = data_set
    request._context_id = context_id
    request._dataset_path = None
    request._dataset_file = None
    return request


def read_store_messages(association: Any) -> None:
    """Install `StoreReader` on `association` (`command_reader`); called once it is established
    (a message whose first fragments pynetdicom already read stays with pynetdicom)."""
    read_lock_installed(association)
    if not in_force("command_reader"):
        return
    dimse = association.dimse
    dimse.receive_primitive = StoreReader(dimse, dimse.receive_primitive).receive


def answer_stores_directly(association: Any) -> None:
    """Wrap `association.dimse.send_msg` so that a plain C-STORE response is written by
    `store_response` (`store_responses`)."""
    if not in_force("store_responses") or not send_lock_installed(association):
        return
    original: Any = association.dimse.send_msg

    def send_msg(primitive: Any, context_id: int) -> None:
        if not (isinstance(primitive, C_STORE) and store_response(association, primitive, context_id)):
            original(primitive, context_id)

    association.dimse.send_msg = send_msg


def store_response(association: Any, primitive: C_STORE, context_id: int) -> bool:
    """Write a C-STORE response from the association thread, in one P-DATA-TF PDU (`store_responses`);
    False, nothing written, when pynetdicom must send it.

    pynetdicom converts the primitive into a command set Dataset, encodes it, and queues a P-DATA
    primitive for the DUL thread, which wakes up within its polling interval, runs its state
    machine and encodes the PDU. Here the bytes are written through the DUL's own socket wrapper
    (its send lock, and on failure the same transport-closed event), but only in the data transfer
    state, with nothing queued for the DUL before it (so that no message overtakes another), and
    without handlers on the DIMSE or PDU "sent" events (they would not be triggered).
    """
    dul = association.dul
    if primitive.MessageIDBeingRespondedTo is None or dul.socket is None:
        return False
    if dul.state_machine.current_state != STATE_DATA_TRANSFER or not dul.to_provider_queue.empty():
        return False
    if association.get_handlers(evt.EVT_DIMSE_SENT) or association.get_handlers(evt.EVT_PDU_SENT):
        return False
    command = store_response_command(primitive)
    maximum = association.dimse.maximum_pdu_size
    if command is None or (maximum and len(command) + PDU_OVERHEAD > maximum):
        return False
    header = PDU_HEADER.pack(P_DATA_TF, 0, len(command) + PDU_OVERHEAD, len(command) + 2, context_id, 0x03)
    dul.socket.send(header + command)
    return True


def store_response_command(primitive: C_STORE) -> bytes | None:
    """The C-STORE-RSP command set (PS3.7 9.3.1.2) as pynetdicom writes it: the primitive's
    parameters that are set, in tag order; None when one is not a plain value (an Offending Element,
    text that is not ASCII)."""
    status = primitive.Status
    if primitive.OffendingElement is not None or not isinstance(status, int) or not 0 <= status <= 0xFFFF:
        return None
    try:
        elements = [
            (0x0002, optional_text(primitive.AffectedSOPClassUID, b"\0")),
            (0x0100, struct.pack("<H", C_STORE_RSP)),
            (0x0120, struct.pack("<H", primitive.MessageIDBeingRespondedTo)),
            (0x0800, struct.pack("<H", NO_DATA_SET)),
            (0x0900, struct.pack("<H", status)),
            (0x0902, optional_text(primitive.ErrorComment, b" ")),
            (0x1000, optional_text(primitive.AffectedSOPInstanceUID, b"\0")),
        ]
    except (UnicodeEncodeError, struct.error, TypeError):
        return None
    body = b"".join(struct.pack("<HHI", 0, tag, len(value)) + value for tag, value in elements if value is not None)
    return struct.pack("<HHII", 0, 0, 4, len(body)) + body


def optional_text(value: str | None, padding: bytes) -> bytes | None:
    """A text parameter's value, padded to an even length; None for a parameter not set.

    Raises UnicodeEncodeError for text that is not ASCII, TypeError for a value that is not text."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(type(value).__name__)
    return text(value, padding)


def fast_stores(event: Event) -> None:
    """EVT_ESTABLISHED handler of the archive: `command_reader`, `store_responses` and `direct_requests`."""
    read_store_messages(event.assoc)
    answer_stores_directly(event.assoc)
    if in_force("direct_requests") and in_force("command_reader"):
        setattr(event.assoc, REQUESTS_ATTRIBUTE, True)


def read_store_responses(event: Event) -> None:
    """EVT_ESTABLISHED handler of the associations we request: `command_reader` (for the responses
    to the C-STORE requests we send)."""
    read_store_messages(event.assoc)


REQUESTS_ATTRIBUTE = "appliance_direct_requests"
REQUESTS_QUIET_SECONDS = 0.05  # `direct_requests`: the DUL leaves the socket this long after the reactor's last read
PDU_START = struct.Struct(">BBI")  # PDU type, reserved, PDU length (PS3.8 9.3.1)
PDV_START = struct.Struct(">IB")  # PDV item length, presentation context ID (PS3.8 9.3.5.1)
PDV_LENGTH_BYTES = 4
ABORT_SEND_TIMEOUT_SECONDS = 2.0  # `abort_malformed`: how long writing the A-ABORT may take


def read_requests(association: Any) -> bool:
    """The idle sleep of an archive association's reactor thread, spent reading its peer's next
    P-DATA-TF PDUs itself (`direct_requests`); False (nothing waited) when the DUL thread must read.

    pynetdicom's DUL thread reads every PDU: woken by its poll, it reads the PDU, decodes it into
    PDU objects, runs its state machine, hands the P-DATA to the DIMSE provider (`StoreReader`),
    which queues the message and wakes the reactor thread: two threads and their hand-over for each
    PDU of each image. Here the reactor thread, idle, waits for its socket itself (at most
    `WAKE_POLL_SECONDS`, as its own idle sleep), then under the read lock (`DulReads`, which the DUL
    thread takes to look at the socket) reads whole P-DATA-TF PDUs and gives their PDVs to the same
    `StoreReader` the DUL thread gives them to, until no message is in progress: the message is then
    queued, and the reactor serves it as if the DUL had read it (the state machine stays in Sta6
    for a P-DATA-TF, PS3.8 9.2 DT-2; the network idle timer is restarted as the DUL restarts it).

    Anything else is left to the DUL, for the rest of the association: a PDU of another type (an
    A-RELEASE-RQ, an A-ABORT) is not read; a PDU longer than the maximum is not read (the DUL
    refuses it); a PDU cut short or malformed is put back where the DUL reads first
    (`GuardedSocket.pending`), so it reads and answers it as it always did. The reactor only takes
    over once the DUL has handed over every PDU it read (its count of reads equals the reader's),
    with nothing queued either way, in the data transfer state, on a plain socket (not TLS), with no
    handler on the PDU "received" events (not triggered for these PDUs)."""
    connection = request_connection(association)
    if connection is None:
        return False
    reads: DulReads = getattr(association, READ_LOCK_ATTRIBUTE)
    reads.quiet(WAKE_POLL_SECONDS + REQUESTS_QUIET_SECONDS)  # the DUL leaves the socket alone meanwhile
    poller = select.poll()
    poller.register(connection, select.POLLIN)
    try:
        readable = bool(poller.poll(WAKE_POLL_SECONDS * 1000))
    except OSError:  # closed meanwhile: the DUL sees it at its next look
        readable = False
    if not readable or not reads.lock.acquire(timeout=READ_LOCK_WAIT_SECONDS):
        return True
    try:
        if request_connection(association) is not None:  # the DUL may have read meanwhile
            read_message(association, connection, reads, poller)
    finally:
        reads.lock.release()
    if getattr(association, REQUESTS_ATTRIBUTE, False):  # not given back to the DUL
        reads.quiet(REQUESTS_QUIET_SECONDS)
    return True


def request_connection(association: Any) -> socket.socket | None:
    """The socket the reactor thread of `association` may read its peer's PDUs from now, or None."""
    if not getattr(association, REQUESTS_ATTRIBUTE, False):
        return None
    reads: DulReads | None = getattr(association, READ_LOCK_ATTRIBUTE, None)
    dimse = association.dimse
    reader = getattr(dimse.receive_primitive, "__self__", None)
    if reads is None or not isinstance(reader, StoreReader) or reads.count == 0 or reads.count != reader.handled:
        return None  # the DUL has read nothing yet, or a PDU it has not handed over (or not a P-DATA)
    provider = association.dul
    wrapper = provider.socket
    connection = getattr(wrapper, "socket", None)
    if connection is None or isinstance(connection, ssl.SSLSocket) or not is_pdu_source(wrapper):
        return None
    if wrapper.pending or not dimse.msg_queue.empty() or not provider.to_provider_queue.empty():
        return None
    if not provider.event_queue.empty() or not provider._recv_pdu.empty():
        return None
    if provider.state_machine.current_state != STATE_DATA_TRANSFER or association._kill or provider._kill_thread:
        return None
    if association.get_handlers(evt.EVT_PDU_RECV) or association.get_handlers(evt.EVT_DATA_RECV):
        return None
    return connection  # type: ignore[no-any-return]


class PduSource(Protocol):
    """The socket wrapper of an association the archive accepted (`guarded_server.GuardedSocket`):
    what it already read, served first to the DUL, and the longest PDU it reads."""

    pending: bytearray
    maximum_pdu_bytes: int


def is_pdu_source(wrapper: object) -> TypeGuard[PduSource]:
    """Whether `wrapper` has `PduSource`'s attributes: what `isinstance` on the protocol made
    runtime-checkable says, in 0.06 us instead of 10 us (looked at twice for each message an
    archive association reads)."""
    return hasattr(wrapper, "pending") and hasattr(wrapper, "maximum_pdu_bytes")


def read_message(association: Any, connection: socket.socket, reads: DulReads, poller: Any) -> None:
    """Read P-DATA-TF PDUs (under the read lock) until no message is in progress."""
    reader: StoreReader = association.dimse.receive_primitive.__self__
    wrapper: PduSource = association.dul.socket
    while True:
        length = next_p_data_length(association, connection, poller, wrapper.maximum_pdu_bytes)
        if length is None:
            give_back(association)
            return
        received = receive_exactly(connection, length)
        primitive = p_data_of(received) if len(received) == length else None
        if primitive is None:
            wrapper.pending[:0] = received
            give_back(association)
            return
        reads.count += 1
        association.dul._idle_timer.restart()
        try:
            reader.receive(primitive)
        except Exception as error:  # pynetdicom raises on some malformed messages, in the DUL as here
            give_back(association)
            abort_malformed(association, error)
            association.dul.kill_dul()  # the association ends, as when its DUL thread dies of it
            return
        if not association.dul.event_queue.empty():  # an invalid message: the DUL aborts (PS3.8 Evt19)
            give_back(association)
            return
        if not reader.primitives and association.dimse.message is None:
            return


def next_p_data_length(association: Any, connection: socket.socket, poller: Any, maximum: int) -> int | None:
    """The length of the P-DATA-TF PDU the peer sends next, once its header is there (nothing is
    read); None when the DUL is to read what comes (another PDU type, a PDU over `maximum`, the
    connection closed, a header not all there) or the reactor must leave the socket (stopping,
    something to send, the network idle timeout)."""
    provider = association.dul
    while True:
        if association._kill or provider._kill_thread or not provider.to_provider_queue.empty():
            return None
        if provider._idle_timer.expired:
            return None
        try:
            if not poller.poll(RESPONSE_POLL_SECONDS * 1000):
                continue
            head = connection.recv(PDU_START.size, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except OSError:
            return None
        if len(head) < PDU_START.size:
            return None  # closed (the DUL finds it so), or a header cut short: the DUL waits for the rest
        pdu_type, _reserved, pdu_length = PDU_START.unpack(head)
        if pdu_type != P_DATA_TF or pdu_length > maximum + admission.HEADER_BYTES:  # as `GuardedSocket.recv` refuses
            return None
        return PDU_START.size + int(pdu_length)


def receive_exactly(connection: socket.socket, length: int) -> bytearray:
    """`length` bytes read from `connection`, fewer when it closed, failed or timed out first; each
    read acknowledged at once (`quick_ack`, as the DUL's reads are)."""
    received = bytearray(length)
    done = 0
    try:
        with memoryview(received) as view:
            while done < length:
                read = connection.recv_into(view[done:], length - done)
                if not read:
                    break
                done += read
                if in_force("quick_ack"):
                    acknowledge_now(connection)
    except OSError:
        pass
    if done < length:
        del received[done:]
    return received


def p_data_of(pdu: bytearray) -> P_DATA | None:
    """The P-DATA primitive of a whole P-DATA-TF PDU, as pynetdicom's decoder makes it (each PDV's
    context ID and its bytes, message control header first); None when the PDU is malformed."""
    primitive = P_DATA()
    values = primitive.presentation_data_value_list
    offset, end = PDU_START.size, len(pdu)
    while offset < end:
        if offset + PDV_START.size > end:
            return None
        item_length, context_id = PDV_START.unpack_from(pdu, offset)
        item_end = offset + PDV_LENGTH_BYTES + item_length
        if item_length < 2 or item_end > end:
            return None
        values.append((context_id, bytes(pdu[offset + PDV_START.size : item_end])))
        offset = item_end
    return primitive if values else None


def abort_malformed(association: Any, error: BaseException) -> None:
    """End an association whose peer sent a message pynetdicom raised on (3.0: a command set without
    Command Field, an event its state does not allow): one WARNING line, no traceback, and an A-ABORT
    to the peer, written at once (the DUL may be the thread that raised). For the DUL thread, through
    `guarded_server.end_broken_association`; for `direct_requests`, here."""
    LOGGER.warning("association with %s (%s) aborted: malformed message (%s)",
                   str(association.requestor.ae_title).strip(), association.requestor.address,
                   admission.short(error) if isinstance(error, Exception) else "?")  # fmt: skip
    connection = association.dul.socket.socket if association.dul.socket is not None else None
    if connection is not None:
        with contextlib.suppress(OSError):
            connection.settimeout(ABORT_SEND_TIMEOUT_SECONDS)
            connection.sendall(admission.abort(admission.UNEXPECTED_PDU))
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)


def give_back(association: Any) -> None:
    """Leave the socket to the DUL thread for the rest of the association, woken to read at once."""
    setattr(association, REQUESTS_ATTRIBUTE, False)
    reads: DulReads | None = getattr(association, READ_LOCK_ATTRIBUTE, None)
    if reads is not None:
        reads.listen()
    wakeup: Wakeup | None = getattr(association, WAKEUP_ATTRIBUTE, None)
    if wakeup is not None:
        wakeup.wake_dul()


CONNECTION_HANDLERS = [
    (evt.EVT_CONN_OPEN, set_no_delay),
    (evt.EVT_CONN_OPEN, acknowledge_promptly),
    (evt.EVT_CONN_OPEN, CLOCK.opened),
    (evt.EVT_CONN_OPEN, wake_on_arrival),
    (evt.EVT_CONN_CLOSE, CLOCK.closed),
    (evt.EVT_CONN_CLOSE, unwake),
]
REQUESTOR_HANDLERS = [
    *CONNECTION_HANDLERS,
    (evt.EVT_CONN_OPEN, serialise_reactor),
    (evt.EVT_CONN_OPEN, hold_reactor),
    (evt.EVT_ESTABLISHED, read_store_responses),
]
# The module globals the process-wide patches replace, by patch (`apply` puts them in or takes them out).
REPLACEMENTS = {
    "shared_contexts": [replacement(transport, "deepcopy", share_contexts)],
    "fast_polling": [replacement(association, "time", CLOCK), replacement(dul, "time", CLOCK)],
    "command_writer": [replacement(dimse_messages, "encode", encode_command_set)],
    "identifier_writer": [replacement(service_class, "encode", encoding.encode_identifier)],
    "uid_checks": [
        replacement(pydicom.uid.UID, "is_valid", property(uid_is_valid)),
        replacement(_config, "VALIDATORS", {**PYNETDICOM_VALIDATORS, "UI": validate_ui}),
    ],
    "negotiation_once": [
        replacement(acse, "negotiate_as_acceptor", negotiation.negotiate),
        replacement(fsm, "A_ASSOCIATE_AC", negotiation.associate_accept),
    ],
    "accept_first": [
        replacement(acse.ACSE, "send_accept", send_accept_first),
        replacement(fsm, "ACTIONS", signalling_actions()),
    ],
    "requestor_answer": [
        replacement(transport.AssociationSocket, CONNECTED_ATTRIBUTE, property(connection_made, note_connection))
    ],
}
