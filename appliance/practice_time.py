"""The practice's clock: its time zone, its day and the start of a day.

Everything a person reads or chooses by the day (the console's dates and filters, the worklist page,
the QC report's day, alert mails and the daily digest, the tunnel's notices) counts in the practice's
time zone, Europe/Paris, not in the machine's: the box's own zone is set to the same by Ansible
(`base_timezone`), but a development or test machine often runs on UTC, where the practice is
already on the next day from 22:00 or 23:00 UTC. Moments are stored in UTC; only their reading
changes.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

ZONE_NAME = "Europe/Paris"
ZONE = ZoneInfo(ZONE_NAME)


def today() -> date:
    """The practice's date now."""
    return datetime.now(ZONE).date()


def day_of(moment: datetime) -> date:
    """The practice's date at `moment` (an aware datetime)."""
    return moment.astimezone(ZONE).date()


def day_start(day: date | None, next_day: bool = False) -> datetime | None:
    """The practice's midnight starting `day`, or the day after (the end of a range that includes
    `day`); None for no day."""
    if day is None:
        return None
    return datetime.combine(day + timedelta(days=1 if next_day else 0), time(), ZONE)
