"""The practice's day is Paris's (or its overseas zone's), whatever the machine's zone, on both sides of
the clock changes."""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from appliance import practice_time
from appliance.config import ConfigError, load_config
from appliance.daemons.runtime import loader


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


@pytest.mark.usefixtures("in_reunion")
def test_an_overseas_practice_counts_its_days_and_writes_its_times_on_its_own_clock() -> None:
    assert practice_time.zone_name() == "Indian/Reunion"
    assert practice_time.day_of(datetime(2026, 12, 4, 19, 59, tzinfo=UTC)) == date(2026, 12, 4)
    assert practice_time.day_of(datetime(2026, 12, 4, 20, 0, tzinfo=UTC)) == date(2026, 12, 5)
    assert practice_time.written(datetime(2026, 7, 4, 12, 5, tzinfo=UTC)) == "04/07/2026 à 16:05"
    assert practice_time.day_start(date(2026, 12, 5)) == datetime(2026, 12, 4, 20, 0, tzinfo=UTC)


def test_each_reading_of_the_configuration_puts_its_time_zone_in_force(tmp_path: Path) -> None:
    path = tmp_path / "appliance.yaml"
    path.write_text(f"storage:\n  data_directory: {tmp_path}\ntime_zone: America/Martinique\n", encoding="utf-8")
    read = loader(argparse.Namespace(config=path, data=tmp_path))
    try:
        assert read().time_zone == "America/Martinique" and practice_time.zone_name() == "America/Martinique"
        assert practice_time.written(datetime(2026, 12, 4, 12, 0, tzinfo=UTC)) == "04/12/2026 à 08:00"
        path.write_text(f"storage:\n  data_directory: {tmp_path}\n", encoding="utf-8")
        assert read().time_zone == "Europe/Paris" and practice_time.zone_name() == "Europe/Paris"
    finally:
        practice_time.use(practice_time.DEFAULT_ZONE_NAME)


def test_a_zone_outside_france_is_refused_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "appliance.yaml"
    path.write_text("time_zone: Europe/London\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"{path}: time_zone: 'Europe/London' is not one of"):
        load_config(path)
