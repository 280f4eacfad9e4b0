"""`make bench` (worklist part): median C-FIND latency of a typical modality query on the worklist
daemon with 1,000 scheduled steps (issue 3's target: under 20 ms). Prints; asserts nothing.

The steps are spread over 20 days (10 past, 10 ahead) and 5 stations, about 10 a day per station,
as in a busy practice; the CT asks as most modalities do: no date (the profile's window: today),
no station (its own, from its calling AE title). Measured twice: with a pynetdicom SCU (whose
own 1 ms polling counts in the figure) and with DCMTK's findscu, association open (`query_seconds`,
also used by `bench_reference.py`)."""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))
sys.path.insert(0, str(Path(__file__).parent))

from bench_archive import timed
from pynetdicom.sop_class import ModalityWorklistInformationFind  # type: ignore[attr-defined]
from servers import Daemon, archive_config, associate, write_config
from worklist_data import add_patient, new_order, schedule

from appliance import practice_time
from appliance.config import load_config
from appliance.db import create_index_engine, upgrade_schema
from appliance.worklist.profiles import typical_query

QUERY_REPEATS = 100  # queries per findscu run (`query_seconds`)
STEPS = 1000
STATIONS = ["CT_SALLE1", "MR_SALLE2", "US_SALLE3", "MG_SALLE4", "DX_SALLE5"]
REPEATS = 50


def query_seconds(arguments: list[str]) -> float:
    """Seconds per query on an open association: findscu with --repeat n+1, less the same with
    one query (process start, association: the median of 3, as it varies), divided by n."""
    single = statistics.median(timed(arguments) for _ in range(3))
    many = timed([*arguments, "--repeat", str(QUERY_REPEATS + 1)])
    return max(many - single, 0.0) / QUERY_REPEATS


WORKLIST_KEYS = ["PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyInstanceUID",
                 "RequestedProcedureID", "RequestedProcedureDescription"]  # fmt: skip
STEP_KEYS = ["Modality", "ScheduledStationAETitle", "ScheduledProcedureStepStartDate",
             "ScheduledProcedureStepStartTime", "ScheduledProcedureStepID",
             "ScheduledProcedureStepDescription"]  # fmt: skip


def worklist_query(called: str, port: int, station: str, dates: str, *options: str) -> list[str]:
    """findscu -W as CT_SALLE1 for the steps of `station` on `dates`, asking for the usual keys."""
    values = {"ScheduledStationAETitle": station, "ScheduledProcedureStepStartDate": dates}
    keys = [*WORKLIST_KEYS, *(f"ScheduledProcedureStepSequence[0].{key}" for key in STEP_KEYS)]
    keys = [f"{key}={values[key.split('.')[-1]]}" if key.split(".")[-1] in values else key for key in keys]
    arguments = [part for key in keys for part in ("-k", key)]
    return ["findscu", "-W", "-aet", "CT_SALLE1", "-aec", called, *options, *arguments, "127.0.0.1", str(port)]


def worklist_daemon(work: Path) -> Daemon:
    """The worklist daemon started on an index of `STEPS` scheduled steps (see above); CT_SALLE1
    may query it. The caller stops it."""
    config = archive_config(work / "data", 1, logging={"level": "WARNING"})
    config["peers"].append({"ae_title": "CT_SALLE1", "host": "127.0.0.1", "rights": ["worklist"]})
    config["worklist"] = {"bind_address": "127.0.0.1", "port": 0}
    config_path = write_config(work / "a.yaml", config)
    loaded = load_config(config_path)
    engine = create_index_engine(loaded.database_url)
    upgrade_schema(engine, loaded.storage.index_directory)
    for number in range(STEPS):
        patient_pk = add_patient(engine, f"IPP{number:06d}", f"PATIENT{number}^Prénom")
        day = practice_time.today() + timedelta(days=(number // 5) % 20 - 10)
        order = new_order(number, STATIONS[number % 5][:2], STATIONS[number % 5], day=day)
        schedule(engine, loaded, order, patient_pk)
    engine.dispose()
    return Daemon("appliance.daemons.worklist", config_path, work / "log").start()


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="appliance-bench-worklist-"))
    try:
        daemon = worklist_daemon(work)
        try:
            assoc = associate(daemon.port, ModalityWorklistInformationFind, ae_title="CT_SALLE1")
            samples, items = [], 0
            for _ in range(REPEATS):
                start = time.perf_counter()
                answers = [
                    identifier
                    for status, identifier in assoc.send_c_find(typical_query("CT"), ModalityWorklistInformationFind)
                    if status.Status == 0xFF00
                ]
                samples.append((time.perf_counter() - start) * 1000)
                items = len(answers)
            assoc.release()
            query = worklist_query("APPLIANCE_MWL", daemon.port, "", "")
            findscu = statistics.median(query_seconds(query) * 1000 for _ in range(3))
        finally:
            daemon.stop()
        median = statistics.median(samples)
        print(f"\nWorklist: {STEPS} scheduled steps over 20 days and 5 stations; CT_SALLE1 asks for today:")
        label = f"worklist C-FIND median latency ({items} items)"
        print(f"  {label:<58} {median:>11.1f} ms  target < 20 ms")
        label = "  the same with findscu (DCMTK), association open"
        print(f"  {label:<58} {findscu:>11.1f} ms  target < 20 ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
