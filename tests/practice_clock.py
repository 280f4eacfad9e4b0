"""The practice's day, as the console counts it (its time zone, not the test machine's), taken when
asked: between 22:00 and 24:00 UTC the practice is already on the next day, and a day taken when a
module is imported goes stale if the suite runs past the practice's midnight."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from appliance.web.languages import TIME_ZONE


def practice_today() -> date:
    return datetime.now(ZoneInfo(TIME_ZONE)).date()
