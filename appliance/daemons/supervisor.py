"""`make run`: every daemon of the appliance in the foreground, as systemd would run them on the box.

Each daemon runs in its own process (and process group) with the same configuration; their lines
are printed as they come. The monitor starts once the others answer (a C-ECHO, an NMQ^N01) and
stops before them, as systemd orders it on the box. Ctrl-C (or SIGTERM) stops them all cleanly, and
so does closing the terminal (SIGHUP with the terminal gone; `kill -HUP` with the terminal still
there reloads the configuration in every daemon); if one exits, the others are stopped too.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial

from appliance import systemd
from appliance.config import Config, ConfigError
from appliance.daemons.runtime import (
    DEVELOPMENT_WARNED_ENVIRONMENT,
    add_location_options,
    announce,
    loader,
    setup_logging,
    warn_if_development,
)
from appliance.monitor import Severity
from appliance.monitor.dicom import echo_finding, hl7_finding, probe_host

DAEMONS = {
    "appliance-dicom": "appliance.daemons.archive",
    "appliance-worker": "appliance.daemons.worker",
    "appliance-worklist": "appliance.daemons.worklist",
    "appliance-hl7": "appliance.daemons.hl7",
    "appliance-web": "appliance.daemons.web",
    # The maintenance tunnel's keeper: idle until the console opens the tunnel (a bastion configured).
    "appliance-tunnel": "appliance.daemons.tunnel",
}
# Started once the others listen, as systemd orders it on the box (After=): its first round would
# otherwise find the archive "not answering" and mail a critical alert at every start.
MONITOR = ("appliance-monitor", "appliance.daemons.monitor")
LISTENING_WAIT_SECONDS = 120
Probe = Callable[[], bool]


def arguments_of(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run every appliance daemon in the foreground.")
    add_location_options(parser)
    return parser.parse_args(argv)


def start(module: str, options: list[str]) -> subprocess.Popen[bytes]:
    """Start one daemon the way its console script would (so its loggers carry module names); the
    supervisor has given the development-mode warning already. Each daemon has its own process
    group: Ctrl-C in the terminal reaches the supervisor alone, which stops them in order."""
    code = f"import sys; from {module} import main; sys.exit(main(sys.argv[1:]))"
    environment = {**os.environ, DEVELOPMENT_WARNED_ENVIRONMENT: "1"}
    return subprocess.Popen([sys.executable, "-c", code, *options], env=environment, process_group=0)


def listeners(config: Config) -> list[Probe]:
    """How to ask each listener whether it answers (port 0 = not listening): the archive and the
    worklist a C-ECHO and the HL7 listener an NMQ^N01, as the health monitor asks them, since a bare
    connection would be logged as a refused one; the console a connection (gunicorn logs none)."""
    archive, worklist, hl7, web = config.dicom, config.worklist, config.hl7, config.web
    found: list[Probe] = []
    if archive.port:
        found.append(partial(echo_answers, archive.ae_title, archive.bind_address, archive.port))
    if worklist.port:
        found.append(partial(echo_answers, worklist.ae_title, worklist.bind_address, worklist.port))
    if hl7.port:
        found.append(partial(hl7_answers, config))
    if web.port:
        found.append(partial(accepts, (probe_host(web.bind_address), web.port)))
    return found


def wait_for_listeners(config: Config, processes: dict[str, subprocess.Popen[bytes]], signals: systemd.Signals) -> bool:
    """Wait until every listener answers; False when stopped, a daemon exited or the wait ran out (the
    monitor then starts anyway and says what does not answer)."""
    deadline = time.monotonic() + LISTENING_WAIT_SECONDS
    waiting = listeners(config)
    while waiting and time.monotonic() < deadline:
        if signals.stopping or any(process.poll() is not None for process in processes.values()):
            return False
        waiting = [probe for probe in waiting if not probe()]
        if waiting:
            signals.wait(0.2)
            forward_reload_if_asked(signals, processes)
    return not signals.stopping


def echo_answers(ae_title: str, bind_address: str, port: int) -> bool:
    """The DICOM listener answers a C-ECHO, even with a refusal (it is listening)."""
    finding = echo_finding("listener", "", ae_title, bind_address, port)
    return finding.severity is not Severity.CRITICAL


def hl7_answers(config: Config) -> bool:
    return hl7_finding(config, datetime.now(UTC)).severity is not Severity.CRITICAL


def accepts(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1):
            return True
    except OSError:
        return False


def terminals() -> list[int]:
    """The standard streams that are a terminal (`make run` typed in one)."""
    return [descriptor for descriptor in (0, 1, 2) if os.isatty(descriptor)]


def hung_up(descriptors: list[int]) -> bool:
    """Whether the terminal on `descriptors` has gone (its window closed, the SSH session ended):
    the kernel then sent SIGHUP, and the descriptors are no longer a terminal."""
    return any(not os.isatty(descriptor) for descriptor in descriptors)


def forward_reload_if_asked(signals: systemd.Signals, processes: dict[str, subprocess.Popen[bytes]]) -> None:
    """SIGHUP to every daemon when the supervisor got one (`kill -HUP`)."""
    if not signals.take_reload():
        return
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGHUP)


def stop_all(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    """The monitor first, then the others together, as systemd orders it on the box (the monitor is
    After= them): a round in flight while the archive stops would report it down and alert."""
    monitor = {name: process for name, process in processes.items() if name == MONITOR[0]}
    others = {name: process for name, process in processes.items() if name != MONITOR[0]}
    for group in (monitor, others):
        for process in group.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in group.values():
            try:
                process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                process.kill()


def print_banner(config: Config) -> None:
    """What runs where, and which files the configuration came from."""
    worklist = config.worklist
    mail = (
        f"alerts mailed through {config.mail.relay_host}:{config.mail.relay_port}"
        if config.mail.enabled
        else ("no mail relay: alerts in the log only")
    )
    maintenance = config.maintenance
    tunnel = f"to {maintenance.bastion_host} when opened from the console" if maintenance.enabled else "no bastion"
    lines = [
        f"appliance ({config.mode} mode), data in {config.storage.data_directory}",
        f"  configuration  {' + console settings '.join(config.layers)}",
        f"  DICOM archive  AE {config.dicom.ae_title} on {config.dicom.bind_address}:{config.dicom.port}",
        f"  worklist       AE {worklist.ae_title} on {worklist.bind_address}:{worklist.port}",
        f"  HL7 listener   MLLP on {config.hl7.bind_address}:{config.hl7.port}",
        f"  console        {console_address(config)}",
        f"  background worker: {', '.join(worker_duties(config))}",
        f"  health monitor: checks every {config.monitor.interval_seconds} s, {mail}",
        f"  maintenance tunnel: {tunnel}",
        "Ctrl-C stops everything; kill -HUP reloads the configuration in every daemon.",
    ]
    announce("\n".join(lines))


def worker_duties(config: Config) -> list[str]:
    """What the background worker does under this configuration (`daemons.worker`), as the
    banner says it: what it always does, and what the configuration turns on."""
    duties = ["DICOMweb metadata", "image availability for the RIS", "dose register", "console jobs",
              "audit trail upkeep"]  # fmt: skip
    if config.lossless.enabled:
        duties.insert(0, "verified lossless compression")
    if config.forward.rules:
        count = len(config.forward.rules)
        duties.append(f"forwarding ({count} rule{'s' if count > 1 else ''})")
    if config.forward.prefetch:
        duties.append("prefetch of priors")
    if config.audit.syslog.enabled:
        duties.append(f"audit copy to {config.audit.syslog.host}")
    if config.tiers.moves_on_schedule:
        duties.append(f"tier move at {config.tiers.move_time}")
    if config.is_development:
        duties.append(f"quality-control report at {config.qc.time}")
    return duties


def console_address(config: Config) -> str:
    """Where a browser reaches the console that `make run` serves (plain HTTP, no nginx)."""
    host = config.web.bind_address
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{config.web.port}/" if ":" in host else f"http://{host}:{config.web.port}/"


def main(argv: Sequence[str] | None = None) -> int:
    arguments = arguments_of(argv)
    try:
        config = loader(arguments)()
    except ConfigError as error:
        announce(str(error), sys.stderr)
        return 2
    options = ["--config", str(arguments.config)] if arguments.config else ["--data", str(arguments.data.absolute())]
    print_banner(config)
    setup_logging(config.logging_level)
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)  # the C-ECHOs while the listeners start
    warn_if_development(config)
    signals = systemd.Signals()  # its handlers take no lock: two Ctrl-C in a row cannot hang it
    signals.install()
    processes = {name: start(module, options) for name, module in DAEMONS.items()}
    terminal = terminals()
    try:
        if wait_for_listeners(config, processes, signals):
            processes[MONITOR[0]] = start(MONITOR[1], options)
        while not signals.stopping:
            signals.wait(0.5)
            if hung_up(terminal):  # the daemons, in process groups of their own, got no SIGHUP
                return 0
            forward_reload_if_asked(signals, processes)
            exited = [name for name, process in processes.items() if process.poll() is not None]
            if exited:
                announce(f"{', '.join(exited)} exited; stopping the others", sys.stderr)
                return 1
        return 0
    finally:
        stop_all(processes)


if __name__ == "__main__":
    raise SystemExit(main())
