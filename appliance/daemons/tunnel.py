"""`appliance-tunnel`: the maintenance tunnel's keeper (appliance.maintenance.keeper). It idles while
the tunnel is closed and runs autossh while an administrator has opened it from the console, until
it is closed or its time is up.

Unlike the other daemons it never opens the index nor the audit trail: on the box it runs as the
tunnel's own account (`appliance-tunnel`), which alone may read the box's SSH key, and reads the
configuration and the state file through the appliance group. Its openings and closings are
audited and mailed by the console, its expiry by the worker. SIGHUP reloads the configuration
(the bastion applies to the next connection); SIGTERM stops autossh and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from appliance import systemd
from appliance.config import ConfigError, Settings
from appliance.daemons.runtime import add_location_options, announce, loader, setup_logging
from appliance.maintenance.keeper import Keeper

LOGGER = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The maintenance tunnel's keeper: autossh while it is open.")
    add_location_options(parser)
    arguments = parser.parse_args(argv)
    try:
        settings = Settings(loader(arguments))
    except ConfigError as error:
        announce(str(error), sys.stderr)
        return 2
    setup_logging(settings.current.logging_level)
    keeper = Keeper(lambda: settings.current)
    signals = systemd.Signals()
    signals.install()
    systemd.notify("READY=1\nSTATUS=maintenance tunnel keeper")
    maintenance = settings.current.maintenance
    where = f"bastion {maintenance.bastion_host}" if maintenance.enabled else "no bastion configured"
    announce(f"maintenance tunnel keeper running ({where})")
    try:
        serve(keeper, settings, signals)
    finally:
        keeper.stop("the keeper stops")
    systemd.notify("STOPPING=1")
    return 0


def serve(keeper: Keeper, settings: Settings, signals: systemd.Signals) -> None:
    """Step the keeper until SIGTERM, reloading the configuration on SIGHUP, pinging the watchdog."""
    while not signals.stopping:
        wait = keeper.step()
        systemd.notify("WATCHDOG=1")
        signals.wait(wait)
        if signals.take_reload():
            try:
                settings.reload()
            except ConfigError as error:
                LOGGER.error("configuration not reloaded, the one in force stays:\n%s", error)
            else:
                LOGGER.info("configuration reloaded")


if __name__ == "__main__":
    raise SystemExit(main())
