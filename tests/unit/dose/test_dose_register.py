"""The register filled from the change feed: objects stored through the real ingest, then the
consumer's rounds. A malformed SR is recorded with its reason, still archived, and the feed goes on;
a CT dose screen is listed as not readable; a merge moves the dose with the study."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from datagen import PATIENTS, encoded, make_instance
from dose_reports import CtAcquisition, ct_dose_report, radiography_dose_report, study_image
from pydicom.dataset import Dataset
from sqlalchemy import Engine, select

from appliance.archive.index import Index
from appliance.archive.ingest import IncomingObject, Ingest, StoreOutcome
from appliance.archive.storage import FileStore
from appliance.config import development_config
from appliance.db.schema import dose_event, dose_report
from appliance.dose.listing import not_read
from appliance.dose.register import register_round
from appliance.dose.survey import survey
from appliance.patients.identities import Identifier, IdentityPolicy, PatientIdentity, Source, merge_patients

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


@pytest.fixture()
def files(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "data", 0)


def store(engine: Engine, files: FileStore, dataset: Dataset) -> None:
    incoming = IncomingObject(encoded(dataset), dataset.SOPInstanceUID, dataset.SOPClassUID, "MODALITY")
    assert Ingest(files, Index(engine)).store(incoming).outcome is StoreOutcome.STORED


def rows(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(select(dose_report).order_by(dose_report.c.id))]


def test_a_stored_ct_report_fills_the_register_once(engine: Engine, files: FileStore) -> None:
    image = study_image("CT", description="Scanner encéphale")
    store(engine, files, image)
    store(
        engine,
        files,
        ct_dose_report(image, [CtAcquisition("Encéphale", 48.5, 820.0), CtAcquisition("Encéphale C+", 47.0, 790.0)]),
    )
    dose = development_config(files.data_directory).dose
    counts = register_round(engine, files, dose)
    assert (counts.read, counts.unreadable, counts.seen) == (1, 0, 2)
    assert register_round(engine, files, dose).seen == 0  # the cursor moved past them
    [report] = rows(engine)
    assert (report["status"], report["procedure"], report["events"], report["dlp_total_mgy_cm"]) == (
        "read",
        "ct",
        2,
        1610.0,
    )
    assert report["study_instance_uid"] == image.StudyInstanceUID
    with engine.connect() as connection:
        events = connection.execute(
            select(dose_event.c.protocol, dose_event.c.ctdi_vol_mgy).order_by(dose_event.c.number)
        ).all()
    assert [tuple(event) for event in events] == [("Encéphale", 48.5), ("Encéphale C+", 47.0)]


def test_a_malformed_sr_is_recorded_with_its_reason_archived_and_the_feed_goes_on(
    engine: Engine, files: FileStore
) -> None:
    image = study_image("DX")
    broken = radiography_dose_report(image, [("Thorax face", 0.0012)])
    del broken.ContentSequence[1].ContentSequence[0].MeasuredValueSequence  # a NUM without its value
    broken.ContentSequence[1].ContentSequence[0].ValueType = "BOGUS"
    after = radiography_dose_report(study_image("DX", PATIENTS[1]), [("Thorax face", 0.0015)])
    for dataset in (image, broken, after):
        store(engine, files, dataset)
    counts = register_round(engine, files, development_config(files.data_directory).dose)
    assert (counts.read, counts.unreadable) == (1, 1)
    unreadable = [row for row in rows(engine) if row["status"] == "unreadable"]
    assert [(row["sop_instance_uid"], row["problem"]) for row in unreadable] == [
        (broken.SOPInstanceUID, "unreadable-content")
    ]
    assert "BOGUS" in str(unreadable[0]["detail"])
    assert Index(engine).stored_instance(broken.SOPInstanceUID) is not None  # still archived, as received
    listed = not_read(engine, date(2026, 1, 1), date(2026, 12, 31))
    assert [(found.status, found.problem, found.patient_id) for found in listed] == [
        ("unreadable", "unreadable-content", "IPP0001")
    ]


def test_a_ct_with_only_its_dose_screen_is_listed_as_not_readable(engine: Engine, files: FileStore) -> None:
    image = study_image("CT", PATIENTS[2])
    screen = make_instance("CT", PATIENTS[2], study_uid=image.StudyInstanceUID, accession_number=image.AccessionNumber)
    screen.SOPClassUID = screen.file_meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    screen.SeriesDescription = "Dose Report"
    for dataset in (image, screen):
        store(engine, files, dataset)
    assert register_round(engine, files, development_config(files.data_directory).dose).screens == 1
    [listed] = not_read(engine, date(2026, 11, 1), date(2026, 11, 30))
    assert (listed.status, listed.study_instance_uid) == ("screen", image.StudyInstanceUID)
    store(engine, files, ct_dose_report(image, [CtAcquisition("Encéphale", 48.5, 820.0)]))
    register_round(engine, files, development_config(files.data_directory).dose)
    assert not_read(engine, date(2026, 11, 1), date(2026, 11, 30)) == []  # the report arrived: readable now


def test_the_register_follows_a_merge(engine: Engine, files: FileStore) -> None:
    image = study_image("CT", PATIENTS[3], description="Scanner encéphale")
    store(engine, files, image)
    store(engine, files, ct_dose_report(image, [CtAcquisition("Encéphale", 70.0, 1100.0)]))
    dose = development_config(files.data_directory).dose
    register_round(engine, files, dose)
    surviving = PatientIdentity(
        ipp=Identifier("IPP9999", "CABINET", "", "PI"),
        birth_name="MARTIN",
        first_given_name="Noël",
        given_names="Noël",
        sex="M",
        birth_date="19520101",
    )
    with engine.begin() as connection:
        merge_patients(
            connection,
            surviving,
            Identifier("IPP0004", "CABINET", "", "PI"),
            Source("RIS", "CAB", "ADT^A40", "M1"),
            IdentityPolicy(refuse_test_ins=True),
        )
    head = dose.exam_type("ct-head")
    assert head is not None
    [found] = survey(engine, head, date(2026, 11, 1), date(2026, 11, 30)).above()
    assert found.patient_id == "IPP9999"
