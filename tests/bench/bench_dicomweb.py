"""`make bench` (DICOMweb part): the real `appliance-web` (gunicorn, one worker of 8 threads) on a
free loopback port, a bearer token, and plain HTTP requests read to their last byte:

- WADO-RS of a 600-image CT series (512 x 512, 16 bits, stored uncompressed: about 300 MB), asked
  as stored (`transfer-syntax=*`, what Weasis sends): time to the first part and to the end;
- the same series' metadata (DICOM JSON made at ingest), plain, gzip, and revalidated with its ETag
  (304);
- QIDO-RS by Patient ID with 10,000 studies in the index (the console benchmark's filler);
- a rendered frame (JPEG) and a thumbnail.

Targets (issue 11): 600 parts under 0.5 s, metadata under 50 ms. Prints; asserts nothing. Medians
of REPEATS requests after one warm-up (the files are then in the page cache, as on a box that
just received the study).
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

os.environ.setdefault("BENCH_STUDIES", "10000")
sys.path.insert(0, str(Path(__file__).parents[1]))

import requests
from bench_console import fill
from datagen import PATIENTS, encoded, make_instance
from pydicom.uid import generate_uid
from servers import Daemon, archive_config, free_port, write_config
from sqlalchemy import Engine, select

from appliance.accounts import tokens, users
from appliance.accounts.roles import Role
from appliance.archive.index import Index
from appliance.archive.ingest import Ingest, StoreOutcome
from appliance.archive.storage import FileStore
from appliance.config import load_config
from appliance.db import create_index_engine, upgrade_schema
from appliance.db.schema import patient

IMAGES = int(os.environ.get("BENCH_IMAGES", "600"))
REPEATS = 5
AS_STORED = 'multipart/related;type="application/dicom";transfer-syntax=*'


def add_series(engine: Engine, data: Path) -> tuple[str, str, str]:
    """IMAGES CT images of one series through the archive's ingest; study, series, middle SOP UIDs."""
    ingest = Ingest(FileStore(data, 0), Index(engine))
    study_uid, series_uid = generate_uid(), generate_uid()
    uids = []
    for number in range(1, IMAGES + 1):
        dataset = make_instance("CT", PATIENTS[0], study_uid, series_uid, number, accession_number="BENCH1")
        assert ingest.store_object(encoded(dataset), "BENCH").outcome is StoreOutcome.STORED
        uids.append(str(dataset.SOPInstanceUID))
    return study_uid, series_uid, uids[len(uids) // 2]


def read_whole(url: str, headers: dict[str, str], expected: int = 200) -> tuple[float, float, int]:
    """Seconds to the first body bytes and to the last one, and the body's size."""
    started = time.perf_counter()
    with requests.get(url, headers=headers, stream=True, timeout=120) as answer:
        answer.raise_for_status()
        assert answer.status_code == expected, answer.status_code
        chunks = answer.raw.stream(1024 * 1024, decode_content=False)
        size = len(next(chunks, b""))
        first = time.perf_counter() - started
        size += sum(len(chunk) for chunk in chunks)
    return first, time.perf_counter() - started, size


def median_of(measure: Callable[[], tuple[float, float, int]]) -> tuple[float, float, int]:
    measure()  # warm-up
    runs = [measure() for _ in range(REPEATS)]
    return (statistics.median(run[0] for run in runs), statistics.median(run[1] for run in runs), runs[0][2])


def main() -> int:
    folder = Path(tempfile.mkdtemp(prefix="bench-dicomweb-"))
    try:
        return run(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(folder: Path) -> int:
    web_port = free_port()
    url = f"http://127.0.0.1:{web_port}"
    web = {"bind_address": "127.0.0.1", "port": web_port, "workers": 1, "threads": 8, "secure_cookies": False,
           "public_base_url": url}  # fmt: skip
    config_path = write_config(folder / "appliance.yaml", archive_config(folder / "data", free_port(), web=web))
    engine = create_index_engine(load_config(config_path).database_url)
    upgrade_schema(engine)
    started = time.perf_counter()
    fill(engine, date.today())
    print(f"filler: {os.environ['BENCH_STUDIES']} studies in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    study_uid, series_uid, middle = add_series(engine, folder / "data")
    print(f"ingest: {IMAGES} CT images in {time.perf_counter() - started:.1f} s")
    owner = users.create(engine, "bench", "Bench", Role.RADIOLOGIST, "Correct-Horse-42", "bench")
    headers = {"Authorization": f"Bearer {tokens.create(engine, owner.id, 60).token}"}
    with engine.connect() as connection:
        patient_id = connection.execute(select(patient.c.patient_id).where(patient.c.id == 1234)).scalar_one()
    engine.dispose()
    daemon = Daemon("appliance.daemons.web", config_path, folder / "web.log").start()
    try:
        measure(url, headers, study_uid, series_uid, middle, str(patient_id))
    finally:
        daemon.stop()
    return 0


def measure(url: str, headers: dict[str, str], study_uid: str, series_uid: str, middle: str, patient_id: str) -> None:
    series = f"{url}/dicomweb/studies/{study_uid}/series/{series_uid}"
    first, whole, size = median_of(lambda: read_whole(series, {**headers, "Accept": AS_STORED}))
    print(f"WADO-RS series of {IMAGES} parts ({size / 1e6:.0f} MB): first part {first * 1000:.0f} ms, "
          f"end {whole * 1000:.0f} ms (target 500 ms)")  # fmt: skip
    explicit = {**headers, "Accept": 'multipart/related; type="application/dicom"'}
    _, whole, _ = median_of(lambda: read_whole(series, explicit))
    print(f"WADO-RS series, Explicit VR Little Endian asked (stored so): end {whole * 1000:.0f} ms")
    measure_metadata(f"{series}/metadata", headers)
    query = f"{url}/dicomweb/studies?PatientID={patient_id}&includefield=StudyDescription"
    _, searched, _ = median_of(lambda: read_whole(query, headers))
    print(f"QIDO-RS by Patient ID, {os.environ['BENCH_STUDIES']} studies: {searched * 1000:.1f} ms")
    instance = f"{series}/instances/{middle}"
    _, rendered, _ = median_of(lambda: read_whole(f"{instance}/rendered", {**headers, "Accept": "image/jpeg"}))
    _, thumbnail, _ = median_of(lambda: read_whole(f"{series}/thumbnail", {**headers, "Accept": "image/jpeg"}))
    print(f"rendered frame (JPEG, 512 x 512): {rendered * 1000:.1f} ms; series thumbnail {thumbnail * 1000:.1f} ms")


def measure_metadata(url: str, headers: dict[str, str]) -> None:
    """Plain (`Accept-Encoding: identity`: requests asks for gzip by default), gzip, and gzip again
    with the ETag of the first answer (304 when the server gives one). The first request of all is
    timed alone: the answer built (what a viewer waits for on a study just received)."""
    _, first, _ = read_whole(url, {**headers, "Accept-Encoding": "gzip"})
    print(f"series metadata: first request (built, gzip) {first * 1000:.1f} ms")
    _, plain, size = median_of(lambda: read_whole(url, {**headers, "Accept-Encoding": "identity"}))
    zipped_headers = {**headers, "Accept-Encoding": "gzip"}
    _, zipped, zipped_size = median_of(lambda: read_whole(url, zipped_headers))
    print(f"series metadata: plain {plain * 1000:.1f} ms ({size / 1024:.0f} KiB), gzip {zipped * 1000:.1f} ms "
          f"({zipped_size / 1024:.0f} KiB) (target 50 ms)")  # fmt: skip
    entity_tag = requests.get(url, headers=zipped_headers, timeout=60).headers.get("ETag")
    if entity_tag is None:
        print("series metadata: no ETag, no 304")
        return
    revalidate = {**zipped_headers, "If-None-Match": entity_tag}
    status = requests.get(url, headers=revalidate, timeout=60).status_code
    _, unchanged, _ = median_of(lambda: read_whole(url, revalidate, expected=304))
    print(f"series metadata: If-None-Match {unchanged * 1000:.1f} ms (status {status})")


if __name__ == "__main__":
    raise SystemExit(main())
