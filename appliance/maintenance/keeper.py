"""What `appliance-tunnel` does: run autossh while the state file says the tunnel is open, and stop
it within a second when an administrator closes it or its time is up.

The keeper only reads the state (the console writes it, the worker records the expiry): on the box
it runs as the tunnel's own account, the only one that may read the box's key, and cannot write
the data directory. autossh runs in its own process group, so that stopping it ends its ssh too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime

from appliance.config import Config
from appliance.maintenance import autossh
from appliance.maintenance.state import Opening, StateError, read_state, state_path

LOGGER = logging.getLogger(__name__)

POLL_SECONDS = 1.0  # how often the state file is read: the latency of a closing
RESTART_SECONDS = 10.0  # wait before starting autossh again when it exited while the tunnel is open
STOP_SECONDS = 5.0  # SIGTERM, then SIGKILL after this long


class Keeper:
    """autossh for the opening in force. `step()` is called again and again by the daemon's loop;
    `stop()` ends autossh (at the daemon's stop)."""

    def __init__(self, configuration: Callable[[], Config]) -> None:
        self.configuration = configuration
        self.process: subprocess.Popen[bytes] | None = None
        self.serving: Opening | None = None
        self.restart_at = 0.0
        self.state_problem = ""

    def step(self, now: datetime | None = None) -> float:
        """Start, keep or stop autossh as the state says; the seconds to wait before the next step."""
        moment = now or datetime.now(UTC)
        config = self.configuration()
        opening = self.wanted(config, moment)
        if opening is None:
            self.stop("the tunnel is closed")
            return POLL_SECONDS
        if self.serving is not None and self.serving.opened_at != opening.opened_at:
            self.stop("another opening replaced the one served")
        self.watch_exit()
        if self.process is None and time.monotonic() >= self.restart_at:
            self.start(config, opening, moment)
        return max(0.05, min(POLL_SECONDS, (opening.until - moment).total_seconds()))

    def wanted(self, config: Config, now: datetime) -> Opening | None:
        """The opening to serve now, or None (closed, over, no bastion, an unreadable state)."""
        if not config.maintenance.enabled:
            return None
        try:
            opening = read_state(state_path(config))
        except StateError as error:
            if str(error) != self.state_problem:
                LOGGER.error("maintenance tunnel state unreadable, kept closed: %s", error)
                self.state_problem = str(error)
            return None
        self.state_problem = ""
        return opening if opening is not None and opening.is_open(now) else None

    def start(self, config: Config, opening: Opening, now: datetime) -> None:
        maintenance = config.maintenance
        lifetime = int((opening.until - now).total_seconds()) + 1
        LOGGER.info(
            "maintenance tunnel: autossh to %s@%s:%d, bastion's 127.0.0.1:%d -> box's port %d, until %s (opened by %s)",
            maintenance.bastion_user, maintenance.bastion_host, maintenance.bastion_port, maintenance.remote_port,
            maintenance.box_port, opening.until.isoformat(timespec="seconds"), opening.opened_by,
        )  # fmt: skip
        try:
            self.process = subprocess.Popen(
                autossh.command(maintenance),
                env=autossh.environment(lifetime),
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as error:
            LOGGER.error("maintenance tunnel: cannot start %s: %s", maintenance.autossh, error)
            self.restart_at = time.monotonic() + RESTART_SECONDS
            return
        self.serving = opening

    def watch_exit(self) -> None:
        """Notice an autossh that ended while the tunnel is open: started again after a pause."""
        if self.process is None or self.process.poll() is None:
            return
        LOGGER.warning(
            "maintenance tunnel: autossh exited with status %s; starting it again in %.0f s",
            self.process.returncode, RESTART_SECONDS,
        )  # fmt: skip
        self.process = None
        self.restart_at = time.monotonic() + RESTART_SECONDS

    def stop(self, why: str) -> None:
        """End autossh and its ssh (SIGTERM to the group, SIGKILL after STOP_SECONDS)."""
        self.serving = None
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            LOGGER.info("maintenance tunnel: stopping autossh (%s)", why)
            signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                signal_group(process.pid, signal.SIGKILL)
                process.wait()
        signal_group(process.pid, signal.SIGKILL)  # an ssh left behind by autossh's own exit

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def signal_group(group: int, number: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, number)
