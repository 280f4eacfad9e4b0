"""Audit completeness on the DICOM edge (S2): the real archive and worklist daemons driven by DCMTK's
storescu, findscu, getscu and movescu leave exactly one record per association and operation (one
per patient for transfers) with the right participants, patient, study and counts."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from datagen import PATIENTS
from pydicom import dcmread
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from servers import Daemon, archive_config, run, wait_for, wait_for_port, write_config
from worklist_data import add_patient, new_order, schedule

from appliance.audit.events import Action, AuditEvent, EventId, EventType, ObjectKind, Outcome, ParticipantRole
from appliance.audit.trail import AuditFilter, AuditTrail
from appliance.config import load_config
from appliance.db import create_index_engine, upgrade_schema

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
MODALITY_WORKLIST_FIND = "1.2.840.10008.5.1.4.31"


def trail_of(daemon: Daemon) -> AuditTrail:
    return AuditTrail(load_config(daemon.config_path).audit.database)


def events(daemon: Daemon, event_id: EventId, count: int) -> list[AuditEvent]:
    """The `event_id` events of the daemon's trail, oldest first, once there are `count` of them."""
    trail = trail_of(daemon)
    try:
        wait_for(lambda: trail.count(AuditFilter(event=event_id)) >= count, f"{count} {event_id.meaning} record(s)")
        return [record.event for record in trail.records(AuditFilter(event=event_id))]
    finally:
        trail.close()


def store(archive: Daemon, paths: list[Path], calling: str = "STORESCU") -> None:
    run(["storescu", "-aet", calling, "-aec", "APPLIANCE", "127.0.0.1", str(archive.port), *map(str, paths)])


def roles(event: AuditEvent) -> dict[str, tuple[str, bool, ParticipantRole | None]]:
    return {participant.user_id: (participant.address, participant.is_requestor, participant.role)
            for participant in event.participants}  # fmt: skip


def objects(event: AuditEvent, kind: ObjectKind) -> list[Any]:
    return [found for found in event.objects if found.kind is kind]


def test_daemon_start_is_recorded(archive: Daemon) -> None:
    (started,) = events(archive, EventId.APPLICATION_ACTIVITY, 1)
    assert started.event_type is EventType.APPLICATION_START
    assert started.participants[0].user_id == "appliance-dicom"


def test_one_store_record_per_patient_of_an_association(archive: Daemon, samples: dict[str, list[Path]]) -> None:
    store(archive, [*samples["CT"], *samples["MR"]])
    records = events(archive, EventId.INSTANCES_TRANSFERRED, 2)
    assert len(records) == 2
    by_patient = {objects(event, ObjectKind.PATIENT)[0].object_id: event for event in records}
    ct = dcmread(samples["CT"][0])
    event = by_patient[f"{ct.PatientID}^^^{ct.IssuerOfPatientID}" if ct.get("IssuerOfPatientID") else ct.PatientID]
    assert (event.action, event.outcome) == (Action.CREATE, Outcome.SUCCESS)
    assert roles(event) == {
        "STORESCU": ("127.0.0.1", True, ParticipantRole.SOURCE),
        "APPLIANCE": ("127.0.0.1", False, ParticipantRole.DESTINATION),
    }
    (found,) = objects(event, ObjectKind.STUDY)
    assert (found.object_id, found.accession_number) == (ct.StudyInstanceUID, ct.AccessionNumber)
    assert found.instances == ((CT_IMAGE_STORAGE, 3),)
    assert objects(event, ObjectKind.PATIENT)[0].name == str(ct.PatientName)


def test_one_query_record_per_find_with_its_keys(
    archive: Daemon, samples: dict[str, list[Path]], tmp_path: Path
) -> None:
    store(archive, samples["CT"])
    ct = dcmread(samples["CT"][0])
    arguments = ["findscu", "-S", "-aet", "FINDSCU", "-aec", "APPLIANCE", "-k", "QueryRetrieveLevel=STUDY"]
    run([*arguments, "-k", f"PatientID={ct.PatientID}", "-k", "StudyInstanceUID", "127.0.0.1", str(archive.port)])
    (query,) = events(archive, EventId.QUERY, 1)
    assert (query.action, query.outcome) == (Action.EXECUTE, Outcome.SUCCESS)
    assert roles(query)["FINDSCU"] == ("127.0.0.1", True, ParticipantRole.SOURCE)
    (keys,) = objects(query, ObjectKind.QUERY)
    assert keys.object_id == STUDY_ROOT_FIND
    implicit = dict(keys.details)["TransferSyntax"] == "1.2.840.10008.1.2"
    sent = read_dataset(DicomBytesIO(keys.query), is_implicit_VR=implicit, is_little_endian=True)
    assert (sent.QueryRetrieveLevel, sent.PatientID) == ("STUDY", ct.PatientID)
    assert [found.object_id.split("^")[0] for found in objects(query, ObjectKind.PATIENT)] == [ct.PatientID]


def test_a_refused_query_is_recorded_as_a_failure(archive: Daemon, tmp_path: Path) -> None:
    arguments = ["movescu", "-S", "-aet", "QUERYONLY", "-aec", "APPLIANCE", "-aem", "STORESCP"]
    run([*arguments, "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID=1.2.3", "127.0.0.1",
         str(archive.port)], check=False)  # fmt: skip
    (refused,) = events(archive, EventId.INSTANCES_TRANSFERRED, 1)
    assert refused.outcome is Outcome.MINOR_FAILURE
    assert refused.requestor is not None and refused.requestor.user_id == "QUERYONLY"


