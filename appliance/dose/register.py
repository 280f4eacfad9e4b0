"""The dose register (K2), filled from the change feed by the worker.

For every stored instance: a Radiation Dose SR is read (`reader`) into one `dose_report` row and
one `dose_event` row per irradiation event; a Secondary Capture whose series description says it
is a scanner's dose screen is recorded as such (the study will be listed "dose not readable",
never guessed from the picture). A report that cannot be read gets a row saying why: the object
itself stays archived as received, and the feed moves on (a bad object never blocks the consumer).
Reading again the same object replaces its rows, so the consumer is idempotent (at-least-once).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from sqlalchemy import Connection, Engine, delete, insert, select

from appliance.archive import changes
from appliance.archive.changes import Change, Feed
from appliance.archive.storage import FileStore
from appliance.config.reporting import DoseConfig
from appliance.db.schema import dose_event, dose_report, instance, series, study
from appliance.dose.reader import DOSE_SR_CLASSES, DoseReport, UnreadableReport, read_dose_report

LOGGER = logging.getLogger(__name__)

CONSUMER = "dose-register"
BATCH = 200
SECONDARY_CAPTURE_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
        "1.2.840.10008.5.1.4.1.1.7.1",  # Multi-frame Single Bit SC
        "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte SC
        "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word SC
        "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color SC
    }
)
READ = "read"
UNREADABLE = "unreadable"
SCREEN = "screen"


@dataclass(frozen=True)
class RoundCounts:
    read: int = 0
    unreadable: int = 0
    screens: int = 0
    seen: int = 0  # changes of the feed gone through, dose objects or not

    def __add__(self, other: RoundCounts) -> RoundCounts:
        return RoundCounts(
            self.read + other.read,
            self.unreadable + other.unreadable,
            self.screens + other.screens,
            self.seen + other.seen,
        )


@dataclass(frozen=True)
class StoredObject:
    """What the index says of an instance the feed names."""

    sop_instance_uid: str
    sop_class_uid: str
    study_instance_uid: str
    path: str
    modality: str
    series_description: str
    study_description: str
    study_date: str


def register_round(engine: Engine, files: FileStore, config: DoseConfig, limit: int = BATCH) -> RoundCounts:
    """Read the dose objects among the next stored instances, then move the cursor past them."""
    feed = Feed(engine, CONSUMER, (changes.INSTANCE_STORED,))
    pending = feed.pending(limit)
    counts = RoundCounts(seen=len(pending))
    for change in pending:
        counts += register_change(engine, files, config, change)
    if pending:
        feed.advance(pending[-1].id)
    return counts


def register_change(engine: Engine, files: FileStore, config: DoseConfig, change: Change) -> RoundCounts:
    """One stored instance: a dose report read (or recorded unreadable), a dose screen, or nothing."""
    with engine.connect() as connection:
        stored = stored_object(connection, change.sop_instance_uid)
    if stored is None:
        return RoundCounts()
    if stored.sop_class_uid in DOSE_SR_CLASSES:
        return register_report(engine, files.absolute(stored.path), stored, change.id)
    if stored.sop_class_uid in SECONDARY_CAPTURE_CLASSES and matches(
        stored.series_description, config.screen_series_patterns
    ):
        save(engine, screen_values(stored, change.id), [])
        return RoundCounts(screens=1)
    return RoundCounts()


def register_report(engine: Engine, path: Path, stored: StoredObject, change_id: int) -> RoundCounts:
    try:
        report = read_dose_report(dcmread(path, force=False))
    except UnreadableReport as error:
        return record_unreadable(engine, stored, change_id, error.problem, error.detail)
    except (OSError, InvalidDicomError) as error:
        return record_unreadable(engine, stored, change_id, "file-unreadable", f"{type(error).__name__}: {error}")
    except Exception as error:  # a library bug on one object must not stop the register: record it
        LOGGER.exception("dose report %s could not be read", stored.sop_instance_uid)
        return record_unreadable(engine, stored, change_id, "unreadable-content", f"{type(error).__name__}: {error}")
    save(engine, report_values(report, stored, change_id), [asdict(event) for event in report.events])
    return RoundCounts(read=1)


def record_unreadable(engine: Engine, stored: StoredObject, change_id: int, problem: str, detail: str) -> RoundCounts:
    LOGGER.warning("dose report %s not read: %s", stored.sop_instance_uid, problem)
    values = {**base_values(stored, change_id), "status": UNREADABLE, "problem": problem, "detail": detail[:2000]}
    save(engine, values, [])
    return RoundCounts(unreadable=1)


def stored_object(connection: Connection, sop_instance_uid: str) -> StoredObject | None:
    statement = (
        select(
            instance.c.sop_instance_uid,
            instance.c.sop_class_uid,
            study.c.study_instance_uid,
            instance.c.path,
            series.c.modality,
            series.c.series_description,
            study.c.study_description,
            study.c.study_date,
        )
        .join(series, series.c.id == instance.c.series_pk)
        .join(study, study.c.id == series.c.study_pk)
        .where(instance.c.sop_instance_uid == sop_instance_uid)
    )
    row = connection.execute(statement).first()
    return StoredObject(**row._mapping) if row is not None else None


def folded(text: str) -> str:
    """Lower case without accents, for the configured patterns."""
    decomposed = unicodedata.normalize("NFKD", text.replace("œ", "oe").replace("Œ", "OE"))
    return "".join(character for character in decomposed if not unicodedata.combining(character)).lower()


def matches(text: str, patterns: Sequence[str]) -> bool:
    """Whether one of the patterns (case and accents ignored) is found in `text`."""
    subject = folded(text)
    return any(re.search(folded(pattern), subject) for pattern in patterns)


def base_values(stored: StoredObject, change_id: int) -> dict[str, Any]:
    return {
        "sop_instance_uid": stored.sop_instance_uid,
        "study_instance_uid": stored.study_instance_uid,
        "modality": stored.modality[:16],
        "exam_date": stored.study_date,
        "study_description": stored.study_description[:64],
        "change_id": change_id,
        "read_at": datetime.now(UTC),
    }


def screen_values(stored: StoredObject, change_id: int) -> dict[str, Any]:
    return {**base_values(stored, change_id), "status": SCREEN, "procedure": "ct", "problem": "dose-screen"}


def report_values(report: DoseReport, stored: StoredObject, change_id: int) -> dict[str, Any]:
    return {
        **base_values(stored, change_id),
        "status": READ,
        "problem": "missing-values" if report.gaps else "",
        "detail": "; ".join(report.gaps)[:2000],
        "procedure": report.procedure,
        "exam_date": report.exam_date or stored.study_date,
        "study_description": (report.study_description or stored.study_description)[:64],
        "manufacturer": report.device.manufacturer,
        "model": report.device.model,
        "station_name": report.device.station_name,
        "patient_age_years": report.patient.age_years,
        "patient_sex": report.patient.sex,
        "patient_weight_kg": report.patient.weight_kg,
        "patient_height_cm": report.patient.height_cm,
        "events": len(report.events),
        "dlp_total_mgy_cm": report.dlp_total_mgy_cm,
        "dap_total_gy_cm2": report.dap_total_gy_cm2,
        "air_kerma_total_mgy": report.air_kerma_total_mgy,
        "agd_total_mgy": report.agd_total_mgy,
    }


def save(engine: Engine, values: dict[str, Any], events: list[dict[str, Any]]) -> None:
    """Replace the rows of one object (and its events) in one transaction."""
    with engine.begin() as connection:
        connection.execute(delete(dose_report).where(dose_report.c.sop_instance_uid == values["sop_instance_uid"]))
        report_pk = connection.execute(insert(dose_report).values(values)).inserted_primary_key[0]  # type: ignore[index]
        if events:
            connection.execute(insert(dose_event), [{**event, "report_pk": report_pk} for event in events])
