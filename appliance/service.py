"""What every daemon does the same way: arguments, configuration, logging, the index, and a main
loop that pings the watchdog until SIGTERM."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text

from appliance import systemd
from appliance.config import Config, ConfigError, development_config, load_config
from appliance.db import create_index_engine, upgrade_schema

LOGGER = logging.getLogger(__name__)

CONFIG_ENVIRONMENT = "APPLIANCE_CONFIG"
DATA_ENVIRONMENT = "APPLIANCE_DATA"
IDLE_TICK_SECONDS = 5.0


@dataclass(frozen=True)
class Runtime:
    config: Config
    engine: Engine


def parse_arguments(argv: Sequence[str] | None, description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--config",
        type=Path,
        default=os.environ.get(CONFIG_ENVIRONMENT) or None,
        help=f"configuration file (default: ${CONFIG_ENVIRONMENT}, else the development defaults)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get(DATA_ENVIRONMENT, "var")),
        help="data folder of the development defaults (ignored with --config)",
    )
    return parser.parse_args(argv)


def configuration(arguments: argparse.Namespace) -> Config:
    """The configuration file named by --config, else the embedded development defaults."""
    if arguments.config:
        return load_config(arguments.config)
    return development_config(arguments.data.absolute())


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


def start(argv: Sequence[str] | None, description: str) -> Runtime | None:
    """Read arguments and configuration, set up logging, open and migrate the index.

    Returns None (after printing why) when the configuration is unusable.
    """
    arguments = parse_arguments(argv, description)
    try:
        config = configuration(arguments)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return None
    setup_logging(config.logging_level)
    if config.is_development:
        LOGGER.warning(
            "development mode: any AE title from 127.0.0.1 is accepted; data in %s", config.storage.data_directory
        )
    engine = create_index_engine(config.database_url)
    upgrade_schema(engine, config.storage.index_directory)
    return Runtime(config, engine)


def serve_until_stopped(healthy: Callable[[], bool], status: str) -> int:
    """Tell systemd we are ready, ping its watchdog while `healthy()`, return on SIGTERM/SIGINT."""
    stop = systemd.StopSignal()
    stop.install()
    systemd.notify(f"READY=1\nSTATUS={status}")
    interval = systemd.watchdog_interval() or IDLE_TICK_SECONDS
    while not stop.wait(interval):
        if healthy():
            systemd.notify("WATCHDOG=1")
        else:
            LOGGER.error("health check failed; not pinging the watchdog")
    systemd.notify("STOPPING=1")
    LOGGER.info("stopping on signal %s", stop.received)
    return 0


def database_answers(engine: Engine) -> bool:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:  # health check: any failure means unhealthy
        LOGGER.exception("the index does not answer")
        return False
    return True
