"""Figures about the archive: how much it holds and what lossless compression saved."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, func, select

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
