"""What every process does the same way: one `--config` / `--data` parser (daemons and the CLI),
the configuration, logging, the index, and the main loop of a daemon (sd_notify READY, watchdog
pings, SIGHUP reloads the configuration, SIGTERM stops).

While a daemon runs it holds a shared lock on `<data>/index/daemons.lock`, so that maintenance that
needs the index to itself (`appliance archive reindex`) can tell and refuse.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from sqlalchemy import Engine, text

from appliance import practice_time, systemd
from appliance.config import Config, ConfigError, Settings, development_config, load_config
from appliance.db import create_index_engine, upgrade_schema

LOGGER = logging.getLogger(__name__)

CONFIG_ENVIRONMENT = "APPLIANCE_CONFIG"
DATA_ENVIRONMENT = "APPLIANCE_DATA"
# Set by the supervisor (`make run`) for its daemons once it has given the development-mode warning,
# so that one start of the appliance gives it once, not once per daemon.
DEVELOPMENT_WARNED_ENVIRONMENT = "APPLIANCE_DEVELOPMENT_WARNED"
DEFAULT_DATA = "var"
IDLE_TICK_SECONDS = 5.0
DAEMONS_LOCK = "daemons.lock"


class IndexBusy(Exception):
    """The daemons hold the index; the message says what to stop."""


@dataclass
class Runtime:
    """A process's configuration (reloadable) and its index."""

    settings: Settings
    engine: Engine
    reloaded: list[Callable[[Config], None]] = field(default_factory=list)

    @property
    def config(self) -> Config:
        return self.settings.current


def add_location_options(parser: argparse.ArgumentParser) -> None:
    """`--config FILE` (the box) or `--data FOLDER` (development defaults), for daemons and CLI alike."""
    parser.add_argument(
        "--config",
        type=Path,
        default=os.environ.get(CONFIG_ENVIRONMENT) or None,
        help=f"configuration file (default: ${CONFIG_ENVIRONMENT}, else the development defaults)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get(DATA_ENVIRONMENT) or DEFAULT_DATA),
        help=f"data folder of the development defaults (default: ${DATA_ENVIRONMENT}, else ./{DEFAULT_DATA});"
        " ignored with --config",
    )


def loader(arguments: argparse.Namespace) -> Callable[[], Config]:
    """How to (re)read the configuration: the file named by --config, else the development defaults.
    Each reading puts the practice's time zone in force in this process."""
    if arguments.config:
        path: Path = arguments.config
        return lambda: in_force(load_config(path))
    data: Path = arguments.data.absolute()
    return lambda: in_force(development_config(data))


def in_force(config: Config) -> Config:
    """`config`, its practice's time zone put in force (`practice_time.use`)."""
    practice_time.use(config.time_zone)
    return config


def setup_logging(level: str) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, level),
        format="%(levelname)s %(name)s: %(message)s"
        if os.environ.get("JOURNAL_STREAM")
        else "%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # the index's own line says what was upgraded


def open_index(config: Config) -> Engine:
    """The index engine, its schema brought up to date (several processes take turns)."""
    engine = create_index_engine(config.database_url)
    upgrade_schema(engine, config.storage.index_directory)
    return engine


def announce(line: str, stream: IO[str] | None = None) -> None:
    """Print `line` to standard output (or `stream`) in one write, flushed.

    The daemons of `make run` share one output: `print` makes two writes (the text, then the end of
    line) when Python's output is unbuffered (PYTHONUNBUFFERED, as in CI), so two daemons starting
    together could join their lines ("...:38247HL7 listener listening on ...")."""
    output = stream or sys.stdout
    output.write(f"{line}\n")
    output.flush()


def start(argv: Sequence[str] | None, description: str) -> Runtime | None:
    """Read arguments and configuration, set up logging, open and migrate the index.

    Returns None (after printing why) when the configuration is unusable.
    """
    parser = argparse.ArgumentParser(description=description)
    add_location_options(parser)
    arguments = parser.parse_args(argv)
    try:
        settings = Settings(loader(arguments))
    except ConfigError as error:
        announce(str(error), sys.stderr)
        return None
    config = settings.current
    setup_logging(config.logging_level)
    if not os.environ.get(DEVELOPMENT_WARNED_ENVIRONMENT):
        warn_if_development(config)
    return Runtime(settings, open_index(config))


def warn_if_development(config: Config) -> None:
    """The one warning of development mode (once per start: the supervisor gives it for its daemons)."""
    if config.is_development:
        LOGGER.warning(
            "development mode: any AE title from 127.0.0.1 is accepted; data in %s", config.storage.data_directory
        )


