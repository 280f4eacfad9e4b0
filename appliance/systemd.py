"""The little of systemd a daemon needs, without dependencies: sd_notify, the watchdog, and
signals turned into an event the main loop waits on."""

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


class StopSignal:
    """An event set by SIGTERM or SIGINT; the main loop waits on it."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.received: int | None = None

    def install(self) -> None:
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, self.handle)

    def handle(self, number: int, _frame: FrameType | None) -> None:
        self.received = number
        self.event.set()

    def wait(self, timeout: float | None) -> bool:
        """True once a stop signal has arrived; False when `timeout` passed first."""
        return self.event.wait(timeout)
