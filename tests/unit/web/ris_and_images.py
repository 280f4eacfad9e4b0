"""Real data for the console's pages, put in through the real edges' domain calls: HL7 messages
through the HL7 receiver (patients, orders, the inbox), images through the archive's ingest."""

from __future__ import annotations

import sys
from pathlib import Path

from pydicom.uid import generate_uid
from sqlalchemy import Engine, select

sys.path.insert(0, str(Path(__file__).parents[2]))

from datagen import PATIENTS, Patient, encoded, make_instance
from hl7_client import golden

from appliance.archive.index import Index
from appliance.archive.ingest import IncomingObject, Ingest, StoreOutcome
from appliance.archive.storage import FileStore
from appliance.config import development_config
from appliance.daemons.hl7 import build_receiver
from appliance.db.schema import scheduled_step

RIS_PATIENT = "IPP1001"  # ŒUVRARD Chloé, from a28_utf8.hl7, INS 180017512345678 (qualified)
RIS_ISSUER = "RIS-CAB-X"
ORDERED_PATIENT = "IPP123"  # PAT-TROIS Dominique, from orm_zds_8859-15.hl7 (accession ACC0001)


def receive(engine: Engine, tmp_path: Path, *names: str) -> list[bytes]:
    """Each golden message through the HL7 receiver (the worklist's own order handling); the ACKs."""
    receiver = build_receiver(engine, development_config(tmp_path / "hl7"))
    return [receiver.receive(golden(name), "192.0.2.10") for name in names]


def ingest_study(
    engine: Engine, tmp_path: Path, patient: Patient, accession_number: str, images: int = 2, issuer: str = "CABINET"
) -> str:
    """A new study of `images` MR images stored through the archive's ingest (under the console's data
    folder, so that DICOMweb finds the files); its Study Instance UID."""
    ingest = Ingest(FileStore(tmp_path / "data", 0), Index(engine))
    study_uid, series_uid = generate_uid(), generate_uid()
    for number in range(1, images + 1):
        dataset = make_instance("MR", patient, study_uid, series_uid, number, accession_number=accession_number)
        dataset.Rows = dataset.Columns = 8
        dataset.PixelData = b"\0" * 128
        if issuer:
            dataset.IssuerOfPatientID = issuer
        else:
            del dataset.IssuerOfPatientID
        incoming = IncomingObject(encoded(dataset), dataset.SOPInstanceUID, dataset.SOPClassUID, "MR1")
        assert ingest.store(incoming).outcome == StoreOutcome.STORED
    return study_uid


def practice(engine: Engine, tmp_path: Path) -> dict[str, str]:
    """A patient from the RIS (A28), a study of an unknown patient without order (MARTIN Noël,
    IPP0004), and a study of the RIS patient whose accession the RIS then orders for another patient
    (so it stays apart). The two waiting studies' UIDs, by reason."""
    receive(engine, tmp_path, "a28_utf8.hl7")
    unordered = ingest_study(engine, tmp_path, PATIENTS[3], "NOORDER", images=3)
    ris_patient = Patient(RIS_PATIENT, "OEUVRARD^Chloe", "19800115", "F", "ISO_IR 100")
    ordered_elsewhere = ingest_study(engine, tmp_path, ris_patient, "ACC0001", issuer="")
    receive(engine, tmp_path, "orm_zds_8859-15.hl7")
    return {"no order": unordered, "ordered elsewhere": ordered_elsewhere}


def step_of(engine: Engine, accession_number: str) -> int:
    with engine.connect() as connection:
        found = connection.execute(
            select(scheduled_step.c.id).where(scheduled_step.c.accession_number == accession_number)
        ).scalar_one()
    return int(found)
