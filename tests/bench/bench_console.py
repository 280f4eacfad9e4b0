"""`make bench` (console part): how long the study list and the study page take with 100,000 studies
in a SQLite index (issue H5's target: each page under 200 ms). Prints; asserts nothing.

The filler studies (about 55 a day over five years, 40,000 patients with French names, one to
three series each) go in by direct SQL, in bulk, for speed; their rows look like the index's own
(folded name keys from `patients.names.person_name_key`). The study page is that of a 600-image CT
indexed through `archive.index.Index`, as the archive does. Pages are fetched through Flask's test
client, logged in as a secretary, audit events kept in memory. No ANALYZE is run: the box's index
has no planner statistics either.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1]))
sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "web"))

from console_client import Events, log_in
from datagen import PATIENTS, encoded, make_instance
from pydicom.uid import generate_uid
from sqlalchemy import Engine, insert

from appliance.accounts import users
from appliance.accounts.roles import Role
from appliance.archive.attributes import read_attributes
from appliance.archive.index import Index
from appliance.archive.storage import WrittenFile
from appliance.config import Settings, development_config
from appliance.db import create_index_engine, upgrade_schema
from appliance.db.schema import patient, series, study
from appliance.patients.names import person_name_key
from appliance.web import create_app

STUDIES = int(os.environ.get("BENCH_STUDIES", "100000"))
PATIENT_COUNT = STUDIES * 2 // 5
CT_IMAGES = int(os.environ.get("BENCH_IMAGES", "600"))
REPEATS = 30
DAYS = 5 * 365
BATCH = 5000
FAMILY = ["MARTIN", "BERNARD", "DUBOIS", "THOMAS", "ROBERT", "RICHARD", "PETIT", "DURAND", "LEROY", "MOREAU",
          "SIMON", "LAURENT", "LEFÈVRE", "MICHEL", "GARCIA", "DAVID", "BERTRAND", "ROUX", "VINCENT", "FOURNIER",
          "MOREL", "GIRARD", "ANDRÉ", "MERCIER", "DUPONT", "LAMBERT", "BONNET", "FRANÇOIS", "MARTINEZ", "ŒUVRARD",
          "CŒUR", "BŒUF", "LÉGER", "HÉBERT", "CHÂTEAU", "NOËL", "GAUTHIER", "PERRIN", "MORIN", "CLÉMENT"]  # fmt: skip
GIVEN = ["Marie", "Jean", "Chloé", "Hélène", "François", "Léa", "Noël", "Zoé", "Jérôme", "Anaïs", "Éric",
         "Inès", "Céline", "Gaëlle", "Loïc", "Raphaël", "Camille", "Lucas", "Manon", "Hugo"]  # fmt: skip
MODALITY_MIX = ["CT", "MR", "US", "CR", "DX", "MG", "US", "CR", "DX", "CT"]


def fill(engine: Engine, today: date) -> None:
    """STUDIES studies of PATIENT_COUNT patients spread over DAYS days up to today, by direct SQL."""
    generator = random.Random(1471)
    moment = datetime.now(UTC)
    with engine.begin() as connection:
        rows = []
        for number in range(PATIENT_COUNT):
            name = f"{generator.choice(FAMILY)}^{generator.choice(GIVEN)}"
            birth = date(1930, 1, 1) + timedelta(days=generator.randrange(30000))
            rows.append(patient_row(number, name, birth, generator.choice("MF"), moment))
        for start in range(0, len(rows), BATCH):
            connection.execute(insert(patient), rows[start : start + BATCH])
    series_key = 0
    for start in range(0, STUDIES, BATCH):
        study_rows, series_rows = [], []
        for number in range(start, min(start + BATCH, STUDIES)):
            day = today - timedelta(days=DAYS - 1 - number * DAYS // STUDIES)
            modalities = sorted({generator.choice(MODALITY_MIX) for _ in range(generator.randint(1, 2))})
            study_rows.append(study_row(number, day, generator, modalities, moment))
            for position, modality in enumerate(modalities):
                series_key += 1
                series_rows.append(series_row(series_key, number + 1, position, modality, moment))
        with engine.begin() as connection:
            connection.execute(insert(study), study_rows)
            connection.execute(insert(series), series_rows)


def patient_row(number: int, name: str, birth: date, sex: str, moment: datetime) -> dict[str, Any]:
    return {
        "id": number + 1,
        "patient_id": f"IPP{number:07d}",
        "issuer_of_patient_id": "CABINET",
        "patient_name": name,
        "patient_name_key": person_name_key(name),
        "patient_birth_date": f"{birth:%Y%m%d}",
        "patient_sex": sex,
        "created_at": moment,
        "updated_at": moment,
    }


def study_row(number: int, day: date, generator: random.Random, modalities: list[str], moment: datetime) -> dict:
    return {
        "id": number + 1,
        "patient_pk": generator.randrange(PATIENT_COUNT) + 1,
        "study_instance_uid": f"1.2.826.0.1.3680043.10.1471.9.{number}",
        "study_date": f"{day:%Y%m%d}",
        "study_time": f"{8 + generator.randrange(11):02d}{generator.randrange(60):02d}00",
        "accession_number": f"A{number:08d}",
        "study_description": f"{modalities[0]} examen",
        "modalities_in_study": "\\".join(modalities),
        "number_of_series": len(modalities),
        "number_of_instances": 10 * len(modalities),
        "size_bytes": 5_000_000 * len(modalities),
        "received_at": moment,
        "updated_at": moment,
    }


def series_row(key: int, study_pk: int, position: int, modality: str, moment: datetime) -> dict[str, Any]:
    return {
        "id": key,
        "study_pk": study_pk,
        "series_instance_uid": f"1.2.826.0.1.3680043.10.1471.8.{key}",
        "modality": modality,
        "series_number": position + 1,
        "number_of_instances": 10,
        "received_at": moment,
        "updated_at": moment,
    }


def add_ct(engine: Engine) -> str:
    """A CT study of CT_IMAGES images indexed as the archive does it (small pixels: the page reads none)."""
    index = Index(engine, publish=False)
    study_uid, series_uid = generate_uid(), generate_uid()
    for number in range(1, CT_IMAGES + 1):
        dataset = make_instance("CT", PATIENTS[0], study_uid, series_uid, number, accession_number="BENCHCT")
        dataset.StudyDate = dataset.SeriesDate = f"{date.today():%Y%m%d}"
        dataset.Rows = dataset.Columns = 8
        dataset.PixelData = b"\0" * 128
        attributes = read_attributes(encoded(dataset))
        index.add_instance(attributes, WrittenFile(f"bench/{number}.dcm", 524_288, "0" * 64), "CT_SALLE1")
    return study_uid


def timed(client: Any, path: str) -> tuple[float, float, int]:
    """Median and 95th percentile in ms of REPEATS fetches of `path`, and the page's status."""
    samples, status = [], 0
    for _ in range(REPEATS):
        start = time.perf_counter()
        answer = client.get(path)
        samples.append((time.perf_counter() - start) * 1000)
        status = answer.status_code
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1], status


