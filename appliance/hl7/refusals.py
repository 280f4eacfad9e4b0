"""One WARNING line per refused connection or frame, and no more than `burst` of them per `period`:
a port scanner at ten connections a second writes ten lines a minute, not a journal full of them.
The lines not written are counted and the count goes out with the next line, or on its own when
the period has passed (`flush`, called by the listener's loop)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

BURST = 10
PERIOD_SECONDS = 60.0


class RefusalLog:
    """Rate-limited WARNING lines for refusals, shared by every connection of a listener."""

    def __init__(
        self, burst: int = BURST, period: float = PERIOD_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.burst = burst
        self.period = period
        self.clock = clock
        self.lock = threading.Lock()
        self.window_start = clock()
        self.written = 0
        self.suppressed = 0
        self.last_logger: logging.Logger | None = None

    def warning(self, logger: logging.Logger, message: str, *arguments: object) -> bool:
        """Log `message % arguments` on `logger` unless this period's lines are spent; True when written."""
        return self.log(logger, logging.WARNING, message, *arguments)

    def log(self, logger: logging.Logger, level: int, message: str, *arguments: object) -> bool:
        """As `warning`, at `level` (an index that cannot grow is an ERROR, still rate-limited)."""
        with self.lock:
            self.next_window()
            if self.written >= self.burst:
                self.suppressed += 1
                self.last_logger = logger
                return False
            self.written += 1
            suppressed, self.suppressed = self.suppressed, 0
        if suppressed:
            message, arguments = f"{message} (and %d refusal(s) not logged before)", (*arguments, suppressed)
        logger.log(level, message, *arguments)
        return True

    def flush(self) -> None:
        """Once the period is over, say how many refusals went unlogged in it (if any)."""
        with self.lock:
            if self.clock() - self.window_start < self.period or not self.suppressed or self.last_logger is None:
                return
            suppressed, self.suppressed, logger = self.suppressed, 0, self.last_logger
            self.next_window()
        logger.warning("%d more refusal(s) not logged in the last %d s", suppressed, round(self.period))

    def next_window(self) -> None:
        now = self.clock()
        if now - self.window_start >= self.period:
            self.window_start = now
            self.written = 0


REFUSALS = RefusalLog()
