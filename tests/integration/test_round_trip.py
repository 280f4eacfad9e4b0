"""The whole scheduled workflow across the real daemons (issue 3's round trip):

order (HL7 ORM) -> worklist (findscu -W) -> images stored with that accession -> MPPS in progress
and completed -> status and image-availability messages received by a test MLLP server playing the
RIS; then an A40 merge -> C-FIND and C-GET give the surviving patient's identity.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from datagen import Patient, write_series
from hl7_client import FakeRis, MllpClient, ack_code, golden, segment_field
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from servers import Daemon, archive_config, associate, free_port, get_study, run, wait_for, write_config

MPPS = "1.2.840.10008.3.1.2.3.3"
STUDY_UID = "1.2.250.999.1.20250601.1"  # ZDS-1 of the golden order
WAIT_SECONDS = 90

A28 = (
    "MSH|^~\\&|RIS|CAB-X|PACS|CAB-X|20250601100000||ADT^A28^ADT_A05|RT-A28|P|2.5||||||UNICODE UTF-8\r"
    "EVN||20250601100000\r"
    "PID|1||IPP999^^^RIS-CAB-X^PI||LEFÈVRE^Hélène^Hélène^^Mme^^L||19790328|F|||||||||||||||||||||||PROV\r"
)
A40 = (
    "MSH|^~\\&|RIS|CAB-X|PACS|CAB-X|20250601110000||ADT^A40^ADT_A39|RT-A40|P|2.5||||||UNICODE UTF-8\r"
    "EVN||20250601110000\r"
    "PID|1||IPP999^^^RIS-CAB-X^PI||LEFÈVRE^Hélène^Hélène^^Mme^^L||19790328|F|||||||||||||||||||||||PROV\r"
    "MRG|IPP123^^^RIS-CAB-X^PI\r"
)


@pytest.fixture()
def appliance(tmp_path: Path) -> Iterator[dict[str, Any]]:
    ris_port = free_port()
    config = archive_config(tmp_path / "data", 1)
    config["peers"].append(
        {"ae_title": "MAMMO1", "host": "127.0.0.1", "rights": ["store", "worklist", "query", "retrieve"]}
    )
    config["worklist"] = {
        "bind_address": "127.0.0.1",
        "port": 0,
        "stations": [{"ae_title": "MAMMO1", "modality": "MG"}],
        "study_complete_after_seconds": 1,
    }
    config["hl7"] = {"bind_address": "127.0.0.1", "port": 0, "ris": {"host": "127.0.0.1", "port": ris_port,
                     "retry_initial_seconds": 1, "retry_maximum_seconds": 2}}  # fmt: skip
    config_path = write_config(tmp_path / "appliance.yaml", config)
    daemons = {
        name: Daemon(module, config_path, tmp_path / f"{name}.log").start()
        for name, module in (
            ("hl7", "appliance.daemons.hl7"),
            ("worklist", "appliance.daemons.worklist"),
            ("dicom", "appliance.daemons.archive"),
            ("worker", "appliance.daemons.worker"),
        )
    }
    ris = FakeRis(ris_port).start()
    try:
        yield {"daemons": daemons, "ris": ris, "config": config_path}
    finally:
        ris.stop()
        for daemon in daemons.values():
            daemon.stop()


def performed_step(status: str) -> Dataset:
    step = Dataset()
    scheduled = Dataset()
    scheduled.AccessionNumber = "ACC0001"
    scheduled.StudyInstanceUID = STUDY_UID
    step.ScheduledStepAttributesSequence = Sequence([scheduled])
    step.PerformedProcedureStepStatus = status
    step.Modality = "MG"
    return step


def test_order_to_worklist_to_images_to_mpps_to_ris_then_merge(appliance: dict[str, Any], tmp_path: Path) -> None:
    hl7, worklist, dicom = (appliance["daemons"][name] for name in ("hl7", "worklist", "dicom"))
    ris: FakeRis = appliance["ris"]
    with MllpClient(hl7.port) as client:
        assert ack_code(client.send(golden("orm_zds_8859-15.hl7"))) == "AA"

    found = tmp_path / "worklist"
    found.mkdir()
    run(["findscu", "-W", "-aet", "MAMMO1", "-aec", "APPLIANCE_MWL", "-X", "-od", str(found), "-k", "PatientName",
         "-k", "PatientID", "-k", "AccessionNumber", "-k", "StudyInstanceUID",
         "-k", "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20250601",
         "127.0.0.1", str(worklist.port)])  # fmt: skip
    (item,) = [dcmread(path) for path in found.iterdir()]
    assert (item.AccessionNumber, item.StudyInstanceUID, item.PatientID) == ("ACC0001", STUDY_UID, "IPP123")

    mpps = associate(dicom.port, MPPS, ae_title="MAMMO1")
    uid = "1.2.826.0.1.3680043.10.1471.77.1"
    assert mpps.send_n_create(performed_step("IN PROGRESS"), MPPS, uid)[0].Status == 0x0000
    typed = Patient("IPP123", str(item.PatientName), "19790328", "F", "ISO_IR 192")
    images = write_series(tmp_path / "mg", 2, "MG", typed, study_uid=STUDY_UID, accession_number="ACC0001")
    run(["storescu", "-aet", "MAMMO1", "-aec", "APPLIANCE", "127.0.0.1", str(dicom.port), *map(str, images)])
    completed = Dataset()
    completed.PerformedProcedureStepStatus = "COMPLETED"
    assert mpps.send_n_set(completed, MPPS, uid)[0].Status == 0x0000
    mpps.release()

    wait_for(lambda: len(ris.received) >= 3, "in-progress, completed and images-available at the RIS", WAIT_SECONDS)
    assert [segment_field(message, "ORC", 5) for message in ris.received[:3]] == ["IP", "CM", "A"]
    assert all(segment_field(message, "OBR", 18) == "ACC0001" for message in ris.received[:3])

    with MllpClient(hl7.port) as client:
        assert ack_code(client.send(A28.encode("utf-8"))) == "AA"
        assert ack_code(client.send(A40.encode("utf-8"))) == "AA"

    answers = tmp_path / "find"
    answers.mkdir()
    run(["findscu", "-S", "-aet", "MAMMO1", "-aec", "APPLIANCE", "-X", "-od", str(answers),
         "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={STUDY_UID}", "-k", "PatientID",
         "-k", "PatientName", "127.0.0.1", str(dicom.port)])  # fmt: skip
    (study,) = [dcmread(path) for path in answers.iterdir()]
    assert (study.PatientID, str(study.PatientName)) == ("IPP999", "LEFÈVRE^Hélène")

    retrieved = get_study(
        dicom.port, tmp_path / "get", "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={STUDY_UID}", calling="MAMMO1"
    )
    copies = [dcmread(path) for path in retrieved]
    assert len(copies) == 2
    for copy in copies:
        assert (copy.PatientID, str(copy.PatientName)) == ("IPP999", "LEFÈVRE^Hélène")
        assert copy.OriginalAttributesSequence[0].ModifiedAttributesSequence[0].PatientID == "IPP123"
