"""The practice's day is Paris's, whatever the machine's zone, on both sides of the clock changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from appliance import practice_time


def test_the_practice_is_on_the_next_day_before_the_machine_on_utc() -> None:
    assert practice_time.day_of(datetime(2026, 12, 4, 22, 59, tzinfo=UTC)) == date(2026, 12, 4)
    assert practice_time.day_of(datetime(2026, 12, 4, 23, 0, tzinfo=UTC)) == date(2026, 12, 5)
    assert practice_time.day_of(datetime(2026, 7, 4, 22, 0, tzinfo=UTC)) == date(2026, 7, 5)


def test_a_moment_is_written_in_the_practice_s_time() -> None:
    assert practice_time.written(datetime(2026, 12, 4, 23, 30, tzinfo=UTC)) == "05/12/2026 à 00:30"
    assert practice_time.written(datetime(2026, 7, 4, 12, 5, tzinfo=UTC)) == "04/07/2026 à 14:05"


def test_a_day_starts_at_the_practice_s_midnight_and_a_range_ends_at_the_next() -> None:
    winter = practice_time.day_start(date(2026, 12, 4))
    assert winter == datetime(2026, 12, 3, 23, 0, tzinfo=UTC)
    summer_end = practice_time.day_start(date(2026, 7, 4), next_day=True)
    assert summer_end == datetime(2026, 7, 4, 22, 0, tzinfo=UTC)
    changing = practice_time.day_start(date(2026, 10, 25), next_day=True)
    assert changing is not None and winter is not None
    assert changing - datetime(2026, 10, 24, 22, 0, tzinfo=UTC) == timedelta(hours=25)
    assert practice_time.day_start(None) is None
