"""One round of the monitor: every source at once, each in its own thread with a time bound, then
their readings stored (`store.record`), which gives the changes the alerts tell about.

A source still running at the deadline (smartctl on a dying disk, a service that accepts the
connection and never answers) does not hold the others up: its previous state is kept as it was
(a failing disk must not look recovered because its check hung), the monitor reports it as a
warning about itself (source "monitor", subject the source's name), and it is not started again
while its thread still runs, so hung checks never pile up.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine

from appliance import systemd
from appliance.config import Config
from appliance.monitor import store
from appliance.monitor.findings import Finding, Reading, Severity
from appliance.monitor.sources import Check, Context, run_source
from appliance.monitor.store import Change

log = logging.getLogger(__name__)

MONITOR_SOURCE = "monitor"
SOURCE_TIMEOUT_SECONDS = 45.0
DAEMON_NAME = "appliance-monitor"


@dataclass
class Rounds:
    """Runs `sources` round after round; remembers the checks still running from earlier rounds."""

    sources: dict[str, Check]
    timeout_seconds: float = SOURCE_TIMEOUT_SECONDS
    running: dict[str, threading.Thread] = field(default_factory=dict)

    def run(self, config: Config, engine: Engine, now: datetime) -> list[Change]:
        """Run every source (at most `timeout_seconds` in all), store the readings, return the changes."""
        context = Context(config, engine, now)
        readings: dict[str, Reading] = {}
        started = {name: self.start(name, check, context, readings) for name, check in self.sources.items()}
        deadline = time.monotonic() + self.timeout_seconds
        late: list[Finding] = []
        finished: dict[str, Reading] = {}
        for name, thread in started.items():
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))
            reading = readings.get(name) if thread is not None else None
            if reading is None:
                late.append(self.late_finding(name))
            else:
                finished[name] = reading
                self.running.pop(name, None)
        changes: list[Change] = []
        for name, reading in finished.items():
            changes += store.record(engine, name, reading, now)
        changes += store.record(engine, MONITOR_SOURCE, Reading(late), now)
        return changes

    def start(self, name: str, check: Check, context: Context, readings: dict[str, Reading]) -> threading.Thread | None:
        """The thread running `check`, or None when the one of an earlier round still runs."""
        previous = self.running.get(name)
        if previous is not None and previous.is_alive():
            return None

        def work() -> None:
            readings[name] = run_source(name, check, context)

        thread = threading.Thread(target=work, name=f"check-{name}", daemon=True)
        self.running[name] = thread
        thread.start()
        return thread

    def late_finding(self, name: str) -> Finding:
        log.warning("health check %s did not finish within %.0f s; its last state is kept", name, self.timeout_seconds)
        message = "La vérification de cet élément ne répond plus ; le prestataire doit regarder."
        detail = f"check {name!r} still running after {self.timeout_seconds:.0f} s (a hung disk or service?)"
        return Finding(MONITOR_SOURCE, name, Severity.WARNING, message, detail)


def ask_for_round(config: Config) -> bool:
    """Ask the running `appliance-monitor` for a round now (SIGUSR1 through its PID file), as the
    console's "check now" does; False when it is not running or may not be signalled."""
    path = config.storage.run_directory / f"{DAEMON_NAME}{systemd.PID_SUFFIX}"
    written = systemd.read_pid_file(path)
    if written.pid <= 0 or not written.ticks or systemd.start_ticks(written.pid) != written.ticks:
        return False
    try:
        os.kill(written.pid, signal.SIGUSR1)
    except OSError:
        return False
    return True
