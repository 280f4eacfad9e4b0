"""The practice's clock: its time zone, its day, the start of a day and a moment as it is written.

Everything a person reads or chooses by the day (the console's dates and filters, the worklist page,
the QC report's day, alert mails and the daily digest, the tunnel's notices, the clock of the HL7
messages the box sends) counts in the practice's time zone, not in the machine's. That zone is the
configuration's `time_zone`: Europe/Paris unless the practice is overseas (La Réunion, the
Antilles, Guyane...). Every process puts it in force when it reads its configuration (`use`); the
box's own zone is set to the same by Ansible (`base_timezone`), but a development or test machine
often runs on UTC, where the practice is already on the next day from 22:00 or 23:00 UTC. Moments
are stored in UTC; only their reading changes.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DEFAULT_ZONE_NAME = "Europe/Paris"


class Clock:
    """The zone in force in this process (one per process, as the machine's own zone is)."""

    zone = ZoneInfo(DEFAULT_ZONE_NAME)


def use(zone_name: str) -> None:
    """Count the practice's days and moments in `zone_name` (an IANA name) from now on."""
    Clock.zone = ZoneInfo(zone_name)


def zone() -> ZoneInfo:
    """The practice's time zone."""
    return Clock.zone


def zone_name() -> str:
    """The practice's time zone's name: Europe/Paris."""
    return Clock.zone.key


def today() -> date:
    """The practice's date now."""
    return datetime.now(Clock.zone).date()


def day_of(moment: datetime) -> date:
    """The practice's date at `moment` (an aware datetime)."""
    return local(moment).date()


def local(moment: datetime) -> datetime:
    """`moment` (an aware datetime) on the practice's clock."""
    return moment.astimezone(Clock.zone)


def midnight(day: date) -> datetime:
    """The practice's midnight starting `day`."""
    return datetime.combine(day, time(), Clock.zone)


def day_start(day: date | None, next_day: bool = False) -> datetime | None:
    """The practice's midnight starting `day`, or the day after (the end of a range that includes
    `day`); None for no day."""
    if day is None:
        return None
    return midnight(day + timedelta(days=1 if next_day else 0))


def written(moment: datetime) -> str:
    """`moment` in the practice's time, as a French mail or report writes it: 05/12/2026 à 14:05."""
    return f"{local(moment):%d/%m/%Y à %H:%M}"
