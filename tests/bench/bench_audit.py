"""`make bench` (audit part): what auditing costs on C-STORE and C-FIND (S2's target: under 5 %).

Two archive daemons run side by side, one audited, one with the benchmark-only switch
`APPLIANCE_AUDIT_OFF_FOR_BENCHMARK=1` (appliance/audit/activity.py), and every request goes to both
in alternating order, so that the load of a shared machine weighs on both alike: DCMTK's storescu
sends each of ROUNDS CT series (512x512 16-bit slices) on one association (one audit record per
association), then a pynetdicom SCU sends study-level C-FINDs by Patient ID on open associations
(one audit record per query). Every DCMTK client runs with TCP_NODELAY=1. Figures are medians.
Nothing here asserts: it prints.
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

SERIES_SIZE = int(os.environ.get("BENCH_AUDIT_IMAGES", "200"))
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


def find_samples(on: Daemon, off: Daemon, patient_id: str) -> dict[bool, list[float]]:
    """Study-level C-FIND latencies by Patient ID (milliseconds), associations kept open, sent to the
    audited and the unaudited daemon in turn so that the machine's load weighs on both alike."""
    associations = {
        audited: associate(daemon.port, StudyRootQueryRetrieveInformationModelFind, ae_title="FINDSCU")
        for audited, daemon in ((True, on), (False, off))
    }
    samples: dict[bool, list[float]] = {True: [], False: []}
    for number in range(QUERY_REPEATS * 2):
        audited = number % 4 in (0, 3)  # on, off, off, on, ...
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.PatientID = patient_id
        query.StudyInstanceUID = ""
        query.PatientName = ""
        query.StudyDate = ""
        start = time.perf_counter()
        answers = list(associations[audited].send_c_find(query, StudyRootQueryRetrieveInformationModelFind))
        samples[audited].append((time.perf_counter() - start) * 1000)
        assert answers[-1][0].Status == 0
    for association in associations.values():
        association.release()
    return samples


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
        print(f"Generating {ROUNDS} CT series of {SERIES_SIZE} images (512x512, 16-bit)...", flush=True)
        series = [work / f"series{number}" for number in range(ROUNDS)]
        for directory in series:
            write_series(directory, SERIES_SIZE, "CT", PATIENTS[0])
        warm_up = work / "warm-up"
        write_series(warm_up, 10, "CT", PATIENTS[0])
        on, off = start_archive(work, "on", audited=True), start_archive(work, "off", audited=False)
        try:
            for daemon in (on, off):
                store_seconds(daemon, warm_up)  # page cache and first imports, not measured
            stores: dict[bool, list[float]] = {True: [], False: []}
            for number, directory in enumerate(series):  # each series to both, in alternating order
                for audited in (False, True) if number % 2 == 0 else (True, False):
                    stores[audited].append(store_seconds(on if audited else off, directory))
            finds = find_samples(on, off, PATIENTS[0].patient_id)
        finally:
            on.stop()
            off.stop()
        report(stores, finds, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def report(stores: dict[bool, list[float]], finds: dict[bool, list[float]], work: Path) -> None:
    store_on, store_off = statistics.median(stores[True]), statistics.median(stores[False])
    find_on, find_off = statistics.median(finds[True]), statistics.median(finds[False])
    ratios = [on / off for on, off in zip(stores[True], stores[False], strict=True)]
    print("\nAudit cost (daemons side by side, requests alternated; target: overhead < 5 %):")
    print(f"  {'':<52} {'off':>10} {'on':>10}  overhead")
    print(
        f"  {f'C-STORE {SERIES_SIZE} CT images, 1 association (median of {ROUNDS})':<52} {store_off:>8.2f} s "
        f"{store_on:>8.2f} s  {overhead(store_on, store_off)}"
        f" (median of pairs {statistics.median(ratios) * 100 - 100:+.1f} %)"
    )
    print(
        f"  {f'C-FIND study by Patient ID (median of {QUERY_REPEATS})':<52} {find_off:>7.2f} ms {find_on:>7.2f} ms  "
        f"{overhead(find_on, find_off)}"
    )
    print(
        f"  C-STORE rounds, s   off: {' '.join(f'{value:.2f}' for value in stores[False])}"
        f"   on: {' '.join(f'{value:.2f}' for value in stores[True])}"
    )
    cost = record_milliseconds(work, background=False)
    queued = record_milliseconds(work, background=True)
    print(
        f"  one AuditTrail.record in the caller's thread (chained, committed): {cost:.3f} ms"
        f" = {cost / find_off * 100:.1f} % of a C-FIND"
    )
    print(
        f"  one AuditTrail.record queued for the daemons' writer thread: {queued:.4f} ms"
        f" = {queued / find_off * 100:.2f} % of a C-FIND"
    )


if __name__ == "__main__":
    raise SystemExit(main())
