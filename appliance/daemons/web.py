"""`appliance-web`: the console (and later DICOMweb and the viewer) served by gunicorn, embedded.

gunicorn's arbiter is this process (the unit's main PID); it forks `web.workers` gthread workers of
`web.threads` threads each, and each worker builds its own Flask application, index engine and audit
recorder after the fork (nothing opened before a fork is shared). On the box nginx sits in front
with TLS and forwards to `web.bind_address:web.port` (127.0.0.1:8080 with `make run`).

- READY (sd_notify) once the index is open and migrated and the socket is bound; gunicorn's arbiter
  sends it itself when NOTIFY_SOCKET is set.
- Watchdog: pinged from the arbiter's main loop (about once a second it reaps and replaces
  workers), so a hung arbiter stops the pings; no ping while no worker is alive. A worker that
  hangs is killed and replaced by the arbiter (`timeout`).
- SIGHUP: the configuration is read again (an invalid file is refused, the one in force stays);
  new workers start with it, the old ones finish their requests and leave. The address and port
  stay those of the start (a restart applies them, as for the other daemons).
- SIGTERM: the socket is closed, in-flight requests get `GRACEFUL_SECONDS` to finish, then the
  process exits 0. SIGINT (Ctrl-C) stops at once.

Access lines carry the peer, method, path, status and time, never the query string (searches put
patient names and birth dates there).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from gunicorn import glogging
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from sqlalchemy import Engine

from appliance import systemd
from appliance.audit.activity import close_trail, open_trail
from appliance.audit.trail import AuditTrail, DiscardingRecorder
from appliance.config import Config, Settings
from appliance.daemons import runtime as process
from appliance.db import create_index_engine
from appliance.web import create_app

LOGGER = logging.getLogger(__name__)
ACCESS = logging.getLogger("appliance.web.access")

# In-flight requests get this long after SIGTERM or SIGHUP (below the unit's TimeoutStopSec=90s
# and its WatchdogSec=60s: the arbiter's loop waits for them during a reload).
GRACEFUL_SECONDS = 45
# A worker that stops reporting to the arbiter for this long is killed and replaced.
WORKER_TIMEOUT_SECONDS = 60
KEEPALIVE_SECONDS = 5
# Who may set X-Forwarded-For and X-Forwarded-Proto: nginx, on the same box.
PROXIES = "127.0.0.1,::1"

APPLICATION = "appliance-web"


class Watchdog:
    """systemd's watchdog, pinged at half `WatchdogSec` from the arbiter's main loop while healthy."""

    def __init__(self, interval: float | None) -> None:
        self.interval = interval
        self.last = time.monotonic()

    def tick(self, healthy: bool) -> None:
        if self.interval is None or time.monotonic() - self.last < self.interval:
            return
        self.last = time.monotonic()
        if healthy:
            systemd.notify("WATCHDOG=1")
        else:
            LOGGER.error("no console worker is running; not pinging the watchdog")

    def ping(self) -> None:
        """Ping now (before the arbiter blocks for a while, waiting for old workers on a reload)."""
        if self.interval is not None:
            self.last = time.monotonic()
            systemd.notify("WATCHDOG=1")


class ConsoleArbiter(Arbiter):  # type: ignore[misc]
    """gunicorn's arbiter, with the watchdog in its main loop and systemd told of reloads and stops."""

    def __init__(self, application: ConsoleServer) -> None:
        super().__init__(application)
        self.watchdog = Watchdog(systemd.watchdog_interval())

    def manage_workers(self) -> None:
        super().manage_workers()
        self.watchdog.tick(healthy=bool(self.WORKERS))

    def reload(self) -> None:
        systemd.notify("RELOADING=1")
        self.watchdog.ping()
        super().reload()
        systemd.notify("READY=1")

    def halt(self, reason: str | None = None, exit_status: int = 0) -> None:
        systemd.notify("STOPPING=1")
        LOGGER.info("stopping: closing the socket, letting the requests in flight finish")
        super().halt(reason, exit_status)


