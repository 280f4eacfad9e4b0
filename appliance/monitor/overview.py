"""The box's health at a glance, read from the stored findings (never by running a check): one entry
per source in the order the dashboard and `appliance health` show them, each with its worst
finding, and whether the monitor itself still writes.

The monitor updates every subject's `checked_at` at each round; when the newest of them is older
than a few rounds, `appliance-monitor` is down or stuck, and what is shown is only the last known
state.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from appliance.monitor.findings import Severity
from appliance.monitor.store import State

# The tiles, in their order: storage, RAID, disks, UPS, services, DICOM/worklist/HL7, clock,
# certificate, last backup, last quality-control report.
SOURCES = ("disk", "raid", "smart", "ups", "services", "dicom", "time", "certificate", "backup", "qc")
SHOWN_WHEN_RECORDED = ("events",)  # what the system tools' hooks reported: a tile only once they did
ELSEWHERE = ("outbox",)  # the home page's "messages" tile shows it (a detail page all the same)
KNOWN = frozenset(SOURCES) | frozenset(SHOWN_WHEN_RECORDED) | frozenset(ELSEWHERE)
STALE_AFTER_ROUNDS = 5
STALE_AT_LEAST = timedelta(minutes=3)


@dataclass(frozen=True)
class SourceHealth:
    """One source as a tile: the worst of its subjects' states (ABSENT and no `worst` when the
    monitor recorded nothing about it)."""

    source: str
    states: tuple[State, ...]

    @property
    def worst(self) -> State | None:
        """The most serious state; of equal ones, the oldest (the longest-standing problem)."""
        ranked = sorted(self.states, key=lambda state: (-state.severity.rank, state.since))
        return ranked[0] if ranked else None

    @property
    def severity(self) -> Severity:
        worst = self.worst
        return worst.severity if worst is not None else Severity.ABSENT

    @property
    def recorded(self) -> bool:
        return bool(self.states)


@dataclass(frozen=True)
class MonitorHealth:
    """Whether `appliance-monitor` still writes: `last_checked` is the newest `checked_at` (None when
    it never wrote), `stale` when that is older than a few rounds."""

    last_checked: datetime | None
    stale: bool
    stale_after: timedelta


@dataclass(frozen=True)
class Overview:
    sources: tuple[SourceHealth, ...]
    monitor: MonitorHealth

    @property
    def severity(self) -> Severity:
        """The worst of the tiles, a silent monitor counting as a warning."""
        found = [source.severity for source in self.sources]
        if self.monitor.stale:
            found.append(Severity.WARNING)
        return max(found, key=lambda severity: severity.rank, default=Severity.ABSENT)


def stale_after(interval_seconds: int) -> timedelta:
    """How old the newest check may be before the monitor counts as down."""
    return max(timedelta(seconds=interval_seconds * STALE_AFTER_ROUNDS), STALE_AT_LEAST)


def overview(states: Iterable[State], now: datetime, interval_seconds: int) -> Overview:
    """The tiles from `states` (store.current), as of `now`, the monitor running every `interval_seconds`."""
    every = list(states)
    by_source: dict[str, list[State]] = {}
    for state in every:
        by_source.setdefault(state.source, []).append(state)
    shown = [*SOURCES, *(source for source in SHOWN_WHEN_RECORDED if source in by_source)]
    shown += sorted(source for source in by_source if source not in KNOWN)
    sources = tuple(SourceHealth(source, tuple(by_source.get(source, ()))) for source in shown)
    return Overview(sources, monitor_health(every, now, interval_seconds))


def monitor_health(states: list[State], now: datetime, interval_seconds: int) -> MonitorHealth:
    limit = stale_after(interval_seconds)
    last = max((state.checked_at for state in states), default=None)
    return MonitorHealth(last, last is None or now - last > limit, limit)


def source_health(states: Iterable[State], source: str) -> SourceHealth:
    """One source's states as a tile (its detail page)."""
    return SourceHealth(source, tuple(state for state in states if state.source == source))
