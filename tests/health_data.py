"""Disk measures as the monitor leaves them, for the tests of the dashboard's disk plot."""

from __future__ import annotations

from datetime import datetime, timedelta

from appliance.practice_time import day_of, midnight


def daily_moments(now: datetime, days: int = 90) -> list[datetime]:
    """Five minutes before each local midnight of the last `days` days, then `now`: one measure for
    each point the disk plot draws, whatever the hour the test runs at. A window of 90 times 24 hours
    holds 89 local midnights when it ends late in the evening across the autumn's clock change, so
    the count is not always `days`."""
    first = day_of(now - timedelta(days=days)) + timedelta(days=1)
    count = (day_of(now) - first).days + 1
    midnights = [midnight(first + timedelta(days=offset)) for offset in range(count)]
    return [*(midnight - timedelta(minutes=5) for midnight in midnights), now]


def points_drawn(moments: list[datetime], rendered: datetime) -> int:
    """How many of the measures taken at `moments` the disk plot of a page rendered at `rendered`
    draws: those of the days still in its window, and the last one. Fewer than `moments` only when a
    local midnight passed between the measures and the page."""
    window = set(daily_moments(rendered)[:-1])
    return len(window.intersection(moments[:-1])) + 1
