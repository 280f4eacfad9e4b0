"""The little of systemd a daemon needs, without dependencies: sd_notify, the watchdog, signals
(stop, reload, and any other given an action) turned into a wake-up the main loop waits on, and
the PID files through which the console asks every daemon to reload its configuration.

PID files: each daemon writes `<data_directory>/run/<name>.pid` ("PID START RELOADS", START being
the process's start time in clock ticks, so that a PID reused by another process is never
signalled), counts each successful reload in it, and removes it when it stops. The console sends SIGHUP to
each live daemon it finds there (on the box they all run as the `appliance` user, as the console
does) and waits briefly for the counts to say which ones reloaded.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import FrameType

PID_SUFFIX = ".pid"
RELOAD_WAIT_SECONDS = 2.0


def notify(message: str) -> bool:
    """Send `message` (READY=1, STOPPING=1, WATCHDOG=1, STATUS=...) to systemd; False if not under it."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as notify_socket:
        notify_socket.connect(address)
        notify_socket.sendall(message.encode("utf-8"))
    return True


def watchdog_interval() -> float | None:
    """Seconds between watchdog pings (half of WatchdogSec), or None when there is no watchdog."""
    microseconds = os.environ.get("WATCHDOG_USEC")
    watchdog_pid = os.environ.get("WATCHDOG_PID")
    if not microseconds or (watchdog_pid and int(watchdog_pid) != os.getpid()):
        return None
    return int(microseconds) / 2_000_000


class Signals:
    """SIGTERM and SIGINT ask to stop, SIGHUP to reload the configuration; the main loop waits on them.
    Other signals may be given an action (the monitor's SIGUSR1: a round now), run by `wait`.

    A handler runs in the main thread between two of its bytecodes, possibly while that thread
    holds a lock (an Event's, say, inside `Event.set` or `Event.wait`): a handler that takes one can
    then wait for itself forever, which two signals close together did (Ctrl-C on `make run` sends
    SIGINT to every daemon, then the supervisor sends SIGTERM). So the handler takes no lock: it
    sets plain attributes and writes a byte to a pipe, and `wait` waits on the pipe.
    """

    def __init__(self) -> None:
        self.reader, self.writer = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.received: int | None = None
        self.reload_requested = False
        self.actions: dict[int, Callable[[], None]] = {}
        self.pending: list[int] = []

    def install(self, actions: Mapping[int, Callable[[], None]] | None = None) -> None:
        """Handle SIGTERM, SIGINT and SIGHUP, and the signals of `actions` (each run by `wait`)."""
        self.actions = dict(actions or {})
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, *self.actions):
            signal.signal(number, self.handle)

    def handle(self, number: int, _frame: FrameType | None) -> None:
        if number == signal.SIGHUP:
            self.reload_requested = True
        elif number in self.actions:
            self.pending.append(number)
        else:
            self.received = number
        with contextlib.suppress(BlockingIOError):  # the pipe is full of wake-ups already
            os.write(self.writer, b"\0")

    @property
    def stopping(self) -> bool:
        return self.received is not None

    def wait(self, timeout: float | None) -> None:
        """Return when a signal arrives or `timeout` passes (at once if one came since the last
        wait), after running the actions of the signals that came."""
        select.select([self.reader], [], [], timeout)
        self.drain()
        pending, self.pending = self.pending, []
        for number in dict.fromkeys(pending):
            self.actions[number]()

    def drain(self) -> None:
        try:
            while os.read(self.reader, 512):
                pass
        except BlockingIOError:
            pass

    def take_reload(self) -> bool:
        """Whether a reload was asked for since the last call."""
        asked, self.reload_requested = self.reload_requested, False
        return asked


class ReloadState(StrEnum):
    RELOADED = "reloaded"  # signalled, and it touched its PID file: the new configuration is in force
    NO_ANSWER = "no-answer"  # signalled, but it did not say it reloaded in time (refused: see its log)
    NOT_RUNNING = "not-running"  # a PID file left by a daemon that is gone (removed)
    REFUSED = "refused"  # the signal was not allowed (another user's process)


