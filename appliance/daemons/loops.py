"""A background loop: one piece of work done again and again until the process stops, woken early
when there is news; a failure is logged and the loop goes on."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

LOGGER = logging.getLogger(__name__)


class Loop:
    """Runs `work` (which returns how much it did) every `every`, or at once when `wake` is set and
    again straight away while it finds work to do."""

    def __init__(
        self, name: str, work: Callable[[], int], every: timedelta, wake: threading.Event | None = None
    ) -> None:
        self.name = name
        self.work = work
        self.every = every.total_seconds()
        self.wake = wake or threading.Event()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Let the round in flight finish, then stop."""
        self.stopping.set()
        self.wake.set()
        if self.thread.is_alive():
            self.thread.join(timeout=120)

    def is_alive(self) -> bool:
        return self.thread.is_alive()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                done = self.work()
            except Exception:  # outermost loop of the thread: log, wait, try again
                LOGGER.exception("%s round failed", self.name)
                done = 0
            if not done:
                self.wake.wait(self.every)
                self.wake.clear()
