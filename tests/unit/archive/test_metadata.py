"""Instance DICOM JSON made at ingest, and served with the identity and syntax in force now."""

from __future__ import annotations

import copy
import io
import json
from datetime import timedelta
from pathlib import Path

from datagen import PATIENTS, encoded, make_instance
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGLSLossless, generate_uid
from sqlalchemy import Engine, delete, update

from appliance.archive.index import Index
from appliance.archive.ingest import Ingest, StoreOutcome
from appliance.archive.integrity import reindex
from appliance.archive.lossless import LosslessCompressor
from appliance.archive.metadata import IDENTITY_TAGS, MEMBERS, PIXEL_DATA, Scope, instance_document, metadata
from appliance.archive.storage import FileStore
from appliance.db.schema import instance_metadata, patient

BASE = "https://pacs.cabinet.lan/dicomweb"


def archive_series(engine: Engine, tmp_path: Path, count: int = 3) -> tuple[Ingest, str, str]:
    ingest = Ingest(FileStore(tmp_path / "data", 0), Index(engine))
    study_uid, series_uid = generate_uid(), generate_uid()
    for number in range(1, count + 1):
        dataset = make_instance("CT", PATIENTS[0], study_uid, series_uid, number)
        assert ingest.store_object(encoded(dataset), "TEST").outcome is StoreOutcome.STORED
    return ingest, study_uid, series_uid


def served(engine: Engine, scope: Scope) -> list[dict[str, dict[str, object]]]:
    text = metadata(engine, scope, BASE)
    assert text is not None
    found: list[dict[str, dict[str, object]]] = json.loads(text)
    return found


def test_series_metadata_is_the_instances_json_in_order(engine: Engine, tmp_path: Path) -> None:
    _, study_uid, series_uid = archive_series(engine, tmp_path)
    documents = served(engine, Scope(study_uid, series_uid))
    assert [document["00200013"]["Value"] for document in documents] == [[1], [2], [3]]
    first = documents[0]
    assert first["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "ŒUVRARD^Chloé"}]}
    assert first["00281050"]["Value"] == [40.0] and first["00280010"]["Value"] == [512]
    assert first["00020010"]["Value"] == [ExplicitVRLittleEndian]
    sop = first["00080018"]["Value"][0]  # type: ignore[index]
    pixel_data = first["7FE00010"]
    assert pixel_data == {
        "vr": "OW",
        "BulkDataURI": f"{BASE}/studies/{study_uid}/series/{series_uid}/instances/{sop}/frames/1",
    }
    assert metadata(engine, Scope(generate_uid()), BASE) is None
    assert len(served(engine, Scope(study_uid))) == 3
    assert len(served(engine, Scope(study_uid, series_uid, str(sop)))) == 1


def test_the_identity_served_is_the_current_one(engine: Engine, tmp_path: Path) -> None:
    _, study_uid, series_uid = archive_series(engine, tmp_path, count=1)
    with engine.begin() as connection:
        connection.execute(update(patient).values(patient_id="IPP-RIS", patient_name="CŒUR^Éléonore"))
    (document,) = served(engine, Scope(study_uid, series_uid))
    assert document["00100020"]["Value"] == ["IPP-RIS"]
    assert document["00100010"]["Value"] == [{"Alphabetic": "CŒUR^Éléonore"}]


def test_compression_changes_the_syntax_served_and_reindex_rebuilds(engine: Engine, tmp_path: Path) -> None:
    ingest, study_uid, series_uid = archive_series(engine, tmp_path, count=2)
    report = LosslessCompressor(ingest.index, ingest.files, JPEGLSLossless, timedelta(0)).run_once(executor=None)
    assert report.compressed == 2
    documents = served(engine, Scope(study_uid, series_uid))
    assert {str(document["00020010"]["Value"][0]) for document in documents} == {JPEGLSLossless}  # type: ignore[index]
    assert {document["7FE00010"]["vr"] for document in documents} == {"OB"}
    with engine.begin() as connection:  # as an archive from before the documents were made at ingest
        connection.execute(delete(instance_metadata))
    assert served(engine, Scope(study_uid, series_uid))[0]["00280010"]["Value"] == [512]  # from the header
    reindex(engine, ingest.files)
    with engine.connect() as connection:
        assert len(connection.execute(instance_metadata.select()).all()) == 2
    assert served(engine, Scope(study_uid, series_uid)) == documents


def test_documents_are_pydicoms_json_whether_elements_are_remembered_or_not() -> None:
    """The members kept from earlier objects (`MEMBERS`) change nothing: each document is what
    pydicom's `to_json_dict` gives, for every modality, character set and VR encoding."""

    def pydicoms(encoded_object: bytes) -> str:
        elements = dcmread(io.BytesIO(encoded_object), stop_before_pixels=True).to_json_dict(suppress_invalid_tags=True)
        for tag in IDENTITY_TAGS | {PIXEL_DATA}:
            elements.pop(tag, None)
        return json.dumps(elements, ensure_ascii=False, separators=(",", ":"))[1:-1]

    objects = []
    for modality in ("CT", "MR", "US"):
        for patient_data in PATIENTS:
            image = make_instance(modality, patient_data)
            implicit = copy.deepcopy(image)
            implicit.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
            objects += [encoded(image), encoded(implicit)]
    MEMBERS.clear()
    for _ in range(2):  # converted, then remembered
        for encoded_object in objects:
            made = instance_document(dcmread(io.BytesIO(encoded_object), stop_before_pixels=True), True)
            assert made.document == pydicoms(encoded_object)
    assert MEMBERS
