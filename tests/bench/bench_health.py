"""`make bench` (dashboard part): how long the console's home page (the health tiles and the three
plots) and a detail page take on a SQLite index holding 90 days of the monitor's history: every
measure the plots read or the monitor writes, one value a minute (10 names, about 1.3 million rows),
10,000 changes of state, and 90 days of studies (60 a day, three series each). Issue 9's target:
the home page under 200 ms. Prints; asserts nothing.

Rows go in by direct SQL, in bulk, for speed; the current states through `store.record`, as the
monitor writes them. Pages are fetched through Flask's test client, logged in as a secretary.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1]))
sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "web"))

from console_client import Events, log_in
from sqlalchemy import Engine, insert

from appliance.accounts import users
from appliance.accounts.roles import Role
from appliance.config import Settings, development_config
from appliance.db import create_index_engine, upgrade_schema
from appliance.db.schema import health_change, health_measure, patient, series, study
from appliance.monitor import Finding, Reading, Severity, store
from appliance.web import create_app

DAYS = 90
EVERY_MINUTES = int(os.environ.get("BENCH_MEASURE_MINUTES", "1"))
CHANGES = int(os.environ.get("BENCH_CHANGES", "10000"))
STUDIES_A_DAY = 60
REPEATS = 30
BATCH = 20000
MEASURES = [
    "disk.data.used_bytes",
    "disk.data.free_bytes",
    "disk.data.days_left",
    "disk.system.free_bytes",
    "ups.eaton.charge",
    "ups.eaton.runtime",
    "raid.md0.sync_percent",
    "raid.md1.sync_percent",
    "smart.sda.temperature",
    "smart.sdb.temperature",
]
SOURCES = ["raid", "smart", "ups", "disk", "services", "dicom", "time", "certificate", "events", "outbox"]


def value_of(name: str, minute: int, outage: range) -> float:
    """A plausible value of `name` `minute` minutes into the 90 days."""
    if name == "disk.data.used_bytes":
        return 1.0e12 + minute * 4.0e6
    if name == "disk.data.free_bytes":
        return 3.0e12 - minute * 4.0e6
    if name == "disk.data.days_left":
        return 420.0
    if name == "ups.eaton.charge":
        return 100.0 - (minute - outage.start) * 2 if minute in outage else 100.0
    return 42.0


def fill_measures(engine: Engine, start: datetime, outage: range) -> int:
    """Every measure each EVERY_MINUTES minutes over DAYS days; returns how many rows."""
    rows: list[dict[str, Any]] = []
    count = 0
    for minute in range(0, DAYS * 24 * 60, EVERY_MINUTES):
        moment = start + timedelta(minutes=minute)
        rows.extend({"name": name, "at": moment, "value": value_of(name, minute, outage)} for name in MEASURES)
        if len(rows) >= BATCH:
            count += flush(engine, health_measure, rows)
    return count + flush(engine, health_measure, rows)


def flush(engine: Engine, table: Any, rows: list[dict[str, Any]]) -> int:
    if rows:
        with engine.begin() as connection:
            connection.execute(insert(table), rows)
    count = len(rows)
    rows.clear()
    return count


def fill_changes(engine: Engine, start: datetime, outage_at: datetime) -> None:
    """CHANGES changes spread over the 90 days (sources in turn), then the UPS's last outage."""
    generator = random.Random(9)
    rows: list[dict[str, Any]] = []
    for number in range(CHANGES):
        at = start + timedelta(seconds=number * DAYS * 86400 // CHANGES)
        severity = generator.choice(["ok", "warning", "critical"])
        rows.append({"at": at, "source": SOURCES[number % len(SOURCES)], "subject": f"s{number % 7}",
                     "previous": "ok", "severity": severity, "message": "Changement.", "detail": "bench"})  # fmt: skip
    flush(engine, health_change, rows)
    store.record(engine, "ups", Reading([Finding("ups", "eaton", Severity.OK, "Sur secteur.")]), start)
    store.record(engine, "ups", Reading([Finding("ups", "eaton", Severity.WARNING, "Sur batterie.")]), outage_at)
    back = outage_at + timedelta(minutes=25)
    store.record(engine, "ups", Reading([Finding("ups", "eaton", Severity.OK, "Sur secteur.")]), back)


def fill_studies(engine: Engine, start: datetime) -> None:
    """STUDIES_A_DAY studies a day, three series of 100 images each, by direct SQL."""
    moment = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(insert(patient), [
            {"id": number + 1, "patient_id": f"IPP{number:06d}", "issuer_of_patient_id": "CABINET",
             "patient_name": "MARTIN^Marie", "patient_name_key": "MARTIN^MARIE", "patient_birth_date": "19700101",
             "patient_sex": "F", "created_at": moment, "updated_at": moment}
            for number in range(1000)
        ])  # fmt: skip
    study_rows, series_rows = [], []
    for number in range(DAYS * STUDIES_A_DAY):
        received = start + timedelta(minutes=number * 24 * 60 // STUDIES_A_DAY)
        study_rows.append({"id": number + 1, "patient_pk": number % 1000 + 1, "study_instance_uid": f"1.2.9.{number}",
                           "number_of_series": 3, "number_of_instances": 300, "received_at": received,
                           "updated_at": received})  # fmt: skip
        for position in range(3):
            series_rows.append({"id": number * 3 + position + 1, "study_pk": number + 1, "modality": "CT",
                                "series_instance_uid": f"1.2.9.{number}.{position}", "number_of_instances": 100,
                                "received_at": received, "updated_at": received})  # fmt: skip
    flush(engine, study, study_rows)
    flush(engine, series, series_rows)


def record_states(engine: Engine, now: datetime) -> None:
    """The current state of every source, as the monitor's last round wrote it."""
    for source in SOURCES:
        findings = [Finding(source, f"s{number}", Severity.OK, "Tout va bien.", "bench") for number in range(7)]
        store.record(engine, source, Reading(findings), now)


def timed(client: Any, path: str) -> tuple[float, float, int]:
    """Median and 95th percentile in ms of REPEATS fetches of `path`, and the page's status."""
    samples, status = [], 0
    for _ in range(REPEATS):
        started = time.perf_counter()
        answer = client.get(path)
        samples.append((time.perf_counter() - started) * 1000)
        status = answer.status_code
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1], status


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="appliance-bench-health-"))
    try:
        engine = create_index_engine(f"sqlite:///{work / 'index.sqlite'}")
        upgrade_schema(engine)
        now = datetime.now(UTC)
        start = now - timedelta(days=DAYS)
        outage_minute = (DAYS - 3) * 24 * 60
        began = time.perf_counter()
        measures = fill_measures(engine, start, range(outage_minute, outage_minute + 25))
        fill_changes(engine, start, start + timedelta(minutes=outage_minute))
        fill_studies(engine, start)
        record_states(engine, now)
        print(f"\nDashboard: {measures:,} measures ({len(MEASURES)} names, every {EVERY_MINUTES} min, {DAYS} days), "
              f"{CHANGES:,} changes, {DAYS * STUDIES_A_DAY:,} studies, SQLite "
              f"(filled in {time.perf_counter() - began:.0f} s); {REPEATS} fetches each:")  # fmt: skip
        app = create_app(Settings(lambda: development_config(work / "data")), engine, Events())
        users.create(engine, "admin", "Admin", Role.ADMINISTRATOR, "Correct-Horse-42", "bench")
        users.create(engine, "secretary", "Secretary", Role.SECRETARY, "Correct-Horse-42", "bench")
        client = app.test_client()
        log_in(client, "secretary", "Correct-Horse-42")
        for label, path in [
            ("home page: tiles and three plots", "/"),
            ("storage detail page (disk plot, receipts)", "/health/disk"),
            ("UPS detail page (last outage)", "/health/ups"),
            ("RAID detail page (1,000 changes of raid)", "/health/raid"),
        ]:
            median, p95, status = timed(client, path)
            print(f"  {label:<44} median {median:7.1f} ms  p95 {p95:7.1f} ms  (HTTP {status})  target < 200 ms")
        engine.dispose()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
