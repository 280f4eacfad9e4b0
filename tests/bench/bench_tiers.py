"""`make bench`: moving studies to the deferred tier (R1, issue 12's benchmark).

1,000 studies (BENCH_TIER_STUDIES) of 2 small CT instances each (64 x 64 pixels, about 9 KB a file:
the figure is dominated by the per-file work: hashing the source, copying, reading the copy back to
check its SHA-256, one index update per instance, removing the original) are ingested, then moved
with `archive.tiers.move_due` to a second folder on the same disk, and, ingested again, to an
S3-compatible server (moto's standalone server on 127.0.0.1, one process, unencrypted HTTP). A study
brought back, and a deferred study read through the retrieve rule, are timed too. Nothing here
asserts: it prints.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from datagen import PATIENTS, encoded, make_instance
from pydicom.uid import ExplicitVRLittleEndian
from s3_server import credentials_file, make_bucket, s3_server

from appliance.archive import tiers
from appliance.archive.deferred import DeferredStore, deferred_store
from appliance.archive.index import Index
from appliance.archive.ingest import IncomingObject, Ingest
from appliance.archive.retrieve import payload, plan, source
from appliance.archive.search import Query
from appliance.archive.storage import FileStore
from appliance.config import S3Config, TiersConfig
from appliance.db import create_index_engine, upgrade_schema

STUDIES = int(os.environ.get("BENCH_TIER_STUDIES", "1000"))
INSTANCES_PER_STUDY = 2
MOVED_ON = date(2031, 1, 1)


def report(figure: str, value: str) -> None:
    print(f"  {figure:<58} {value:>18}", flush=True)


def small_instances() -> list[tuple[bytes, str, str]]:
    """STUDIES x INSTANCES_PER_STUDY encoded instances (bytes, SOP Instance UID, SOP Class UID)."""
    made = []
    for number in range(STUDIES):
        first = make_instance("CT", PATIENTS[number % 4], study_date=f"2026{1 + number % 12:02d}15", seed=1)
        for position in range(1, INSTANCES_PER_STUDY + 1):
            dataset = make_instance(
                "CT", PATIENTS[number % 4], study_uid=first.StudyInstanceUID, series_uid=first.SeriesInstanceUID,
                instance_number=position, study_date=first.StudyDate, seed=1,
            )  # fmt: skip
            pixels = dataset.pixel_array[:64, :64].copy()
            dataset.Rows = dataset.Columns = 64
            dataset.PixelData = pixels.tobytes()
            made.append((encoded(dataset), str(dataset.SOPInstanceUID), str(dataset.SOPClassUID)))
    return made


def archive_of(root: Path, store: DeferredStore, instances: list[tuple[bytes, str, str]]) -> tuple[object, FileStore]:
    engine = create_index_engine(f"sqlite:///{root / 'index.sqlite'}")
    upgrade_schema(engine)
    files = FileStore(root / "data", 0, store)
    ingest = Ingest(files, Index(engine, publish=False))
    for data, sop_instance_uid, sop_class_uid in instances:
        ingest.store(IncomingObject(data, sop_instance_uid, sop_class_uid, "BENCH"))
    return engine, files


def measure(name: str, root: Path, store: DeferredStore, instances: list[tuple[bytes, str, str]]) -> None:
    engine, files = archive_of(root, store, instances)
    total_bytes = sum(len(data) for data, _, _ in instances)
    started = time.perf_counter()
    moved = tiers.move_due(engine, files, store, 3, MOVED_ON)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    report(f"{name}: studies moved / failed", f"{moved.studies} / {len(moved.failures)}")
    report(
        f"{name}: move of {STUDIES} studies ({len(instances)} files, {total_bytes / 1e6:.1f} MB)", f"{seconds:.1f} s"
    )
    report(f"{name}: studies per second", f"{moved.studies / seconds:.1f}")
    report(f"{name}: files per second", f"{moved.instances / seconds:.1f}")
    first = plan(engine, Query("STUDY", {"StudyInstanceUID": "*"}))  # type: ignore[arg-type]
    sample = first.items[0].study_instance_uid
    started = time.perf_counter()
    for item in (entry for entry in first.items if entry.study_instance_uid == sample):
        chosen = payload(source(files, item), item, None, [ExplicitVRLittleEndian])
        assert chosen.path is not None and chosen.path.read_bytes()
    report(f"{name}: one deferred study read by the retrieve rule", f"{(time.perf_counter() - started) * 1000:.0f} ms")
    started = time.perf_counter()
    tiers.bring_back(engine, files, store, sample)  # type: ignore[arg-type]
    report(f"{name}: one study brought back", f"{(time.perf_counter() - started) * 1000:.0f} ms")


def main() -> int:
    print(f"tier move: {STUDIES} studies of {INSTANCES_PER_STUDY} small CT instances", flush=True)
    instances = small_instances()
    with tempfile.TemporaryDirectory(prefix="bench-tiers-") as directory:
        root = Path(directory)
        folder = deferred_store(
            TiersConfig(3, "folder", False, "03:30", root / "nas", S3Config("", "", "", "", "")), root
        )
        assert folder is not None
        (root / "folder").mkdir()
        measure("folder", root / "folder", folder, instances)
        with s3_server(root / "moto.log") as endpoint:
            make_bucket(endpoint, "deferred")
            keys = str(credentials_file(root / "s3-keys"))
            config = TiersConfig(
                3, "s3", False, "03:30", None, S3Config(endpoint, "deferred", "bench/", "us-east-1", keys)
            )
            bucket = deferred_store(config, root / "s3")
            assert bucket is not None
            (root / "s3").mkdir()
            measure("S3 (moto)", root / "s3", bucket, instances)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
