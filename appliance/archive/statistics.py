"""Figures about the archive: how much it holds, what lossless compression saved, and what arrived
each day (the console's dashboard plots it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Engine, func, select

from appliance.archive.lossless import UNCOMPRESSED
from appliance.db.schema import instance, patient, quarantined_duplicate, series, study


@dataclass(frozen=True)
class ArchiveStatistics:
    patients: int
    studies: int
    series: int
    instances: int
    bytes_received: int
    bytes_on_disk: int
    compressed_instances: int
    uncompressed_instances: int
    lossy_instances: int
    quarantined_duplicates: int

    @property
    def bytes_saved(self) -> int:
        return self.bytes_received - self.bytes_on_disk


def archive_statistics(engine: Engine) -> ArchiveStatistics:
    with engine.connect() as connection:

        def count(table: object) -> int:
            return int(connection.execute(select(func.count()).select_from(table)).scalar() or 0)  # type: ignore[arg-type]

        def scalar(expression: object) -> int:
            return int(connection.execute(select(expression)).scalar() or 0)  # type: ignore[call-overload]

        return ArchiveStatistics(
            patients=count(patient),
            studies=count(study),
            series=count(series),
            instances=count(instance),
            bytes_received=scalar(func.sum(instance.c.received_size_bytes)),
            bytes_on_disk=scalar(func.sum(instance.c.size_bytes)),
            compressed_instances=scalar(func.count().filter(instance.c.compressed_at.is_not(None))),
            uncompressed_instances=scalar(
                func.count().filter(instance.c.transfer_syntax_uid.in_(sorted(UNCOMPRESSED)))
            ),
            lossy_instances=scalar(func.count().filter(instance.c.lossy.is_(True))),
            quarantined_duplicates=count(quarantined_duplicate),
        )


@dataclass(frozen=True)
class DailyReceipts:
    """What arrived on one local day: studies first received that day, and images of the series
    first received that day."""

    day: date
    studies: int
    images: int


def daily_receipts(engine: Engine, first_day: date, last_day: date, time_zone: str) -> list[DailyReceipts]:
    """One entry per local day (in `time_zone`) from `first_day` to `last_day`, empty days included.

    Counted in SQL by UTC hour (at most 24 rows a day come back), then folded into local days, so the
    page stays fast on a large archive. Studies count by their first receipt (indexed); images by
    the receipt of their series, for the series of studies received in the period (a series added to
    an older study is left out: the index keeps no per-day count of those without reading every image).
    """
    zone = ZoneInfo(time_zone)
    start = datetime.combine(first_day, time(), zone).astimezone(UTC)
    end = datetime.combine(last_day + timedelta(days=1), time(), zone).astimezone(UTC)
    totals = {first_day + timedelta(days=offset): [0, 0] for offset in range((last_day - first_day).days + 1)}
    with engine.connect() as connection:
        dialect = connection.dialect.name
        study_hour = utc_hour(dialect, study.c.received_at)
        studies = (
            select(study_hour, func.count())
            .where((study.c.received_at >= start) & (study.c.received_at < end))
            .group_by(study_hour)
        )
        series_hour = utc_hour(dialect, series.c.received_at)
        images = (
            select(series_hour, func.sum(series.c.number_of_instances))
            .select_from(series.join(study, series.c.study_pk == study.c.id))
            .where((study.c.received_at >= start) & (study.c.received_at < end))
            .where((series.c.received_at >= start) & (series.c.received_at < end))
            .group_by(series_hour)
        )
        for position, query in enumerate((studies, images)):
            for hour, count in connection.execute(query):
                local_day = datetime.strptime(hour, HOUR_FORMAT).replace(tzinfo=UTC).astimezone(zone).date()
                if local_day in totals:
                    totals[local_day][position] += int(count or 0)
    return [DailyReceipts(day, studies_count, images_count) for day, (studies_count, images_count) in totals.items()]


HOUR_FORMAT = "%Y-%m-%d %H"


def utc_hour(dialect: str, column: ColumnElement[datetime]) -> ColumnElement[str]:
    """`column`'s UTC hour as text "2026-12-02 08" (SQLite stores UTC text; PostgreSQL converts)."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD HH24")
    return func.strftime(HOUR_FORMAT, column)