def second_page(client: Any, path: str) -> str:
    """The address of the page after the first one of `path`."""
    page = client.get(path).get_data(as_text=True)
    return str(page.split('id="next-page" href="')[1].split('"')[0].replace("&amp;", "&"))


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="appliance-bench-console-"))
    try:
        engine = create_index_engine(f"sqlite:///{work / 'index.sqlite'}")
        upgrade_schema(engine)
        started = time.perf_counter()
        fill(engine, date.today())
        study_uid = add_ct(engine)
        print(f"\nConsole: {STUDIES:,} studies, {PATIENT_COUNT:,} patients, SQLite "
              f"(filled in {time.perf_counter() - started:.0f} s); {REPEATS} fetches each:")  # fmt: skip
        app = create_app(Settings(lambda: development_config(work / "data")), engine, Events())
        users.create(engine, "admin", "Admin", Role.ADMINISTRATOR, "Correct-Horse-42", "bench")
        users.create(engine, "secretary", "Secretary", Role.SECRETARY, "Correct-Horse-42", "bench")
        client = app.test_client()
        log_in(client, "secretary", "Correct-Horse-42")
        week_ago = date.today() - timedelta(days=6)
        pages = [
            ("study list, empty search (today's studies)", "/studies"),
            ("study list, name 'coeur' (all dates)", "/studies?patient_name=coeur"),
            ("study list, name 'martin marie' (all dates)", "/studies?patient_name=martin+marie"),
            ("study list, last 7 days", "/studies?preset=week"),
            (
                "study list, date range of a year, CT",
                f"/studies?first_day={week_ago.year - 1}-01-01&last_day={week_ago.year - 1}-12-31&modality=CT",
            ),
            ("study list, modality MG, all dates", "/studies?modality=MG"),
            ("study list, modality NM (none held), all dates", "/studies?modality=NM"),
            ("study list, name 'coeur', second page", second_page(client, "/studies?patient_name=coeur")),
            ("study list, every study, second page", second_page(client, "/studies?first_day=2000-01-01")),
            ("study list, IPP", "/studies?patient_id=IPP0001234"),
            ("study list, accession number", "/studies?accession_number=A00050000"),
            (f"study page, CT of {CT_IMAGES} images", f"/studies/{study_uid}"),
            ("worklist page, today", "/worklist"),
        ]
        for label, path in pages:
            median, p95, status = timed(client, path)
            print(f"  {label:<52} median {median:7.1f} ms  p95 {p95:7.1f} ms  (HTTP {status})  target < 200 ms")
        engine.dispose()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
