"""Key Object Selection documents (K1): made from flagged images through the ordinary ingest, read
back with pydicom, listed per study; the identity they carry is the current one after an A40 merge."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest
from datagen import PATIENTS, encoded, make_instance, make_key_object_selection
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import Engine, select

from appliance.archive.index import Index
from appliance.archive.ingest import IncomingObject, Ingest, StoreOutcome
from appliance.archive.key_images import (
    KEY_OBJECT_SELECTION,
    Author,
    FlaggedImage,
    KeyImageError,
    create_key_object,
    key_objects,
)
from appliance.archive.search import Query, find
from appliance.archive.storage import FileStore
from appliance.db.schema import instance
from appliance.patients.identities import IdentityPolicy, PatientIdentity, Source, merge_patients
from appliance.patients.national import Identifier

RADIOLOGIST = Author("e.bertrand", "Étienne Bertrand")


@pytest.fixture()
def ingest(engine: Engine, tmp_path: Path) -> Ingest:
    return Ingest(FileStore(tmp_path / "data", 0), Index(engine))


def store_study(ingest: Ingest, modality: str = "CT", count: int = 3, patient_index: int = 0) -> list[Dataset]:
    study_uid, series_uid = generate_uid(), generate_uid()
    images = []
    for number in range(1, count + 1):
        dataset = make_instance(modality, PATIENTS[patient_index], study_uid, series_uid, number)
        incoming = IncomingObject(encoded(dataset), dataset.SOPInstanceUID, dataset.SOPClassUID, "CT_SALLE1")
        assert ingest.store(incoming).outcome is StoreOutcome.STORED
        images.append(dataset)
    return images


def flagged(*images: Dataset) -> list[FlaggedImage]:
    return [FlaggedImage(image.SeriesInstanceUID, image.SOPInstanceUID) for image in images]


def stored_document(engine: Engine, ingest: Ingest, sop_instance_uid: str) -> Dataset:
    with engine.connect() as connection:
        path = connection.scalar(select(instance.c.path).where(instance.c.sop_instance_uid == sop_instance_uid))
    return dcmread(ingest.files.absolute(str(path)))


def test_a_new_key_object_references_the_flagged_images_in_a_new_series(engine: Engine, ingest: Ingest) -> None:
    images = store_study(ingest)
    created = create_key_object(
        engine,
        ingest,
        images[0].StudyInstanceUID,
        flagged(images[0], images[2]),
        "113000",
        "Nodule du lobe supérieur droit",
        RADIOLOGIST,
        "Cabinet des Tilleuls",
        "APPLIANCE",
    )
    document = stored_document(engine, ingest, created.key_object.sop_instance_uid)
    assert document.SOPClassUID == KEY_OBJECT_SELECTION and document.Modality == "KO"
    assert document.StudyInstanceUID == images[0].StudyInstanceUID
    assert document.SeriesInstanceUID not in {image.SeriesInstanceUID for image in images}
    assert document.SeriesNumber == 900
    assert document.PatientName == "ŒUVRARD^Chloé" and document.PatientID == "IPP0001"
    assert document.ConceptNameCodeSequence[0].CodeValue == "113000"
    assert document.ConceptNameCodeSequence[0].CodingSchemeDesignator == "DCM"
    assert document.ContentTemplateSequence[0].TemplateIdentifier == "2010"
    evidence = document.CurrentRequestedProcedureEvidenceSequence
    assert len(evidence) == 1 and evidence[0].StudyInstanceUID == images[0].StudyInstanceUID
    referenced = evidence[0].ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == images[0].SeriesInstanceUID
    assert [item.ReferencedSOPInstanceUID for item in referenced.ReferencedSOPSequence] == [
        images[0].SOPInstanceUID,
        images[2].SOPInstanceUID,
    ]
    assert document.ReferencedRequestSequence[0].AccessionNumber == "ACC0001"
    image_items = [item for item in document.ContentSequence if item.ValueType == "IMAGE"]
    assert [item.ReferencedSOPSequence[0].ReferencedSOPClassUID for item in image_items] == [images[0].SOPClassUID] * 2
    listed = key_objects(engine, images[0].StudyInstanceUID)
    assert [entry.sop_instance_uid for entry in listed] == [created.key_object.sop_instance_uid]
    assert listed[0].title == "Of Interest" and listed[0].note == "Nodule du lobe supérieur droit"
    assert listed[0].observer == "Étienne Bertrand"
    assert listed[0].images == tuple(flagged(images[0], images[2]))


def test_the_new_document_is_found_at_the_image_level_like_any_stored_object(engine: Engine, ingest: Ingest) -> None:
    images = store_study(ingest)
    created = create_key_object(
        engine, ingest, images[0].StudyInstanceUID, flagged(images[1]), "113004", "", RADIOLOGIST, "", "APPLIANCE"
    )
    keys = {"StudyInstanceUID": images[0].StudyInstanceUID, "SOPClassUID": "", "SOPInstanceUID": ""}
    found = find(engine, Query("IMAGE", keys), 100)
    assert created.key_object.sop_instance_uid in {row["SOPInstanceUID"] for row in found}
    assert key_objects(engine, images[0].StudyInstanceUID)[0].title == "For Teaching"
    assert key_objects(engine, images[0].StudyInstanceUID)[0].note == ""


def test_frames_of_a_multi_frame_instance_are_referenced_by_number(engine: Engine, ingest: Ingest) -> None:
    (cine,) = store_study(ingest, "US", 1, patient_index=1)
    frames = [FlaggedImage(cine.SeriesInstanceUID, cine.SOPInstanceUID, frame) for frame in (2, 4)]
    created = create_key_object(
        engine, ingest, cine.StudyInstanceUID, frames, "113000", "", RADIOLOGIST, "", "APPLIANCE"
    )
    document = stored_document(engine, ingest, created.key_object.sop_instance_uid)
    (item,) = [item for item in document.ContentSequence if item.ValueType == "IMAGE"]
    assert list(item.ReferencedSOPSequence[0].ReferencedFrameNumber) == [2, 4]
    assert key_objects(engine, cine.StudyInstanceUID)[0].images == tuple(frames)


def test_the_identity_written_is_the_current_one_after_a_merge(engine: Engine, ingest: Ingest) -> None:
    images = store_study(ingest, patient_index=1)  # DUPONT^Jean-François, IPP0002 (CABINET)
    surviving = PatientIdentity(
        ipp=Identifier("IPP0777", "CABINET", "", "PI"),
        birth_name="DUPONT-MOREAU",
        first_given_name="Jean-François",
        sex="M",
        birth_date="19750203",
        identity_status=("VALI",),
    )
    with engine.begin() as connection:
        merged = merge_patients(
            connection,
            surviving,
            Identifier("IPP0002", "CABINET", "", "PI"),
            Source("RIS", "CAB", "ADT^A40", "M1"),
            IdentityPolicy(refuse_test_ins=True),
        )
    assert merged.outcome.applied
    created = create_key_object(
        engine, ingest, images[0].StudyInstanceUID, flagged(images[0]), "113000", "", RADIOLOGIST, "", "APPLIANCE"
    )
    document = stored_document(engine, ingest, created.key_object.sop_instance_uid)
    assert document.PatientID == "IPP0777" and str(document.PatientName).startswith("DUPONT-MOREAU^Jean-François")
    assert created.patient_id == "IPP0777"


@pytest.mark.parametrize(
    ("title", "images", "message"),
    [
        ("113001", None, "not one of the CID 7010 titles"),  # a rejection note is not a key-image title
        ("113000", [], "no image flagged"),
        ("113000", [FlaggedImage("1.2.3", "1.2.3.4")], "is not an instance of this study"),
    ],
)
def test_bad_requests_make_no_document(
    engine: Engine, ingest: Ingest, title: str, images: list[FlaggedImage] | None, message: str
) -> None:
    study = store_study(ingest, count=1)
    chosen = flagged(study[0]) if images is None else images
    with pytest.raises(KeyImageError, match=message):
        create_key_object(engine, ingest, study[0].StudyInstanceUID, chosen, title, "", RADIOLOGIST, "", "APPLIANCE")
    assert key_objects(engine, study[0].StudyInstanceUID) == []


def test_a_kos_received_from_a_modality_is_listed_too(engine: Engine, ingest: Ingest) -> None:
    images = store_study(ingest, count=2)
    received = make_key_object_selection(images)
    buffer = io.BytesIO()
    received.save_as(buffer, enforce_file_format=True)
    outcome = ingest.store(IncomingObject(buffer.getvalue(), received.SOPInstanceUID, KEY_OBJECT_SELECTION, "WS"))
    assert outcome.outcome is StoreOutcome.STORED
    (listed,) = key_objects(engine, images[0].StudyInstanceUID)
    assert listed.title == "Of Interest" and listed.note.startswith("Nodule du lobe supérieur droit")
    assert {image.sop_instance_uid for image in listed.images} == {image.SOPInstanceUID for image in images}


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dicom3tools' dciodvfy is not installed")
def test_the_document_is_valid_for_dciodvfy(engine: Engine, ingest: Ingest) -> None:
    """David Clunie's dciodvfy checks the KOS IOD (PS3.3 A.35.4) and its modules: no error."""
    images = store_study(ingest, count=2)
    created = create_key_object(
        engine, ingest, images[0].StudyInstanceUID, flagged(*images), "113000", "Note", RADIOLOGIST, "Cab", "APP"
    )
    with engine.connect() as connection:
        path = connection.scalar(
            select(instance.c.path).where(instance.c.sop_instance_uid == created.key_object.sop_instance_uid)
        )
    checked = subprocess.run(
        ["dciodvfy", "-new", str(ingest.files.absolute(str(path)))], capture_output=True, text=True, timeout=60
    )
    report = checked.stdout + checked.stderr
    assert "KeyObjectSelectionDocument" in report
    assert [line for line in report.splitlines() if line.startswith("Error")] == [], report
