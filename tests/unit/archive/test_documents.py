"""Each instance's DICOM JSON made by the worker after a C-STORE (`archive.documents`), the same
document the ingest made before; DICOMweb metadata complete in the meantime."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from datagen import PATIENTS, encoded, make_instance
from pydicom.uid import generate_uid
from sqlalchemy import Engine, delete, insert, select

from appliance.archive import documents
from appliance.archive.attributes import read_attributes
from appliance.archive.changes import Feed
from appliance.archive.index import Index
from appliance.archive.ingest import IncomingObject, Ingest, StoreOutcome
from appliance.archive.metadata import Scope, metadata
from appliance.archive.storage import FileStore
from appliance.db.schema import instance, instance_metadata

BASE = "https://pacs.cabinet.lan/dicomweb"


def c_stored(
    engine: Engine, tmp_path: Path, count: int, modality: str = "CT", pixels: bool = True
) -> tuple[Scope, list[bytes]]:
    """`count` images of one new series archived as a C-STORE archives them (`Ingest.store`)."""
    ingest = Ingest(FileStore(tmp_path / "data", 0), Index(engine))
    study_uid, series_uid = generate_uid(), generate_uid()
    objects = []
    for number in range(1, count + 1):
        dataset = make_instance(modality, PATIENTS[number % 2], study_uid, series_uid, number)
        if not pixels:  # an image's description without its pixels: no BulkDataURI for it
            del dataset.PixelData
        data = encoded(dataset)
        incoming = IncomingObject(data, str(dataset.SOPInstanceUID), str(dataset.SOPClassUID), "MODALITY")
        assert ingest.store(incoming).outcome is StoreOutcome.STORED
        objects.append(data)
    return Scope(study_uid, series_uid), objects


def stored_documents(engine: Engine) -> dict[str, tuple[str, str]]:
    """SOP Instance UID -> (document, pixel data VR) of every stored document."""
    statement = select(instance.c.sop_instance_uid, instance_metadata.c.document, instance_metadata.c.pixel_data_vr)
    with engine.connect() as connection:
        rows = connection.execute(statement.join(instance, instance.c.id == instance_metadata.c.instance_pk))
        return {row.sop_instance_uid: (row.document, row.pixel_data_vr) for row in rows}


def served(engine: Engine, scope: Scope) -> Any:
    text = metadata(engine, scope, BASE)
    assert text is not None
    return json.loads(text)


@pytest.mark.parametrize(("modality", "pixels"), [("CT", True), ("MR", True), ("CT", False)])
def test_the_worker_makes_the_document_the_ingest_made_and_metadata_is_whole_meanwhile(
    engine: Engine, tmp_path: Path, modality: str, pixels: bool
) -> None:
    scope, objects = c_stored(engine, tmp_path, 3, modality, pixels)
    assert stored_documents(engine) == {}  # the acknowledgement did not wait for them
    meanwhile = served(engine, scope)  # made from the headers the index kept
    assert [document["00200013"]["Value"] for document in meanwhile] == [[1], [2], [3]]
    assert documents.documents_round(engine) == 0  # all of the feed read: the loop takes its pause
    expected = {}
    for data in objects:
        attributes = read_attributes(data)  # what the ingest stored before (and STOW-RS still does)
        assert attributes.document is not None
        expected[attributes.sop_instance_uid] = (attributes.document.document, attributes.document.pixel_data_vr)
    assert stored_documents(engine) == expected
    assert served(engine, scope) == meanwhile
    assert all(("7FE00010" in document) == pixels for document in meanwhile)  # a BulkDataURI only for pixels
    assert documents.documents_round(engine, limit=1) == 0  # nothing new in the feed


def test_a_document_another_writer_stored_first_is_kept_and_the_round_done_again(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lossless compressor stores the document of its new file; if it does so between the
    round's reading and its writing, the round stores nothing, keeps its cursor, and the next one
    makes only the documents still missing."""
    scope, _objects = c_stored(engine, tmp_path, 2)
    with engine.connect() as connection:
        first = connection.execute(select(instance.c.id).order_by(instance.c.id)).scalars().first()
    found = documents.missing_documents

    def rival_comes_first(engine: Engine, uids: list[str]) -> Any:
        made = found(engine, uids)
        with engine.begin() as connection:
            connection.execute(insert(instance_metadata).values(instance_pk=first, document="", pixel_data_vr="OB"))
        return made

    monkeypatch.setattr(documents, "missing_documents", rival_comes_first)
    assert documents.documents_round(engine) == 0
    assert Feed(engine, documents.CONSUMER, ()).cursor() == 0
    monkeypatch.setattr(documents, "missing_documents", found)
    assert documents.documents_round(engine, limit=1) == 1  # a full page: more may be waiting
    assert documents.documents_round(engine, limit=1) == 1
    assert documents.documents_round(engine, limit=1) == 0
    assert Feed(engine, documents.CONSUMER, ()).cursor() > 0
    kept = {document: vr for document, vr in stored_documents(engine).values()}
    assert kept.get("") == "OB" and len(kept) == 2
    assert len(served(engine, scope)) == 2


def test_an_instance_deleted_before_its_round_is_passed_over(engine: Engine, tmp_path: Path) -> None:
    _scope, objects = c_stored(engine, tmp_path, 2)
    gone = read_attributes(objects[0]).sop_instance_uid
    with engine.begin() as connection:
        connection.execute(delete(instance).where(instance.c.sop_instance_uid == gone))
    assert documents.documents_round(engine) == 0
    assert list(stored_documents(engine)) == [read_attributes(objects[1]).sop_instance_uid]


def test_a_header_the_ingest_reader_refuses_now_is_read_as_pydicom_reads_it(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _scope, objects = c_stored(engine, tmp_path, 1)

    def refused(header: bytes) -> Any:
        raise ValueError("not this time")

    monkeypatch.setattr(documents, "checked_header", refused)
    assert documents.documents_round(engine) == 0
    made = read_attributes(objects[0]).document
    assert made is not None
    assert list(stored_documents(engine).values()) == [(made.document, made.pixel_data_vr)]