def test_one_record_per_get(archive: Daemon, samples: dict[str, list[Path]], tmp_path: Path) -> None:
    store(archive, samples["DX"])
    dx = dcmread(samples["DX"][0])
    (tmp_path / "get").mkdir()
    arguments = ["getscu", "-S", "-aet", "GETSCU", "-aec", "APPLIANCE", "-od", str(tmp_path / "get")]
    run([*arguments, "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={dx.StudyInstanceUID}",
         "127.0.0.1", str(archive.port)])  # fmt: skip
    records = events(archive, EventId.INSTANCES_TRANSFERRED, 2)
    sent = [event for event in records if event.action is Action.READ]
    assert len(sent) == 1
    (event,) = sent
    assert event.outcome is Outcome.SUCCESS
    assert roles(event) == {
        "APPLIANCE": ("127.0.0.1", False, ParticipantRole.SOURCE),
        "GETSCU": ("127.0.0.1", True, ParticipantRole.DESTINATION),
    }
    (found,) = objects(event, ObjectKind.STUDY)
    assert found.object_id == dx.StudyInstanceUID
    assert sum(count for _sop_class, count in found.instances) == 3
    assert objects(event, ObjectKind.PATIENT)[0].object_id.split("^")[0] == dx.PatientID


def test_one_record_per_move_with_source_destination_and_requestor(
    archive: Daemon, samples: dict[str, list[Path]], tmp_path: Path, destination_port: int
) -> None:
    store(archive, samples["MG"])
    mg = dcmread(samples["MG"][0])
    received = tmp_path / "moved"
    received.mkdir()
    destination = subprocess.Popen(["storescp", "-aet", "STORESCP", "-od", str(received), str(destination_port)])
    try:
        wait_for_port(destination_port, "storescp", destination)
        run(["movescu", "-S", "-aet", "MOVESCU", "-aec", "APPLIANCE", "-aem", "STORESCP", "-k",
             "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={mg.StudyInstanceUID}", "127.0.0.1",
             str(archive.port)])  # fmt: skip
    finally:
        destination.terminate()
        destination.wait()
    records = events(archive, EventId.INSTANCES_TRANSFERRED, 2)
    (event,) = [event for event in records if event.action is Action.READ]
    assert event.outcome is Outcome.SUCCESS
    assert roles(event) == {
        "APPLIANCE": ("127.0.0.1", False, ParticipantRole.SOURCE),
        "STORESCP": ("127.0.0.1", False, ParticipantRole.DESTINATION),
        "MOVESCU": ("127.0.0.1", True, None),
    }
    (found,) = objects(event, ObjectKind.STUDY)
    assert (found.object_id, sum(count for _sop_class, count in found.instances)) == (mg.StudyInstanceUID, 3)


def test_a_move_to_a_destination_that_does_not_answer_is_a_serious_failure(
    archive: Daemon, samples: dict[str, list[Path]]
) -> None:
    store(archive, samples["US"])
    us = dcmread(samples["US"][0])
    run(["movescu", "-S", "-aet", "MOVESCU", "-aec", "APPLIANCE", "-aem", "STORESCP", "-k",
         "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={us.StudyInstanceUID}", "127.0.0.1",
         str(archive.port)], check=False)  # fmt: skip
    records = events(archive, EventId.INSTANCES_TRANSFERRED, 2)
    (event,) = [event for event in records if event.action is Action.READ]
    assert event.outcome is Outcome.SERIOUS_FAILURE
    assert event.outcome_description == "3 not sent"


def test_the_chain_of_a_busy_daemon_verifies(archive: Daemon, samples: dict[str, list[Path]]) -> None:
    store(archive, [path for paths in samples.values() for path in paths])
    events(archive, EventId.INSTANCES_TRANSFERRED, len({patient.name for patient in PATIENTS[:4]}))
    trail = trail_of(archive)
    assert trail.verify().intact
    trail.close()


@pytest.fixture()
def worklist(tmp_path: Path) -> Iterator[Daemon]:
    config: dict[str, Any] = archive_config(tmp_path / "data", 1)
    config["peers"].append({"ae_title": "CT_SALLE1", "host": "127.0.0.1", "rights": ["worklist"]})
    config["worklist"] = {"bind_address": "127.0.0.1", "port": 0}
    config_path = write_config(tmp_path / "a.yaml", config)
    loaded = load_config(config_path)
    engine = create_index_engine(loaded.database_url)
    upgrade_schema(engine, loaded.storage.index_directory)
    schedule(engine, loaded, new_order(1, "CT", "CT_SALLE1"), add_patient(engine, "IPP42", "MARTIN^Chloé"))
    engine.dispose()
    daemon = Daemon("appliance.daemons.worklist", config_path, tmp_path / "worklist.log").start()
    yield daemon
    daemon.stop()


def test_one_query_record_per_worklist_find(worklist: Daemon, tmp_path: Path) -> None:
    run(["findscu", "-W", "-aet", "CT_SALLE1", "-aec", "WORKLIST", "-k", "PatientID", "-k", "PatientName",
         "-k", "ScheduledProcedureStepSequence[0].Modality=CT", "127.0.0.1", str(worklist.port)])  # fmt: skip
    (query,) = events(worklist, EventId.QUERY, 1)
    assert query.outcome is Outcome.SUCCESS
    assert roles(query)["CT_SALLE1"] == ("127.0.0.1", True, ParticipantRole.SOURCE)
    assert objects(query, ObjectKind.QUERY)[0].object_id == MODALITY_WORKLIST_FIND
    assert [found.object_id.split("^")[0] for found in objects(query, ObjectKind.PATIENT)] == ["IPP42"]
