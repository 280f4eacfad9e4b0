"""Images and studies received per day, for the dashboard's bars: local days of the practice (a study
received at 23:30 UTC in winter belongs to the next day in Paris), empty days included, on SQLite
and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from datagen import PATIENTS, encoded, make_instance
from postgres import empty_index
from pydicom.uid import generate_uid
from sqlalchemy import Engine, update

from appliance.archive.attributes import read_attributes
from appliance.archive.index import Index
from appliance.archive.statistics import DailyReceipts, daily_receipts
from appliance.archive.storage import WrittenFile
from appliance.db.schema import series, study

# (when the study arrived, in UTC; its images)
ARRIVALS = [
    (datetime(2026, 11, 30, 9, 0, tzinfo=UTC), 3),
    (datetime(2026, 12, 1, 10, 0, tzinfo=UTC), 2),
    (datetime(2026, 12, 1, 23, 30, tzinfo=UTC), 4),  # 00:30 on 2 December in Paris
    (datetime(2026, 12, 3, 8, 0, tzinfo=UTC), 1),
    (datetime(2026, 10, 1, 8, 0, tzinfo=UTC), 5),  # before the period
]


@pytest.fixture(params=["sqlite", "postgresql"])
def filled(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    engine = empty_index(request, tmp_path_factory, "daily_receipts")
    index = Index(engine, publish=False)
    for number, (moment, images) in enumerate(ARRIVALS):
        study_uid, series_uid = generate_uid(), generate_uid()
        for image in range(1, images + 1):
            dataset = make_instance("CT", PATIENTS[0], study_uid, series_uid, image, accession_number=f"R{number}")
            written = WrittenFile(f"{number}/{image}.dcm", 1000, "0" * 64)
            index.add_instance(read_attributes(encoded(dataset)), written, "CT_SALLE1")
        arrived_at(engine, study_uid, moment)
    return engine


def arrived_at(engine: Engine, study_uid: str, moment: datetime) -> None:
    """The index stamps `now`: move the study and its series to when the test says they arrived."""
    with engine.begin() as connection:
        key = connection.execute(study.select().where(study.c.study_instance_uid == study_uid)).one().id
        connection.execute(update(study).where(study.c.id == key).values(received_at=moment))
        connection.execute(update(series).where(series.c.study_pk == key).values(received_at=moment))


def test_each_local_day_of_the_period_with_its_studies_and_images(filled: Engine) -> None:
    days = daily_receipts(filled, date(2026, 11, 29), date(2026, 12, 3), "Europe/Paris")
    assert days == [
        DailyReceipts(date(2026, 11, 29), 0, 0),
        DailyReceipts(date(2026, 11, 30), 1, 3),
        DailyReceipts(date(2026, 12, 1), 1, 2),
        DailyReceipts(date(2026, 12, 2), 1, 4),
        DailyReceipts(date(2026, 12, 3), 1, 1),
    ]
    filled.dispose()


def test_an_empty_archive_gives_empty_days(engine: Engine) -> None:
    days = daily_receipts(engine, date(2026, 12, 1), date(2026, 12, 2), "Europe/Paris")
    assert [(day.studies, day.images) for day in days] == [(0, 0), (0, 0)]
