"""The measures as the dashboard's plots want them: a long series thinned to one value per moment
asked for (the monitor may write a measure every minute for 90 days: 130,000 values that no page
should read), the latest value of a measure, and the UPS's last outage with its charge.

Each lookup uses the index on (name, at), so reading a plot costs a few dozen small queries whatever
the history holds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, select

from appliance.db import as_utc
from appliance.db.schema import health_measure
from appliance.monitor import store
from appliance.monitor.store import Change

UPS_SOURCE = "ups"
OUTAGE_MARGIN = timedelta(minutes=10)  # shown before and after the outage
OUTAGE_CHANGES = 500  # how far back the UPS's changes are searched


@dataclass(frozen=True)
class Outage:
    """The UPS `subject` went on battery (or worse) at `started`, back to normal at `ended` (None: not
    yet); `charge` is its battery charge (%) from a little before to a little after."""

    subject: str
    started: datetime
    ended: datetime | None
    charge: list[tuple[datetime, float]]


def latest(engine: Engine, name: str) -> tuple[datetime, float] | None:
    """The newest value of measure `name`, with when it was taken; None when never measured."""
    with engine.connect() as connection:
        return value_at(connection, name, None)


def sampled(engine: Engine, name: str, moments: Sequence[datetime], reach: timedelta) -> list[tuple[datetime, float]]:
    """For each of `moments`, the last value of `name` taken at or before it and at most `reach`
    earlier, paired with when it was taken; moments without such a value are left out."""
    found: list[tuple[datetime, float]] = []
    with engine.connect() as connection:
        for moment in moments:
            value = value_at(connection, name, moment)
            if value is not None and moment - value[0] <= reach and (not found or found[-1][0] != value[0]):
                found.append(value)
    return found


def value_at(connection: Connection, name: str, moment: datetime | None) -> tuple[datetime, float] | None:
    query = select(health_measure.c.at, health_measure.c.value).where(health_measure.c.name == name)
    if moment is not None:
        query = query.where(health_measure.c.at <= moment)
    row = connection.execute(query.order_by(health_measure.c.at.desc()).limit(1)).first()
    return (as_utc(row.at), row.value) if row is not None else None


def between(engine: Engine, name: str, first: datetime, last: datetime) -> list[tuple[datetime, float]]:
    """Every value of `name` taken from `first` to `last`, oldest first (for a short window)."""
    query = (
        select(health_measure.c.at, health_measure.c.value)
        .where((health_measure.c.name == name) & (health_measure.c.at >= first) & (health_measure.c.at <= last))
        .order_by(health_measure.c.at)
    )
    with engine.connect() as connection:
        return [(as_utc(at), value) for at, value in connection.execute(query)]


def last_outage(engine: Engine, now: datetime) -> Outage | None:
    """The UPS's most recent outage: its last change from normal to a problem (on battery, low
    battery), until its next return to normal; None when the UPS never left normal."""
    newest_first = store.changes(engine, source=UPS_SOURCE, limit=OUTAGE_CHANGES)
    start = next((change for change in newest_first if began_outage(change)), None)
    if start is None:
        return None
    after = [change for change in reversed(newest_first) if change.id > start.id and change.subject == start.subject]
    end = next((change.at for change in after if not change.severity.is_problem), None)
    window_end = (end or now) + OUTAGE_MARGIN
    charge = between(engine, f"ups.{start.subject}.charge", start.at - OUTAGE_MARGIN, min(window_end, now))
    return Outage(start.subject, start.at, end, charge)


def began_outage(change: Change) -> bool:
    return change.severity.is_problem and (change.previous is None or not change.previous.is_problem)
