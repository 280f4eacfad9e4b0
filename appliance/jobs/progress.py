"""The progress of the running job, written to its row for the console (which polls every 2 s), and
the checkpoints where it stops: a cancellation from the console, or its own process stopping."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine

from appliance.jobs.queue import write_progress

WRITE_INTERVAL_SECONDS = 0.5


class Cancelled(Exception):
    """Someone asked for the job to stop: raised at its next checkpoint."""


class Stopped(Exception):
    """The runner's process is stopping: the job goes back to the queue."""


class Progress:
    """The archive's `ProgressCallback` for one running job.

    Each call is a checkpoint: it raises Stopped when the process is stopping, and writes
    done/total/step to the job's row at most every `interval` seconds (at once when the step
    changes), raising Cancelled when a cancellation was requested meanwhile.
    """

    def __init__(
        self,
        engine: Engine,
        job_id: int,
        stopping: threading.Event | None = None,
        interval: float = WRITE_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.job_id = job_id
        self.stopping = stopping or threading.Event()
        self.interval = interval
        self.clock = clock
        self.step, self.done, self.total = "", 0, 0
        self.written_at: float | None = None

    def __call__(self, step: str, done: int, total: int) -> None:
        if self.stopping.is_set():
            raise Stopped
        due = step != self.step or self.written_at is None or self.clock() - self.written_at >= self.interval
        self.step, self.done, self.total = step, done, total
        if due and self.save():
            raise Cancelled

    def save(self) -> bool:
        """Write the latest progress now; return whether a cancellation was requested."""
        self.written_at = self.clock()
        return write_progress(self.engine, self.job_id, self.step, self.done, self.total)
