"""The disk source: free space of the data and system file systems (psutil, on this machine's real
file systems) and the forecast of days left from the instances the index says were received over
the last four weeks (put in a real SQLite index, then dated and sized)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest
from datagen import PATIENTS, encoded, make_instance
from pydicom.uid import generate_uid
from sqlalchemy import Engine, update

from appliance.archive.attributes import read_attributes
from appliance.archive.index import Index
from appliance.archive.storage import WrittenFile
from appliance.config import development_config
from appliance.db.schema import instance
from appliance.monitor import Reading, Severity
from appliance.monitor.disk import read
from appliance.monitor.sources import Context

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def disk_context(tmp_path: Path, engine: Engine, **monitor: int) -> Context:
    config = development_config(tmp_path / "data")
    config = dataclasses.replace(config, monitor=dataclasses.replace(config.monitor, **monitor))
    (tmp_path / "data").mkdir(exist_ok=True)
    return Context(config, engine, NOW)


def receive(engine: Engine, received: list[tuple[timedelta, int]]) -> None:
    """One instance per (how long before NOW, stored bytes)."""
    index, study_uid, series_uid = Index(engine), generate_uid(), generate_uid()
    for number, (age, size) in enumerate(received, start=1):
        dataset = make_instance("CT", PATIENTS[0], study_uid, series_uid, number)
        index.add_instance(
            read_attributes(encoded(dataset)), WrittenFile(f"{series_uid}/{number}", size, "0" * 64), "CT"
        )
        with engine.begin() as connection:
            connection.execute(
                update(instance).where(instance.c.instance_number == number).values(received_at=NOW - age)
            )


def by_subject(reading: Reading) -> dict[str, tuple[Severity, str]]:
    return {finding.subject: (finding.severity, finding.message) for finding in reading.findings}


def measures(reading: Reading) -> dict[str, float]:
    return {measure.name: measure.value for measure in reading.measures}


def test_space_and_forecast_from_four_weeks_of_ingest(tmp_path: Path, engine: Engine) -> None:
    free = psutil.disk_usage(str(tmp_path)).free
    four_weeks = free * 28 // 60  # what is received in 28 days fills the disk in about 60 days
    receive(
        engine,
        [
            (timedelta(days=40), 10 * free),  # before the four weeks: not counted, but the box is older
            (timedelta(days=27), four_weeks // 2),
            (timedelta(days=3), four_weeks - four_weeks // 2),
        ],
    )
    reading = read(disk_context(tmp_path, engine))
    found = measures(reading)
    assert found["disk.data.ingest_bytes_per_day"] == pytest.approx(four_weeks / 28)
    assert found["disk.data.days_left"] == pytest.approx(found["disk.data.free_bytes"] / (four_weeks / 28))
    assert 55 < found["disk.data.days_left"] < 65
    assert found["disk.data.used_bytes"] > 0 and found["disk.system.free_bytes"] > 0
    severity, message = by_subject(reading)["forecast"]
    assert severity is Severity.WARNING  # under 90 days, over 45
    assert message.startswith("Au rythme actuel, le disque des images sera plein dans environ 6")
    assert by_subject(reading)["data"][0] is Severity.OK and by_subject(reading)["system"][0] is Severity.OK


def test_a_young_box_extrapolates_from_the_days_it_has(tmp_path: Path, engine: Engine) -> None:
    free = psutil.disk_usage(str(tmp_path)).free
    receive(engine, [(timedelta(days=7), free // 4), (timedelta(hours=2), free // 4)])  # half the disk in a week
    reading = read(disk_context(tmp_path, engine))
    assert measures(reading)["disk.data.ingest_bytes_per_day"] == pytest.approx((free // 4 * 2) / 7)
    assert by_subject(reading)["forecast"][0] is Severity.CRITICAL  # about 14 days: under half of 90


def test_without_ingest_there_is_no_forecast(tmp_path: Path, engine: Engine) -> None:
    reading = read(disk_context(tmp_path, engine))
    assert by_subject(reading)["forecast"] == (
        Severity.OK,
        "Pas assez d'images reçues ces dernières semaines pour prévoir le remplissage du disque.",
    )
    assert "disk.data.days_left" not in measures(reading)


def test_free_space_thresholds(tmp_path: Path, engine: Engine) -> None:
    """Thresholds set around the free space this machine has now: above it warns, far above it is critical."""
    usage = psutil.disk_usage(str(tmp_path))
    free_percent = round(100 * usage.free / usage.total)
    warned = read(
        disk_context(
            tmp_path, engine, free_space_warning_percent=free_percent + 5, free_space_critical_percent=free_percent - 5
        )
    )
    severity, message = by_subject(warned)["data"]
    assert severity is Severity.WARNING
    assert message.startswith("La place diminue sur le disque des images :") and "libres" in message
    critical = read(
        disk_context(
            tmp_path, engine, free_space_warning_percent=free_percent + 10, free_space_critical_percent=free_percent + 5
        )
    )
    severity, message = by_subject(critical)["data"]
    assert severity is Severity.CRITICAL and message.startswith("Il ne reste presque plus de place")
