"""A serving process of the DICOM archive (`dicom.handoff`): started by `appliance-dicom` with its
own arguments, it runs the associations the daemon's acceptor hands it, with the archive's services
(the same as `archive.archive_handlers`) on the same index and files.

It does not talk to systemd and holds no PID file: the acceptor does. SIGHUP reads the configuration
again; SIGTERM finishes the associations in flight (as the daemon does) and ends; SIGINT is left to
the acceptor (Ctrl-C on `make run` reaches the whole process group). It dies with the acceptor.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence

from appliance import systemd
from appliance.archive import tiers
from appliance.audit.activity import open_trail
from appliance.daemons import runtime as process
from appliance.daemons.archive import APPLICATION, archive_handlers
from appliance.daemons.dicom_server import start_handed_server
from appliance.dicom.contexts import add_archive_contexts
from appliance.dicom.handoff import Reports
from appliance.dicom.peers import AccessPolicy

LOGGER = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with(acceptor: int) -> bool:
    """Have the kernel kill this process when the acceptor's ends; False when it has already ended."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    return os.getppid() == acceptor


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--channel", type=int, required=True)
    parser.add_argument("--acceptor", type=int, required=True)
    ours, rest = parser.parse_known_args(argv)
    if not die_with(ours.acceptor):
        return 1
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel = socket.socket(fileno=ours.channel)
    runtime = process.start(rest, "A serving process of the DICOM archive (started by appliance-dicom).")
    if runtime is None:
        return 2
    reports = Reports(channel)
    trail = open_trail(runtime.config, APPLICATION, announce=False)
    policy = AccessPolicy(runtime.settings, "archive")
    handlers = archive_handlers(runtime, tiers.file_store(runtime.config), trail, reports, policy)
    server = start_handed_server(runtime, "DICOM archive (serving)", add_archive_contexts, handlers, policy, channel)
    signals = systemd.Signals()
    signals.install()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    process.settle_heap()
    reports.ready()
    try:
        while not signals.stopping:
            signals.wait(None)
            if signals.take_reload():
                process.reload(runtime)
                reports.reloaded()
    finally:
        server.stop()
        trail.close()
        runtime.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
