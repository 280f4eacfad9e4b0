"""The findings as the monitor last saw them, their changes of state, and the measures the plots
draw, kept in the index (tables `health_state`, `health_change`, `health_measure`).

`appliance-monitor` is the only writer: each round, `record` compares a source's reading with what
was stored and returns the changes (what the alert mails are about). The console, `appliance health`
and the quality-control report read with `current`, `changes` and `measures`, never running a check.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from appliance.db import as_utc
from appliance.db.schema import health_change, health_measure, health_state
from appliance.monitor.findings import Finding, Measure, Reading, Severity

BACK_TO_NORMAL = "Revenu à la normale."


@dataclass(frozen=True)
class State:
    """A subject's current state: severity, sentence and detail of its last finding."""

    source: str
    subject: str
    severity: Severity
    message: str
    detail: str
    since: datetime
    checked_at: datetime


@dataclass(frozen=True)
class Change:
    """A subject went from `previous` (None: first seen) to `severity` at `at`."""

    id: int
    at: datetime
    source: str
    subject: str
    previous: Severity | None
    severity: Severity
    message: str
    detail: str
    alerted_at: datetime | None

    @property
    def is_recovery(self) -> bool:
        return self.previous is not None and self.previous.is_problem and not self.severity.is_problem


def record(engine: Engine, source: str, reading: Reading, now: datetime) -> list[Change]:
    """Store `reading` as `source`'s current state and return the changes of severity it makes, a
    subject no longer reported counting as back to normal."""
    with engine.begin() as connection:
        stored = {state.subject: state for state in states_of(connection, source)}
        changes = [
            change
            for finding in reading.findings
            if (change := store_finding(connection, stored.get(finding.subject), finding, now)) is not None
        ]
        reported = {finding.subject for finding in reading.findings}
        for subject, state in stored.items():
            if subject not in reported:
                changes.extend(forget(connection, state, now))
        add_measures_in(connection, reading.measures, now)
    return changes


def store_finding(connection: Connection, state: State | None, finding: Finding, now: datetime) -> Change | None:
    values = {
        "severity": finding.severity.value,
        "message": finding.message,
        "detail": finding.detail,
        "checked_at": now,
    }
    key = (health_state.c.source == finding.source) & (health_state.c.subject == finding.subject)
    if state is not None and state.severity is finding.severity:
        connection.execute(update(health_state).where(key).values(values))
        return None
    since = finding.since or now
    if state is None:
        connection.execute(
            insert(health_state).values(source=finding.source, subject=finding.subject, since=since, **values)
        )
    else:
        connection.execute(update(health_state).where(key).values(since=since, **values))
    previous = state.severity if state is not None else None
    return add_change(
        connection, finding.source, finding.subject, previous, finding.severity, finding.message, finding.detail, now
    )


def forget(connection: Connection, state: State, now: datetime) -> list[Change]:
    """A subject its source no longer reports: gone, or back to normal (a change when it was a problem)."""
    key = (health_state.c.source == state.source) & (health_state.c.subject == state.subject)
    connection.execute(delete(health_state).where(key))
    if not state.severity.is_problem:
        return []
    return [add_change(connection, state.source, state.subject, state.severity, Severity.OK, BACK_TO_NORMAL, "", now)]


def add_change(
    connection: Connection,
    source: str,
    subject: str,
    previous: Severity | None,
    severity: Severity,
    message: str,
    detail: str,
    now: datetime,
) -> Change:
    values = {
        "at": now,
        "source": source,
        "subject": subject,
        "previous": previous.value if previous else "",
        "severity": severity.value,
        "message": message,
        "detail": detail,
    }
    identifier = connection.execute(insert(health_change).values(values).returning(health_change.c.id)).scalar_one()
    return Change(identifier, now, source, subject, previous, severity, message, detail, None)


def states_of(connection: Connection, source: str | None = None) -> list[State]:
    query = select(health_state).order_by(health_state.c.source, health_state.c.subject)
    if source is not None:
        query = query.where(health_state.c.source == source)
    return [
        State(
            row.source,
            row.subject,
            Severity(row.severity),
            row.message,
            row.detail,
            as_utc(row.since),
            as_utc(row.checked_at),
        )
        for row in connection.execute(query)
    ]


def current(engine: Engine, source: str | None = None) -> list[State]:
    """Every subject's current state (of one source when given), by source then subject."""
    with engine.connect() as connection:
        return states_of(connection, source)


def changes(engine: Engine, since: datetime | None = None, source: str | None = None, limit: int = 200) -> list[Change]:
    """Changes of state, newest first."""
    query = select(health_change).order_by(health_change.c.id.desc()).limit(limit)
    if since is not None:
        query = query.where(health_change.c.at >= since)
    if source is not None:
        query = query.where(health_change.c.source == source)
    with engine.connect() as connection:
        return [change_from(row) for row in connection.execute(query)]


def appeared_at(engine: Engine, source: str, subject: str) -> datetime | None:
    """When the monitor last began reporting `subject` (its first change, or its first after it was
    no longer reported); None when it never did."""
    query = select(func.max(health_change.c.at)).where(
        health_change.c.source == source, health_change.c.subject == subject, health_change.c.previous == ""
    )
    with engine.connect() as connection:
        moment: datetime | None = connection.scalar(query)
    return as_utc(moment)


def unalerted(engine: Engine) -> list[Change]:
    """Changes no mail has told about yet, oldest first."""
    query = select(health_change).where(health_change.c.alerted_at.is_(None)).order_by(health_change.c.id)
    with engine.connect() as connection:
        return [change_from(row) for row in connection.execute(query)]


def mark_alerted(engine: Engine, identifiers: Iterable[int], now: datetime) -> None:
    chosen = list(identifiers)
    if not chosen:
        return
    with engine.begin() as connection:
        connection.execute(update(health_change).where(health_change.c.id.in_(chosen)).values(alerted_at=now))


def change_from(row: object) -> Change:
    values = row._mapping  # type: ignore[attr-defined]
    return Change(
        values["id"],
        as_utc(values["at"]),
        values["source"],
        values["subject"],
        Severity(values["previous"]) if values["previous"] else None,
        Severity(values["severity"]),
        values["message"],
        values["detail"],
        as_utc(values["alerted_at"]),
    )


def add_measures(engine: Engine, measures: Iterable[Measure], now: datetime) -> None:
    with engine.begin() as connection:
        add_measures_in(connection, measures, now)


def add_measures_in(connection: Connection, measures: Iterable[Measure], now: datetime) -> None:
    rows = [{"name": measure.name, "at": now, "value": measure.value} for measure in measures]
    if rows:
        connection.execute(insert(health_measure), rows)


def measures(engine: Engine, name: str, since: datetime) -> list[tuple[datetime, float]]:
    """The values of `name` since `since`, oldest first."""
    query = (
        select(health_measure.c.at, health_measure.c.value)
        .where((health_measure.c.name == name) & (health_measure.c.at >= since))
        .order_by(health_measure.c.at)
    )
    with engine.connect() as connection:
        return [(as_utc(at), value) for at, value in connection.execute(query)]


def prune_measures(engine: Engine, before: datetime) -> int:
    """Drop measures older than `before` (the plots look back 90 days); returns how many."""
    with engine.begin() as connection:
        result = connection.execute(delete(health_measure).where(health_measure.c.at < before))
    return result.rowcount
