"""The practice's clock: its time zone, its day, the start of a day and a moment as it is written.

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


def midnight(day: date) -> datetime:
    """The practice's midnight starting `day`."""
    return datetime.combine(day, time(), ZONE)


def day_start(day: date | None, next_day: bool = False) -> datetime | None:
    """The practice's midnight starting `day`, or the day after (the end of a range that includes
    `day`); None for no day."""
    if day is None:
        return None
    return midnight(day + timedelta(days=1 if next_day else 0))


def written(moment: datetime) -> str:
    """`moment` in the practice's time, as a French mail or report writes it: 05/12/2026 à 14:05."""
    return f"{moment.astimezone(ZONE):%d/%m/%Y à %H:%M}"
