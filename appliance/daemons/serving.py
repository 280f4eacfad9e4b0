"""The archive's serving processes, run and watched by its acceptor (`dicom.handoff` says why and how).

Each serving process is `appliance.daemons.archive_serving`, started with the daemon's own
arguments and one end of its channel. The acceptor hands each admitted connection to the one with
the fewest associations open (between equals, the one last handed the same request), and counts
them until their end is reported, so that the per-address and total limits hold across processes.
A serving process that ends while the daemon runs (a crash) is logged and replaced; its
associations were cut, what they had acknowledged is durable. SIGHUP is passed on; at the daemon's
stop each one finishes its associations (as a single-process daemon does) before the daemon ends.
A serving process dies with the acceptor (`PR_SET_PDEATHSIG`): killing the daemon outright kills
it whole.

A serving process that hangs without ending (stopped, or its thread that takes the connections
stuck) would keep the connections handed to it waiting, and take new ones: every
`LIVENESS_INTERVAL_SECONDS` each one is asked whether it is alive, and one that has said nothing
(no answer, no report) for `LIVENESS_TIMEOUT_SECONDS` is logged, killed and replaced as a crashed one.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from appliance.daemons import runtime as process
from appliance.daemons.dicom_server import STOP_GRACE_SECONDS
from appliance.dicom import handoff
from appliance.dicom.commitment_scp import Signal

LOGGER = logging.getLogger(__name__)

SERVING_MODULE = "appliance.daemons.archive_serving"
READY_TIMEOUT_SECONDS = 120.0
RELOAD_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = STOP_GRACE_SECONDS + 15.0
MOST_PROCESSES = 4  # `dicom.processes: 0`: one per core, at most this many
NO_PROCESS = "no archive process could take it"  # the refusal's reason when none is running
LIVENESS_INTERVAL_SECONDS = 5.0
LIVENESS_TIMEOUT_SECONDS = 30.0  # six questions unanswered: far beyond any pause of a busy process
SYSTEMD_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")  # the acceptor alone talks to systemd
REQUESTS_REMEMBERED = 64  # distinct association requests whose last serving process is kept


def serving_processes(configured: int) -> int:
    """How many serving processes `dicom.processes` asks for on this machine (1: the daemon serves
    its associations itself)."""
    if configured > 0:
        return configured
    try:
        cores = len(os.sched_getaffinity(0))  # the cores this process may run on (a container's)
    except OSError:
        cores = os.cpu_count() or 1
    return max(1, min(cores, MOST_PROCESSES))


@dataclass
class Serving:
    """One serving process, its channel, and the associations handed to it that have not ended."""

    number: int
    process: subprocess.Popen[bytes]
    channel: socket.socket
    ready: threading.Event = field(default_factory=threading.Event)
    reloaded: threading.Event = field(default_factory=threading.Event)
    open: dict[int, str] = field(default_factory=dict)  # token -> the peer's host
    sending: threading.Lock = field(default_factory=threading.Lock)
    heard: float = field(default_factory=time.monotonic)  # when it last said anything


class ServingProcesses:
    """The acceptor's side of the hand-over (`guarded_server.Handoff`)."""

    def __init__(self, arguments: Sequence[str], count: int, received: Signal) -> None:
        self.arguments = list(arguments)
        self.count = count
        self.received = received
        self.lock = threading.Lock()
        self.tokens = itertools.count(1)
        self.slots: list[Serving] = []
        self.stopping = threading.Event()  # set at the daemon's stop
        self.failed = False
        self.served: OrderedDict[int, int] = OrderedDict()  # a request's hash -> the process last handed it

    def start(self) -> bool:
        """Start them all; whether each said it serves within `READY_TIMEOUT_SECONDS` (logged if not)."""
        self.slots = [self.spawn(number) for number in range(self.count)]
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        for serving in self.slots:
            if not serving.ready.wait(max(0.0, deadline - time.monotonic())):
                LOGGER.error("archive serving process %d (pid %d) did not start", serving.number, serving.process.pid)
                return False
        threading.Thread(target=self.watch, name="archive-serving-liveness", daemon=True).start()
        return True

    def watch(self) -> None:
        """Until the stop: ask each serving process whether it is alive; kill one silent too long."""
        while not self.stopping.wait(LIVENESS_INTERVAL_SECONDS):
            with self.lock:
                running = [serving for serving in self.slots if serving.ready.is_set()]
            for serving in running:
                if serving.process.poll() is None:
                    self.check(serving)

    def check(self, serving: Serving) -> None:
        quiet_for = time.monotonic() - serving.heard
        if quiet_for > LIVENESS_TIMEOUT_SECONDS:
            LOGGER.error("archive serving process %d (pid %d) has not answered for %.0f s: killing it",
                         serving.number, serving.process.pid, quiet_for)  # fmt: skip
            serving.process.kill()  # its channel closes: `listen` replaces it
            return
        if not serving.sending.acquire(blocking=False):
            return  # a hand-over is being written to it: asked at the next round
        try:
            handoff.ask_alive(serving.channel)
        except OSError:  # its channel is full (it reads nothing: the timeout runs), or it is ending
            pass
        finally:
            serving.sending.release()

    def spawn(self, number: int) -> Serving:
        ours, theirs = handoff.channel_pair()
        command = [sys.executable, "-m", SERVING_MODULE, "--channel", str(theirs.fileno()),
                   "--acceptor", str(os.getpid()), *self.arguments]  # fmt: skip
        with theirs:
            started = subprocess.Popen(command, pass_fds=[theirs.fileno()], env=serving_environment())
        serving = Serving(number, started, ours)
        threading.Thread(target=self.listen, args=(serving,), name=f"archive-serving-{number}", daemon=True).start()
        return serving

    def listen(self, serving: Serving) -> None:
        """Take a serving process's reports until it ends, then replace it (unless stopping)."""
        while (report := handoff.next_report(serving.channel)) is not None:
            kind, token = report
            serving.heard = time.monotonic()
            if kind == handoff.READY:
                serving.ready.set()
            elif kind == handoff.ENDED:
                with self.lock:
                    serving.open.pop(token, None)
            elif kind == handoff.RECEIVED:
                self.received.set()
            elif kind == handoff.RELOADED:
                serving.reloaded.set()
        self.replace(serving)

    def replace(self, serving: Serving) -> None:
        status = serving.process.wait()
        with self.lock:
            cut = len(serving.open)
            serving.open.clear()
        serving.channel.close()
        if self.stopping.is_set():
            return
        LOGGER.error("archive serving process %d (pid %d) ended (exit status %d), %d association(s) cut: "
                     "starting another", serving.number, serving.process.pid, status, cut)  # fmt: skip
        replacement = self.spawn(serving.number)
        with self.lock:
            self.slots[serving.number] = replacement
        if not replacement.ready.wait(READY_TIMEOUT_SECONDS):
            LOGGER.error("archive serving process %d did not start again", serving.number)
            self.failed = True

    def hand(
        self, connection: socket.socket, address: tuple[str, int], request: bytes, most: int, most_from_address: int
    ) -> str | None:
        """To the ready serving process with the fewest associations open (one that answers its
        liveness questions first; between equals, the one last handed the same request, `chosen`),
        unless `most` are open in all or `most_from_address` from its address: counted under the
        lock that checks them, so that handshakes admitted side by side cannot pass a limit together."""
        with self.lock:
            if sum(len(serving.open) for serving in self.slots) >= most:
                return f"{most} associations already open"
            if self.count_from(address[0]) >= most_from_address:
                return f"{most_from_address} associations already open from {address[0]}"
            candidates = [
                serving for serving in self.slots if serving.ready.is_set() and serving.process.poll() is None
            ]
            if not candidates:
                return NO_PROCESS
            serving = self.chosen(candidates, request)
            token = next(self.tokens)
            serving.open[token] = address[0]
        try:
            with serving.sending:
                handoff.hand(serving.channel, connection, handoff.Handed(token, address, request))
        except OSError as error:
            LOGGER.warning("archive serving process %d could not take a connection: %s", serving.number, error)
            with self.lock:
                serving.open.pop(token, None)
            return NO_PROCESS
        return None

    def chosen(self, candidates: list[Serving], request: bytes) -> Serving:
        """The candidate with the fewest associations open, and between equals the one last handed
        the same request bytes: it keeps that request decoded and its answer negotiated (`admission`,
        `negotiation`), which a process seeing it first makes anew. A peer sends the same bytes on
        each association. DCMTK getscu's C-GET (121 contexts) just after one served by the other
        process, which had seen it: first image 25.6 ms instead of 27.8 ms (medians of 6 daemons).
        Holds the lock."""
        key = hash(request)
        last = self.served.get(key)
        serving = min(
            candidates, key=lambda candidate: (silent(candidate), len(candidate.open), candidate.number != last)
        )
        self.served[key] = serving.number
        self.served.move_to_end(key)
        while len(self.served) > REQUESTS_REMEMBERED:
            self.served.popitem(last=False)
        return serving

    def associations_from(self, address: str) -> int:
        with self.lock:
            return self.count_from(address)

    def count_from(self, address: str) -> int:
        """Associations from `address` not ended (the caller holds the lock)."""
        return sum(1 for serving in self.slots for host in serving.open.values() if host == address)

    def healthy(self) -> bool:
        return not self.failed

    def reload(self) -> None:
        """Pass SIGHUP on, and wait (at most `RELOAD_TIMEOUT_SECONDS`) until each has read the
        configuration again: the daemon says it reloaded once its serving processes have."""
        signalled = [serving for serving in self.slots if serving.ready.is_set() and serving.process.poll() is None]
        # one still starting reads the configuration as it is now (and has no SIGHUP handler yet)
        for serving in signalled:
            serving.reloaded.clear()
            serving.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + RELOAD_TIMEOUT_SECONDS
        for serving in signalled:
            if not serving.reloaded.wait(max(0.0, deadline - time.monotonic())):
                LOGGER.warning("archive serving process %d did not say it reloaded", serving.number)

    def stop(self) -> None:
        """SIGTERM each (it finishes its associations, as the daemon does), wait, kill what is left."""
        self.stopping.set()
        for serving in self.slots:
            if serving.process.poll() is None:
                serving.process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for serving in self.slots:
            try:
                serving.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                LOGGER.warning("archive serving process %d (pid %d) killed at shutdown", serving.number,
                               serving.process.pid)  # fmt: skip
                serving.process.kill()
                serving.process.wait()


def silent(serving: Serving) -> bool:
    """Whether a serving process has left questions unanswered: one that answers is preferred."""
    return time.monotonic() - serving.heard > 2 * LIVENESS_INTERVAL_SECONDS + 1


def serving_environment() -> dict[str, str]:
    """The daemon's environment, without what would let a serving process talk to systemd, and with
    the development warning already given."""
    environment = {name: value for name, value in os.environ.items() if name not in SYSTEMD_VARIABLES}
    environment[process.DEVELOPMENT_WARNED_ENVIRONMENT] = "1"
    return environment