@contextlib.contextmanager
def daemon_lock(config: Config) -> Iterator[None]:
    """Held (shared) while a daemon runs: `index_to_myself` then knows the daemons are up."""
    config.storage.index_directory.mkdir(parents=True, exist_ok=True)
    with open(config.storage.index_directory / DAEMONS_LOCK, "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_SH)
        yield


@contextlib.contextmanager
def index_to_myself(config: Config) -> Iterator[None]:
    """Hold the daemons' lock exclusively; raises IndexBusy while a daemon runs on this data folder."""
    config.storage.index_directory.mkdir(parents=True, exist_ok=True)
    lock_file: IO[str]
    with open(config.storage.index_directory / DAEMONS_LOCK, "a") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexBusy(
                f"the appliance's daemons are using {config.storage.data_directory}: stop them first "
                "(systemctl stop 'appliance-*', or Ctrl-C on make run)"
            ) from None
        yield


def settle_heap() -> None:
    """Leave what start-up built (modules, pydicom's dictionaries, the index's metadata, the
    services) out of the garbage collector's full passes from now on (`gc.freeze`). Each full pass
    used to walk all of it: 50 to 60 ms in a serving process of the archive, the GIL held, every
    association of the process stalled meanwhile (a retrieve's first image waited 70 to 90 ms
    instead of 20). Called once a process is ready to serve; what it builds later is collected as
    before."""
    gc.collect()
    gc.freeze()


def serve(
    runtime: Runtime,
    healthy: Callable[[], bool],
    status: str,
    name: str = "",
    actions: Mapping[int, Callable[[], None]] | None = None,
    announcement: str = "",
) -> int:
    """Tell systemd we are ready, ping its watchdog while `healthy()`, reload on SIGHUP, run the
    action of any signal in `actions`, return on SIGTERM/SIGINT. While it serves, the daemon's PID
    file (`name`, by default the program's name) lets the console ask it to reload.

    `announcement` ("... listening on host:port") is printed once the heap is settled, with READY:
    printed before, it sent clients in while `settle_heap` held the interpreter (an
    `echoscu` right after it took 74 ms instead of 24)."""
    signals = systemd.Signals()
    signals.install(actions)
    settle_heap()
    systemd.notify(f"READY=1\nSTATUS={status}")
    if announcement:
        announce(announcement)
    interval = systemd.watchdog_interval() or IDLE_TICK_SECONDS
    with daemon_lock(runtime.config), pid_file(runtime.config, name or program_name()) as path:
        while True:
            signals.wait(interval)
            if signals.stopping:
                break
            if signals.take_reload():
                in_force = runtime.settings.current
                reload(runtime)
                if path is not None and runtime.settings.current is not in_force:
                    systemd.mark_reloaded(path)
            if healthy():
                systemd.notify("WATCHDOG=1")
            else:
                LOGGER.error("health check failed; not pinging the watchdog")
    systemd.notify("STOPPING=1")
    assert signals.received is not None  # the loop above ends on a stop signal only
    LOGGER.info("%s: stopping on %s", status, signal.Signals(signals.received).name)
    return 0


def program_name() -> str:
    """`appliance-dicom` for the console script of that name ('' when run otherwise: `python -c`)."""
    name = Path(sys.argv[0]).name
    return name if name.startswith("appliance-") else ""


@contextlib.contextmanager
def pid_file(config: Config, name: str) -> Iterator[Path | None]:
    """`<data>/run/<name>.pid` while the block runs (nothing when `name` is empty or the folder
    cannot be written: the daemon then only reloads on `systemctl reload`)."""
    if not name:
        yield None
        return
    try:
        path: Path | None = systemd.write_pid_file(config.storage.run_directory, name)
    except OSError as error:
        LOGGER.warning(
            "no PID file in %s (the console cannot ask for reloads): %s", config.storage.run_directory, error
        )
        path = None
    try:
        yield path
    finally:
        if path is not None:
            systemd.remove_pid_file(path)


def reload(runtime: Runtime) -> None:
    """Put the configuration file's current content in force (SIGHUP); keep the old one if invalid."""
    systemd.notify("RELOADING=1")
    if reload_configuration(runtime.settings):
        for listener in runtime.reloaded:
            listener(runtime.config)
    systemd.notify("READY=1")


def reload_configuration(settings: Settings) -> bool:
    """Read the configuration again and put it in force, logging what happened; False (the one in
    force stays) when it is invalid."""
    try:
        ignored = settings.reload()
    except ConfigError as error:
        LOGGER.error("configuration not reloaded, the one in force stays:\n%s", error)
        return False
    LOGGER.info("configuration reloaded from %s", " + ".join(settings.current.layers))
    if ignored:
        LOGGER.warning("changed, but applied only at the next restart: %s", ", ".join(ignored))
    return True


def database_answers(engine: Engine) -> bool:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:  # health check: any failure means unhealthy
        LOGGER.exception("the index does not answer")
        return False
    return True
