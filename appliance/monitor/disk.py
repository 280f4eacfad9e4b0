"""Free space (psutil) of the data file system (`storage.data_directory`) and of the system one (/),
and a forecast of the days left before the data file system is full, from the ingest rate of the
last four weeks read from the index (sum of the stored sizes of the instances received then).

Findings: `data` and `system` (free below `free_space_warning_percent` WARNING, below
`free_space_critical_percent` CRITICAL), `forecast` (days left below `days_left_warning` WARNING,
below half of it CRITICAL; OK without enough ingest to say). Measures: `disk.data.used_bytes`,
`disk.data.free_bytes`, `disk.data.total_bytes`, `disk.system.free_bytes`, and with a forecast
`disk.data.ingest_bytes_per_day` and `disk.data.days_left` (the dashboard draws use and forecast).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import psutil
from sqlalchemy import Engine, func, select

from appliance.config import MonitorConfig
from appliance.db import as_utc
from appliance.db.schema import instance
from appliance.monitor.findings import Finding, Measure, Reading, Severity
from appliance.monitor.sources import Context

SOURCE = "disk"
SYSTEM = Path("/")
INGEST_WINDOW = timedelta(days=28)
SHORTEST_SPAN = timedelta(days=1)  # a box a few hours old does not extrapolate one morning's images
GIGABYTE = 1000**3


@dataclass(frozen=True)
class Space:
    path: Path
    total_bytes: int
    used_bytes: int
    free_bytes: int

    @property
    def free_percent(self) -> float:
        return 100 * self.free_bytes / self.total_bytes if self.total_bytes else 0.0


@dataclass(frozen=True)
class Ingest:
    """Bytes stored per day over the last weeks (`days` observed, at most 28)."""

    bytes_per_day: float
    days: float


def read(context: Context) -> Reading:
    """The data and system file systems' space and the data one's forecast."""
    monitor = context.config.monitor
    data, system = space(context.config.storage.data_directory), space(SYSTEM)
    ingest = ingest_rate(context.engine, context.now)
    findings = [
        space_finding("data", "le disque des images", data, monitor),
        space_finding("system", "le disque du système", system, monitor),
        forecast_finding(data, ingest, monitor),
    ]
    measures = [
        Measure("disk.data.used_bytes", data.used_bytes),
        Measure("disk.data.free_bytes", data.free_bytes),
        Measure("disk.data.total_bytes", data.total_bytes),
        Measure("disk.system.free_bytes", system.free_bytes),
    ]
    if ingest.bytes_per_day > 0:
        measures.append(Measure("disk.data.ingest_bytes_per_day", ingest.bytes_per_day))
        measures.append(Measure("disk.data.days_left", days_left(data, ingest)))
    return Reading(findings, measures)


def space(path: Path) -> Space:
    """psutil's view of the file system holding `path` (its nearest existing parent when it is not
    made yet). `free` is what an unprivileged writer gets (root's reserved blocks left out)."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    usage = psutil.disk_usage(str(existing))
    return Space(path, usage.total, usage.used, usage.free)


def space_finding(subject: str, words: str, found: Space, monitor: MonitorConfig) -> Finding:
    detail = (
        f"{found.path}: {found.free_bytes / GIGABYTE:.1f} GB free of {found.total_bytes / GIGABYTE:.1f} GB "
        f"({found.free_percent:.1f} %; warning below {monitor.free_space_warning_percent} %, "
        f"critical below {monitor.free_space_critical_percent} %)"
    )
    free = f"{gigabytes(found.free_bytes)} libres ({found.free_percent:.0f} %)"
    if found.free_percent < monitor.free_space_critical_percent:
        message = f"Il ne reste presque plus de place sur {words} : {free}. Le prestataire doit agir aujourd'hui."
        return Finding(SOURCE, subject, Severity.CRITICAL, message, detail)
    if found.free_percent < monitor.free_space_warning_percent:
        message = f"La place diminue sur {words} : {free}. Prévenir le prestataire."
        return Finding(SOURCE, subject, Severity.WARNING, message, detail)
    return Finding(SOURCE, subject, Severity.OK, f"Place suffisante sur {words} : {free}.", detail)


def ingest_rate(engine: Engine, now: datetime) -> Ingest:
    """The stored bytes of the instances received over the last 28 days, per day; over the days the
    box has been receiving when that is shorter (at least one)."""
    start = now - INGEST_WINDOW
    total = select(func.coalesce(func.sum(instance.c.size_bytes), 0)).where(instance.c.received_at >= start)
    with engine.connect() as connection:
        received = int(connection.execute(total).scalar_one())
        first = connection.execute(select(func.min(instance.c.received_at))).scalar_one()
    if first is None:
        return Ingest(0.0, 0.0)
    span = max(now - max(start, as_utc(first)), SHORTEST_SPAN)
    days = span / timedelta(days=1)
    return Ingest(received / days, days)


def days_left(data: Space, ingest: Ingest) -> float:
    return data.free_bytes / ingest.bytes_per_day


def forecast_finding(data: Space, ingest: Ingest, monitor: MonitorConfig) -> Finding:
    rate = f"{ingest.bytes_per_day / GIGABYTE:.2f} GB/day over {ingest.days:.1f} days"
    if ingest.bytes_per_day <= 0:
        message = "Pas assez d'images reçues ces dernières semaines pour prévoir le remplissage du disque."
        return Finding(SOURCE, "forecast", Severity.OK, message, "no instance received in the last 28 days")
    left = days_left(data, ingest)
    detail = f"{left:.0f} days left at {rate} (warning below {monitor.days_left_warning} days, critical below half)"
    if left < monitor.days_left_warning / 2:
        message = (
            f"Au rythme actuel, le disque des images sera plein dans environ {left:.0f} jours : "
            "prévenir le prestataire aujourd'hui."
        )
        return Finding(SOURCE, "forecast", Severity.CRITICAL, message, detail)
    if left < monitor.days_left_warning:
        message = (
            f"Au rythme actuel, le disque des images sera plein dans environ {left:.0f} jours : prévoir plus de place."
        )
        return Finding(SOURCE, "forecast", Severity.WARNING, message, detail)
    message = f"Au rythme actuel, le disque des images tiendra encore {duration(left)}."
    return Finding(SOURCE, "forecast", Severity.OK, message, detail)


def duration(days: float) -> str:
    """ "environ 3 ans", "environ 8 mois", "environ 45 jours"."""
    if days >= 730:
        return f"environ {days / 365:.0f} ans"
    if days >= 60:
        return f"environ {days / 30.4:.0f} mois"
    return f"environ {days:.0f} jours"


def gigabytes(size: int) -> str:
    """French: "812 Go", "3,4 Go", "0,2 Go"."""
    value = size / GIGABYTE
    return f"{value:.0f} Go" if value >= 100 else f"{value:.1f} Go".replace(".", ",")