@dataclass(frozen=True)
class ReloadAnswer:
    name: str  # the daemon, e.g. appliance-dicom
    pid: int
    state: ReloadState


def start_ticks(pid: int) -> str:
    """When process `pid` started, in clock ticks since boot ('' when there is no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return ""
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else ""  # field 22 of proc(5), counting after the name


@dataclass(frozen=True)
class PidFile:
    """What a PID file says: the process, when it started, how many reloads it has done."""

    pid: int
    ticks: str
    reloads: int = 0


def write_pid_file(directory: Path, name: str, reloads: int = 0) -> Path:
    """Say that this process is daemon `name`: `<directory>/<name>.pid`, written atomically."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o750)
    path = directory / f"{name}{PID_SUFFIX}"
    temporary = directory / f".{name}.{os.getpid()}"
    temporary.write_text(f"{os.getpid()} {start_ticks(os.getpid())} {reloads}\n", encoding="ascii")
    os.replace(temporary, path)
    return path


def remove_pid_file(path: Path) -> None:
    """Remove this process's PID file (left alone when another process has written it since)."""
    if read_pid_file(path).pid == os.getpid():
        path.unlink(missing_ok=True)


def mark_reloaded(path: Path) -> None:
    """Tell whoever sent SIGHUP that the new configuration is in force (one more reload counted)."""
    current = read_pid_file(path)
    if current.pid == os.getpid():
        write_pid_file(path.parent, path.name.removesuffix(PID_SUFFIX), current.reloads + 1)


def read_pid_file(path: Path) -> PidFile:
    """What the PID file at `path` says (PID 0 when it is missing or unreadable)."""
    try:
        parts = path.read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError):
        return PidFile(0, "")
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        return PidFile(0, "")
    return PidFile(int(parts[0]), parts[1], int(parts[2]))


def reload_daemons(directory: Path, wait_seconds: float = RELOAD_WAIT_SECONDS) -> list[ReloadAnswer]:
    """SIGHUP to every daemon with a PID file in `directory` (not to this process), then wait up to
    `wait_seconds` for each to count one more reload. Stale PID files are removed."""
    waiting: dict[Path, tuple[ReloadAnswer, int]] = {}
    answers: list[ReloadAnswer] = []
    for path in sorted(directory.glob(f"*{PID_SUFFIX}")):
        written = read_pid_file(path)
        if written.pid == os.getpid():
            continue
        answer = signal_daemon(path, written)
        if answer.state == ReloadState.NO_ANSWER:
            waiting[path] = (answer, written.reloads)
        else:
            answers.append(answer)
    deadline = time.monotonic() + wait_seconds
    while waiting:
        for path, (answer, reloads) in list(waiting.items()):
            if read_pid_file(path).reloads != reloads:
                answers.append(ReloadAnswer(answer.name, answer.pid, ReloadState.RELOADED))
                del waiting[path]
        if not waiting or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    answers += [answer for answer, _ in waiting.values()]
    return sorted(answers, key=lambda answer: answer.name)


def signal_daemon(path: Path, written: PidFile) -> ReloadAnswer:
    """SIGHUP to the daemon of PID file `path` if it is still the process that wrote it."""
    name = path.name.removesuffix(PID_SUFFIX)
    if written.pid <= 0 or not written.ticks or start_ticks(written.pid) != written.ticks:
        path.unlink(missing_ok=True)
        return ReloadAnswer(name, written.pid, ReloadState.NOT_RUNNING)
    try:
        os.kill(written.pid, signal.SIGHUP)
    except ProcessLookupError:
        path.unlink(missing_ok=True)
        return ReloadAnswer(name, written.pid, ReloadState.NOT_RUNNING)
    except PermissionError:
        return ReloadAnswer(name, written.pid, ReloadState.REFUSED)
    return ReloadAnswer(name, written.pid, ReloadState.NO_ANSWER)
