"""`appliance-monitor`: the health of the box, round after round. Each round runs every source of
`appliance.monitor.registry` (each with a time bound), stores the findings and their changes in
the index, then mails what changed (`appliance.monitor.alerts`) and, once a day, the digest.

Rounds: one at start-up (READY is sent once the index is open, the first round runs beside it),
then every `monitor.interval_seconds`, and at once on SIGUSR1 (the console's "check now",
`appliance.monitor.rounds.ask_for_round`) or when the hooks of mdadm, smartd or NUT record an event
(`monitor.events_file` grows): a failed disk is seen within seconds, not at the next round.
SIGHUP reloads the configuration (read at each round); SIGTERM lets the round in flight finish
(bounded by the sources' time limit) and exits 0. Measures older than 400 days are pruned daily.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from appliance.daemons import runtime as process
from appliance.monitor.alerts import Alerter
from appliance.monitor.registry import SOURCES
from appliance.monitor.rounds import DAEMON_NAME, SOURCE_TIMEOUT_SECONDS, Rounds
from appliance.monitor.sources import Check
from appliance.monitor.store import prune_measures

LOGGER = logging.getLogger(__name__)

KEEP_MEASURES = timedelta(days=400)
PRUNE_EVERY = timedelta(days=1)
EVENTS_POLL_SECONDS = 1.0
HUNG_AFTER_SECONDS = SOURCE_TIMEOUT_SECONDS + 120  # a round longer than this stops the watchdog pings


def file_signature(path: Path | None) -> tuple[int, int]:
    """Size and modification time of `path` ((0, 0) when missing): a change means news."""
    if path is None:
        return (0, 0)
    try:
        status = path.stat()
    except OSError:
        return (0, 0)
    return (status.st_size, status.st_mtime_ns)


class Monitor:
    """The rounds' thread: a round, then a wait for the interval, a wake-up or an event."""

    def __init__(self, runtime: process.Runtime, sources: dict[str, Check]) -> None:
        self.runtime = runtime
        self.rounds = Rounds(sources)
        self.alerter = Alerter(runtime.config.storage.data_directory / "monitor" / "digest-sent")
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.round_started: float | None = None
        self.pruned_at: datetime | None = None
        self.thread = threading.Thread(target=self.run, name="monitor", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Let the round in flight finish, then stop."""
        self.stopping.set()
        self.wake.set()
        self.thread.join(timeout=SOURCE_TIMEOUT_SECONDS + 30)

    def healthy(self) -> bool:
        started = self.round_started
        return self.thread.is_alive() and (started is None or time.monotonic() - started < HUNG_AFTER_SECONDS)

    def run(self) -> None:
        while not self.stopping.is_set():
            events = file_signature(self.runtime.config.monitor.events_file)
            try:
                self.round()
            except Exception:  # outermost loop of the thread: log, wait, try again
                LOGGER.exception("monitor round failed")
            finally:
                self.round_started = None
            self.wait(events)

    def round(self) -> None:
        self.round_started = time.monotonic()
        config, engine = self.runtime.config, self.runtime.engine
        now = datetime.now(UTC)
        changes = self.rounds.run(config, engine, now)
        for change in changes:
            LOGGER.info("health %s/%s: %s -> %s", change.source, change.subject,
                        change.previous.value if change.previous else "new", change.severity.value)  # fmt: skip
        self.alerter.run(config, engine, datetime.now(UTC))
        if self.pruned_at is None or now - self.pruned_at >= PRUNE_EVERY:
            pruned = prune_measures(engine, now - KEEP_MEASURES)
            if pruned:
                LOGGER.info("pruned %d measure(s) older than %d days", pruned, KEEP_MEASURES.days)
            self.pruned_at = now

    def wait(self, events_before: tuple[int, int]) -> None:
        """Until the interval has passed (read again from the configuration), SIGUSR1, or news in
        the events file since the round began."""
        deadline = time.monotonic() + self.runtime.config.monitor.interval_seconds
        while not self.stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self.wake.wait(min(remaining, EVENTS_POLL_SECONDS)):
                self.wake.clear()
                return
            if file_signature(self.runtime.config.monitor.events_file) != events_before:
                LOGGER.info("new event recorded by a system tool: checking now")
                return


def main(argv: Sequence[str] | None = None, sources: dict[str, Check] | None = None) -> int:
    runtime = process.start(argv, "The health monitor: checks, their history, alert mails.")
    if runtime is None:
        return 2
    # A service down makes pynetdicom log two ERROR lines per probe: the finding says it once.
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    monitor = Monitor(runtime, SOURCES if sources is None else sources)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # until `serve` runs its action: a round starts anyway
    monitor.start()
    interval = runtime.config.monitor.interval_seconds
    process.announce(f"health monitor running ({len(monitor.rounds.sources)} sources, every {interval} s)")
    try:
        actions: dict[int, Callable[[], None]] = {signal.SIGUSR1: monitor.wake.set}  # the console's "check now"
        return process.serve(runtime, monitor.healthy, "health monitor", name=DAEMON_NAME, actions=actions)
    finally:
        monitor.stop()
        runtime.engine.dispose()
        LOGGER.info("health monitor stopped")


if __name__ == "__main__":
    raise SystemExit(main())
