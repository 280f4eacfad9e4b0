"""`make bench` (audit part): what auditing costs on C-STORE and C-FIND (S2's target: under 5 %).

The same archive daemon runs with auditing on, and off through the benchmark-only switch
`APPLIANCE_AUDIT_OFF_FOR_BENCHMARK=1` (appliance/audit/activity.py), alternately, each on a fresh
data folder: DCMTK's storescu sends a CT series of 512x512 16-bit slices on one association (one
audit record per association), then a pynetdicom SCU sends study-level C-FINDs by Patient ID on an
open association (one audit record per query). Every DCMTK client runs with TCP_NODELAY=1.
Figures are medians over the rounds. Nothing here asserts: it prints.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from datagen import PATIENTS, write_series
from pydicom.dataset import Dataset
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind  # type: ignore[attr-defined]
from servers import Daemon, archive_config, associate, write_config

from appliance.audit.activity import AUDIT_OFF_ENVIRONMENT
from appliance.audit.events import Action, AuditEvent, EventId, Outcome, ParticipantRole, ae, patient, study
from appliance.audit.trail import AuditTrail

SERIES_SIZE = int(os.environ.get("BENCH_AUDIT_IMAGES", "300"))
ROUNDS = int(os.environ.get("BENCH_AUDIT_ROUNDS", "5"))
QUERY_REPEATS = 200
ENVIRONMENT = {**os.environ, "TCP_NODELAY": "1"}


def start_archive(work: Path, name: str, audited: bool) -> Daemon:
    config = archive_config(work / name, 1, lossless={"enabled": False}, logging={"level": "WARNING"})
    config_path = write_config(work / f"{name}.yaml", config)
    environment = {} if audited else {AUDIT_OFF_ENVIRONMENT: "1"}
    return Daemon("appliance.daemons.archive", config_path, work / f"{name}.log", environment=environment).start()


def store_seconds(archive: Daemon, series: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        ["storescu", "-aec", "APPLIANCE", "+sd", "+r", "127.0.0.1", str(archive.port), str(series)],
        check=True, env=ENVIRONMENT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return time.perf_counter() - start


def find_milliseconds(archive: Daemon, patient_id: str) -> float:
    """Median latency of a study-level C-FIND by Patient ID, association kept open."""
    association = associate(archive.port, StudyRootQueryRetrieveInformationModelFind, ae_title="FINDSCU")
    samples = []
    for _ in range(QUERY_REPEATS):
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.PatientID = patient_id
        query.StudyInstanceUID = ""
        query.PatientName = ""
        query.StudyDate = ""
        start = time.perf_counter()
        answers = list(association.send_c_find(query, StudyRootQueryRetrieveInformationModelFind))
        samples.append(time.perf_counter() - start)
        assert answers[-1][0].Status == 0
    association.release()
    return statistics.median(samples) * 1000


def record_milliseconds(work: Path, background: bool) -> float:
    """What one `AuditTrail.record` costs the caller (a C-STORE association's record, 1,000 times):
    appended in the caller's thread, or queued for the daemons' background writer."""
    trail = AuditTrail(work / f"alone-{background}" / "audit.sqlite", background=background)
    event = AuditEvent(
        EventId.INSTANCES_TRANSFERRED, Action.CREATE, Outcome.SUCCESS,
        (ae("STORESCU", "127.0.0.1", True, ParticipantRole.SOURCE),
         ae("APPLIANCE", "127.0.0.1", False, ParticipantRole.DESTINATION)),
        (patient("IPP0001^^^CABINET", "ŒUVRARD^Chloé"),
         study("1.2.3.4", "ACC0001", (("1.2.840.10008.5.1.4.1.1.2", 300),))),
    )  # fmt: skip
    start = time.perf_counter()
    for _ in range(1000):
        trail.record(event)
    elapsed = time.perf_counter() - start
    trail.close()
    return elapsed


def overhead(on: float, off: float) -> str:
    return f"{(on - off) / off * 100:+.1f} %"


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="appliance-bench-audit-"))
    try:
        print(f"Generating a {SERIES_SIZE}-image CT series (512x512, 16-bit)...", flush=True)
        series = work / "series"
        write_series(series, SERIES_SIZE, "CT", PATIENTS[0])
        warm_up = start_archive(work, "warm-up", False)  # page cache and imports, not measured
        try:
            store_seconds(warm_up, series)
        finally:
            warm_up.stop()
        stores: dict[bool, list[float]] = {True: [], False: []}
        finds: dict[bool, list[float]] = {True: [], False: []}
        for round_number in range(ROUNDS):
            for audited in (False, True) if round_number % 2 == 0 else (True, False):
                archive = start_archive(work, f"round{round_number}-{'on' if audited else 'off'}", audited)
                try:
                    stores[audited].append(store_seconds(archive, series))
                    finds[audited].append(find_milliseconds(archive, PATIENTS[0].patient_id))
                finally:
                    archive.stop()
        store_on, store_off = statistics.median(stores[True]), statistics.median(stores[False])
        find_on, find_off = statistics.median(finds[True]), statistics.median(finds[False])
        print(f"\nAudit cost ({ROUNDS} rounds each, medians; target: overhead < 5 %):")
        print(f"  {'C-STORE ' + str(SERIES_SIZE) + ' CT images, 1 association':<44} {'off':>10} {'on':>10}  overhead")
        print(f"  {'':<44} {store_off:>8.2f} s {store_on:>8.2f} s  {overhead(store_on, store_off)}")
        print(f"  {'C-FIND study by Patient ID (median of 200)':<44} {find_off:>7.2f} ms {find_on:>7.2f} ms  "
              f"{overhead(find_on, find_off)}")  # fmt: skip
        print(f"  rounds, C-STORE s   off: {' '.join(f'{value:.2f}' for value in stores[False])}"
              f"   on: {' '.join(f'{value:.2f}' for value in stores[True])}")  # fmt: skip
        print(f"  rounds, C-FIND ms   off: {' '.join(f'{value:.2f}' for value in finds[False])}"
              f"   on: {' '.join(f'{value:.2f}' for value in finds[True])}")  # fmt: skip
        cost = record_milliseconds(work, background=False)
        queued = record_milliseconds(work, background=True)
        print(f"  one AuditTrail.record in the caller's thread (chained, committed): {cost:.3f} ms"
              f" = {cost / find_off * 100:.1f} % of a C-FIND")  # fmt: skip
        print(f"  one AuditTrail.record queued for the daemons' writer thread: {queued:.4f} ms"
              f" = {queued / find_off * 100:.2f} % of a C-FIND")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