class JournalLogger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's own lines through the appliance's logging (one format in the journal), and one
    access line per request without its query string."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in list(log.handlers):
                log.removeHandler(handler)
            log.propagate = True
        self._access_log_enabled = True

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: timedelta) -> None:
        status = str(resp.status).split(None, 1)[0]
        milliseconds = request_time / timedelta(milliseconds=1)
        method, path = environ.get("REQUEST_METHOD", "-"), environ.get("PATH_INFO", "-")
        ACCESS.info("%s %s %s %s %.0f ms", peer_of(environ), method, path, status, milliseconds)


def peer_of(environ: dict[str, Any]) -> str:
    """The client: the address nginx forwarded for when the request came through it."""
    remote = str(environ.get("REMOTE_ADDR", "-"))
    forwarded = str(environ.get("HTTP_X_FORWARDED_FOR", ""))
    if forwarded and remote in PROXIES.split(","):
        return forwarded.split(",")[-1].strip()
    return remote


class ConsoleServer(BaseApplication):  # type: ignore[misc]
    """gunicorn embedded: options from the configuration, one Flask application per worker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.address = bind_address(settings.current)
        self.engine: Engine | None = None
        self.trail: AuditTrail | DiscardingRecorder | None = None
        self.pid_path: Path | None = None  # <data>/run/appliance-web.pid: the settings pages send SIGHUP
        super().__init__(prog="appliance-web")

    def load_config(self) -> None:
        """gunicorn's settings from the configuration in force (at start and on each SIGHUP)."""
        options = {
            **gunicorn_options(self.settings.current),
            "bind": [self.address],
            "when_ready": announce,
            "worker_exit": self.worker_exit,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def reload(self) -> None:
        """SIGHUP, in the arbiter: read the configuration again, then gunicorn starts new workers."""
        reloaded = process.reload_configuration(self.settings)
        if reloaded and self.pid_path is not None:
            # Said before gunicorn waits for the old workers to leave: one of them may be the page
            # that asked for this reload, waiting for this answer.
            systemd.mark_reloaded(self.pid_path)
        super().reload()

    def load(self) -> Any:
        """In each worker, after the fork: its own index engine, audit recorder and application,
        then what it built left out of the collector's full passes (`settle_heap`: one would stall
        every request of the worker meanwhile, a DICOMweb frame or a viewer's series)."""
        config = self.settings.current
        self.engine = create_index_engine(config.database_url)
        self.trail = open_trail(config, APPLICATION)
        application = create_app(self.settings, self.engine, self.trail)
        process.settle_heap()
        return application

    def worker_exit(self, _arbiter: Any, _worker: Any) -> None:
        """A worker leaving: the audit events it still holds are written, its index closed."""
        if self.trail is not None:
            close_trail(self.trail, APPLICATION)
        if self.engine is not None:
            self.engine.dispose()

    def run(self) -> None:
        ConsoleArbiter(self).run()


def bind_address(config: Config) -> str:
    host = config.web.bind_address
    return f"[{host}]:{config.web.port}" if ":" in host else f"{host}:{config.web.port}"


def gunicorn_options(config: Config) -> dict[str, object]:
    web = config.web
    return {
        "worker_class": "gthread",
        "workers": web.workers,
        "threads": web.threads,
        "graceful_timeout": GRACEFUL_SECONDS,
        "timeout": WORKER_TIMEOUT_SECONDS,
        "keepalive": KEEPALIVE_SECONDS,
        "forwarded_allow_ips": PROXIES,
        "logger_class": JournalLogger,
        "loglevel": config.logging_level.lower(),
        "control_socket_disable": True,
        "proc_name": "appliance-web",
    }


def announce(arbiter: Any) -> None:
    """Once the socket is bound (gunicorn has sent READY=1): say where, as the other daemons do."""
    host, port = arbiter.LISTENERS[0].sock.getsockname()[:2]
    systemd.notify(f"STATUS=console on {host}:{port}")
    process.announce(f"console listening on {host}:{port}")


def main(argv: Sequence[str] | None = None) -> int:
    runtime = process.start(argv, "The web console (gunicorn), behind nginx on the box.")
    if runtime is None:
        return 2
    runtime.engine.dispose()  # the index is migrated; each worker opens its own after the fork
    server = ConsoleServer(runtime.settings)
    with process.daemon_lock(runtime.config), process.pid_file(runtime.config, APPLICATION) as pid_path:
        server.pid_path = pid_path
        try:
            server.run()
        except SystemExit as stop:
            return stop.code if isinstance(stop.code, int) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
