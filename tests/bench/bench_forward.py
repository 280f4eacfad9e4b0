"""`make bench`: forwarding throughput (issue 12's benchmark).

A 600-image CT (512x512 16-bit, tests/datagen.py) is sent to a local Orthanc twice, in one run,
each time to an Orthanc of its own (same configuration, empty storage):
1. plain DCMTK `storescu` of the files, one association: the reference;
2. the box's forwarding: the study is stored in the archive while its Orthanc is down (the 600
   instances wait in the destination's queue), then Orthanc comes up, the queue is made due
   ("retry now") and the clock runs until the worker has delivered the 600 (C-STORE, batches of
   `forward.batch_size` per association, the stored bytes streamed from disk).
Every DCMTK client runs with TCP_NODELAY=1. Nothing here asserts: it prints.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from datagen import PATIENTS, write_series
from orthanc import Orthanc, available
from servers import Daemon, archive_config, free_port, wait_for, write_config
from sqlalchemy import Engine, func, select

from appliance.config import load_config
from appliance.db import create_index_engine
from appliance.db.schema import outbox
from appliance.outbox import retry_channel

SERIES_SIZE = int(os.environ.get("BENCH_IMAGES", "600"))
BATCH = int(os.environ.get("BENCH_FORWARD_BATCH", "200"))
ENVIRONMENT = {**os.environ, "TCP_NODELAY": "1"}


def report(figure: str, value: str) -> None:
    print(f"  {figure:<58} {value:>14}", flush=True)


def bench_storescu(work: Path, series: Path) -> float:
    with Orthanc(work / "orthanc-storescu") as orthanc:
        start = time.perf_counter()
        subprocess.run(
            ["storescu", "-aec", "ORTHANC", "+sd", "127.0.0.1", str(orthanc.dicom_port), str(series)],
            check=True, env=ENVIRONMENT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        assert orthanc.statistics()["CountInstances"] == SERIES_SIZE
    return seconds


def counted(engine: Engine, status: str) -> int:
    statement = select(func.count()).where(outbox.c.channel == "forward:ORTHANC", outbox.c.status == status)
    with engine.connect() as connection:
        return int(connection.execute(statement).scalar() or 0)


def bench_forwarding(work: Path, series: Path) -> float:
    orthanc = Orthanc(work / "orthanc-forward")
    config = archive_config(
        work / "data", free_port(), lossless={"enabled": False}, logging={"level": "WARNING"},
        forward={"rules": [{"name": "bench", "destination": "ORTHANC"}], "batch_size": BATCH,
                 "retry_initial_seconds": 3600, "retry_maximum_seconds": 3600},
    )  # fmt: skip
    config["peers"] = [*config["peers"], {"ae_title": "ORTHANC", "host": "127.0.0.1", "port": orthanc.dicom_port}]
    config_path = write_config(work / "appliance.yaml", config)
    archive = Daemon("appliance.daemons.archive", config_path, work / "archive.log").start()
    worker = Daemon("appliance.daemons.worker", config_path, work / "worker.log").start()
    engine = create_index_engine(load_config(config_path).database_url)
    try:
        subprocess.run(
            ["storescu", "-aec", "APPLIANCE", "+sd", "127.0.0.1", str(archive.port), str(series)],
            check=True, env=ENVIRONMENT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(lambda: counted(engine, "pending") == SERIES_SIZE, "the study queued for Orthanc", 300)
        orthanc.start()
        start = time.perf_counter()
        retry_channel(engine, "forward:ORTHANC")
        wait_for(lambda: counted(engine, "delivered") == SERIES_SIZE, "the study forwarded", 600)
        seconds = time.perf_counter() - start
        assert orthanc.statistics()["CountInstances"] == SERIES_SIZE
    finally:
        worker.stop()
        archive.stop()
        orthanc.stop()
        engine.dispose()
    return seconds


def main() -> int:
    if not available():
        print("  Orthanc is not installed (apt-get install orthanc): forwarding benchmark skipped")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-forward-") as directory:
        work = Path(directory)
        series = work / "series"
        write_series(series, SERIES_SIZE, "CT", PATIENTS[0])
        plain = bench_storescu(work, series)
        forwarded = bench_forwarding(work, series)
    report(f"storescu of {SERIES_SIZE} CT images to Orthanc", f"{plain:.2f} s")
    report("  images per second (storescu, 1 association)", f"{SERIES_SIZE / plain:.0f}/s")
    report(f"forwarding of {SERIES_SIZE} CT images to Orthanc (batches of {BATCH})", f"{forwarded:.2f} s")
    report("  images per second (forwarding)", f"{SERIES_SIZE / forwarded:.0f}/s")
    report("  forwarding / storescu", f"{plain / forwarded:.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
