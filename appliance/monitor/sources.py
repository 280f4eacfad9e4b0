"""What every source of the monitor looks like, and the list of them.

A source is a function `check(context) -> Reading`: it reads one kind of thing (the RAID arrays, the
disks' SMART data, the UPS, ...) and says what it saw as findings, one per subject, OK included so
that a recovery is noticed. A source that does not exist on this box (no RAID under `make run`, no
UPS configured) returns one ABSENT finding rather than failing; a source that fails unexpectedly is
caught by `run_source` and becomes a WARNING finding about the monitor itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from appliance.config import Config
from appliance.monitor.findings import Finding, Reading, Severity

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Context:
    config: Config
    engine: Engine
    now: datetime


Check = Callable[[Context], Reading]


def absent(source: str, message: str, detail: str = "") -> Reading:
    """The reading of a source that does not exist on this box."""
    return Reading([Finding(source, source, Severity.ABSENT, message, detail)])


def run_source(name: str, check: Check, context: Context) -> Reading:
    """`check`'s reading, or a WARNING finding saying the check itself failed (logged with its trace)."""
    try:
        return check(context)
    except Exception as error:  # one broken source must not stop the others
        log.exception("health check %s failed", name)
        message = "La surveillance de cet élément ne fonctionne pas ; le prestataire doit regarder."
        return Reading([Finding(name, name, Severity.WARNING, message, f"{type(error).__name__}: {error}")])
