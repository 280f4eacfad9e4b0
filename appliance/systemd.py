"""The little of systemd a daemon needs, without dependencies: sd_notify, the watchdog, and
signals (stop, reload) turned into an event the main loop waits on."""

from __future__ import annotations

import os
import signal
import socket
import threading
from types import FrameType


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
    """SIGTERM and SIGINT ask to stop, SIGHUP to reload the configuration; the main loop waits on them."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.received: int | None = None
        self.reload_requested = False

    def install(self) -> None:
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(number, self.handle)

    def handle(self, number: int, _frame: FrameType | None) -> None:
        if number == signal.SIGHUP:
            self.reload_requested = True
        else:
            self.received = number
        self.event.set()

    @property
    def stopping(self) -> bool:
        return self.received is not None

    def wait(self, timeout: float | None) -> None:
        """Return when a signal arrives or `timeout` passes."""
        self.event.wait(timeout)
        self.event.clear()

    def take_reload(self) -> bool:
        """Whether a reload was asked for since the last call."""
        asked, self.reload_requested = self.reload_requested, False
        return asked
