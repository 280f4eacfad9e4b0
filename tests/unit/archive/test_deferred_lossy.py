"""Lossy compression in the deferred tier (R1, `tiers.lossy`): off by default (the deferred copy is
bit-exact); on, each image that moves becomes a checked lossy copy, a new instance flagged in its
header (PS3.3 C.7.6.1.1.5) and in the index, still found and retrieved, while reports and key
object selections (no pixels) and images already lossy move bit-exact."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from datagen import PATIENTS, encoded, jpeg_baseline, make_enhanced_sr, make_instance, make_key_object_selection
from pydicom import Dataset, dcmread
from pydicom.uid import JPEG2000, ExplicitVRLittleEndian, JPEGLSNearLossless
from sqlalchemy import Engine, select

from appliance.archive import lossy, tiers
from appliance.archive.deferred import FolderStore
from appliance.archive.index import Index
from appliance.archive.ingest import IncomingObject, Ingest, StoreOutcome
from appliance.archive.lossy import LossyCopyRefused, LossyPolicy
from appliance.archive.metadata import Scope, metadata
from appliance.archive.retrieve import payload, plan, source
from appliance.archive.search import Query, find
from appliance.archive.storage import FileStore
from appliance.config import development_config
from appliance.db.schema import instance, instance_header
from appliance.qc import compression
from appliance.qc.report import Status

TODAY = date(2026, 12, 4)
STUDY_DATE = "20220110"
JPEG_2000 = LossyPolicy("jpeg-2000", 10, 2)
NEAR_LOSSLESS = LossyPolicy("jpeg-ls-near-lossless", 10, 2)


def store(engine: Engine, files: FileStore, dataset: Dataset) -> bytes:
    data = encoded(dataset)
    incoming = IncomingObject(data, dataset.SOPInstanceUID, dataset.SOPClassUID, "TEST")
    assert Ingest(files, Index(engine)).store(incoming).outcome == StoreOutcome.STORED
    return data


@pytest.fixture()
def files(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "data", 0, FolderStore(tmp_path / "nas"))


@pytest.fixture()
def nas(files: FileStore) -> FolderStore:
    assert isinstance(files.deferred, FolderStore)
    return files.deferred


def old_study(engine: Engine, files: FileStore, images: int = 3) -> tuple[list[Dataset], dict[str, bytes]]:
    """An old CT study: `images` images, a key object selection and an SR flagging them."""
    first = make_instance("CT", PATIENTS[0], study_date=STUDY_DATE)
    datasets = [
        make_instance("CT", PATIENTS[0], study_uid=first.StudyInstanceUID, series_uid=first.SeriesInstanceUID,
                      instance_number=number, study_date=STUDY_DATE)
        for number in range(1, images + 1)
    ]  # fmt: skip
    for dataset in datasets:
        dataset.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    datasets += [make_key_object_selection(datasets[:2]), make_enhanced_sr(datasets[:1])]
    return datasets, {str(dataset.SOPInstanceUID): store(engine, files, dataset) for dataset in datasets}


def rows(engine: Engine) -> dict[str, Any]:
    """The instance rows by SOP Instance UID."""
    with engine.connect() as connection:
        return {row.sop_instance_uid: row for row in connection.execute(select(instance))}


def retrieved(engine: Engine, files: FileStore, study_uid: str) -> dict[str, bytes]:
    """Each instance of the study as served to a receiver taking the stored syntax or uncompressed."""
    found = plan(engine, Query("STUDY", {"StudyInstanceUID": study_uid}))
    served = {}
    for item in found.items:
        accepted = [item.transfer_syntax_uid, ExplicitVRLittleEndian]
        chosen = payload(source(files, item), item, found.coercion_for(item), accepted)
        assert chosen.path is not None
        served[item.sop_instance_uid] = chosen.path.read_bytes()
    return served


def test_lossy_compression_is_off_by_default_and_the_copy_bit_exact(
    engine: Engine, files: FileStore, nas: FolderStore, tmp_path: Path
) -> None:
    assert LossyPolicy.of(development_config(tmp_path / "dev").tiers) is None
    datasets, sent = old_study(engine, files)
    tiers.move_due(engine, files, nas, 3, TODAY, lossy=LossyPolicy.of(development_config(tmp_path / "dev").tiers))
    assert retrieved(engine, files, datasets[0].StudyInstanceUID) == sent
    assert not any(row.lossy or row.lossy_source_uid for row in rows(engine).values())
    assert tiers.lossy_copies(engine, datasets[0].StudyInstanceUID) == 0
    in_nas = {hashlib.sha256(path.read_bytes()).hexdigest() for path in nas.directory.rglob("*.dcm")}
    assert in_nas == {hashlib.sha256(data).hexdigest() for data in sent.values()}


def test_on_each_image_becomes_a_flagged_lossy_instance_still_found_and_retrieved(
    engine: Engine, files: FileStore, nas: FolderStore
) -> None:
    datasets, sent = old_study(engine, files)
    images, others = datasets[:3], datasets[3:]
    study_uid = str(images[0].StudyInstanceUID)

    report = tiers.move_due(engine, files, nas, 3, TODAY, lossy=JPEG_2000)

    assert (report.studies, report.instances, report.failures, report.lossy_copies) == (1, 5, (), 3)
    assert not list(files.archive_directory.rglob("*.dcm"))  # the originals removed, once the copies were checked
    now = rows(engine)
    served = retrieved(engine, files, study_uid)
    for image in images:
        original = str(image.SOPInstanceUID)
        assert original not in now  # a lossy copy is a new instance (PS3.3 C.7.6.1.1.5)
        (row,) = [row for row in now.values() if row.lossy_source_uid == original]
        assert row.lossy and row.tier == "folder" and row.transfer_syntax_uid == JPEG2000
        assert (
            row.path.endswith(".lossy.dcm") and row.sha256 == hashlib.sha256(served[row.sop_instance_uid]).hexdigest()
        )
        check_lossy_header(dcmread(io.BytesIO(served[row.sop_instance_uid])), image, row.sop_instance_uid)
    for other in others:  # no pixels: kept as they were, same UID, same bytes
        uid = str(other.SOPInstanceUID)
        assert served[uid] == sent[uid] and not now[uid].lossy and now[uid].lossy_source_uid is None
    assert tiers.lossy_copies(engine, study_uid) == 3
    found = find(
        engine, Query("IMAGE", {"StudyInstanceUID": study_uid, "SeriesInstanceUID": "", "SOPInstanceUID": ""}), 20
    )
    assert {row["SOPInstanceUID"] for row in found} == set(served)  # C-FIND answers the new UIDs
    check_index_header_and_metadata(engine, study_uid, now)
    quality = compression.section(engine, datetime(2020, 1, 1, tzinfo=UTC))  # allowed by configuration: no failure
    assert quality.status is Status.OK and quality.numbers["deferred_lossy"] == 3
    assert quality.numbers["made_lossy"] == 0 and quality.numbers["received_lossy"] == 0


def check_lossy_header(copy: Dataset, image: Dataset, new_uid: str) -> None:
    assert copy.SOPInstanceUID == new_uid and copy.file_meta.MediaStorageSOPInstanceUID == new_uid
    assert copy.LossyImageCompression == "01" and copy.LossyImageCompressionMethod == "ISO_15444_1"
    assert 5 < float(copy.LossyImageCompressionRatio) < 20
    assert list(copy.ImageType) == ["DERIVED", "PRIMARY", "AXIAL"]
    (source_image,) = copy.SourceImageSequence
    assert source_image.ReferencedSOPInstanceUID == image.SOPInstanceUID
    assert source_image.PurposeOfReferenceCodeSequence[0].CodeValue == "121320"
    assert copy.DerivationCodeSequence[0].CodeValue == "113040" and "ratio" in copy.DerivationDescription
    assert copy.pixel_array.shape == image.pixel_array.shape and (copy.Rows, copy.Columns) == (
        image.Rows,
        image.Columns,
    )
    assert str(copy.PatientName) == str(image.PatientName) and copy.SpecificCharacterSet == image.SpecificCharacterSet
    assert copy.StudyInstanceUID == image.StudyInstanceUID and copy.SeriesInstanceUID == image.SeriesInstanceUID


def check_index_header_and_metadata(engine: Engine, study_uid: str, now: dict[str, Any]) -> None:
    """The header the index keeps and the DICOM JSON are the copy's (new UID, lossy attributes)."""
    lossy_rows = [row for row in now.values() if row.lossy_source_uid]
    with engine.connect() as connection:
        headers = dict(connection.execute(select(instance_header.c.instance_pk, instance_header.c.header)).all())
    for row in lossy_rows:
        kept = dcmread(io.BytesIO(headers[row.id]), stop_before_pixels=True, force=True)
        assert kept.SOPInstanceUID == row.sop_instance_uid and kept.LossyImageCompression == "01"
    document = metadata(engine, Scope(study_uid), "https://pacs.test/dicomweb")
    assert document is not None
    assert all(row.sop_instance_uid in document for row in lossy_rows)


def test_jpeg_ls_near_lossless_stays_within_its_error(engine: Engine, files: FileStore, nas: FolderStore) -> None:
    datasets, _ = old_study(engine, files, images=1)
    tiers.move_due(engine, files, nas, 3, TODAY, lossy=NEAR_LOSSLESS)
    (row,) = [row for row in rows(engine).values() if row.lossy_source_uid]
    copy = dcmread(nas.directory / row.location)
    assert copy.file_meta.TransferSyntaxUID == JPEGLSNearLossless and copy.LossyImageCompressionMethod == "ISO_14495_1"
    difference = copy.pixel_array.astype(np.int64) - datasets[0].pixel_array.astype(np.int64)
    assert 0 < int(np.abs(difference).max()) <= 2


def test_an_image_received_lossy_is_not_compressed_again(
    engine: Engine, files: FileStore, nas: FolderStore, tmp_path: Path
) -> None:
    image = make_instance("CR", PATIENTS[1], study_date=STUDY_DATE)
    baseline = dcmread(jpeg_baseline(image, tmp_path / "jpeg"))
    sent = store(engine, files, baseline)
    tiers.move_due(engine, files, nas, 3, TODAY, lossy=JPEG_2000)
    (row,) = rows(engine).values()
    assert row.sop_instance_uid == baseline.SOPInstanceUID and row.lossy_source_uid is None
    assert (nas.directory / row.location).read_bytes() == sent


def test_a_lossy_copy_that_fails_its_check_leaves_the_image_bit_exact(
    engine: Engine, files: FileStore, nas: FolderStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_arguments: object) -> None:
        raise LossyCopyRefused("the lossy copy decodes to (1, 1), not (512, 512)")

    monkeypatch.setattr(lossy, "verify", refuse)
    datasets, sent = old_study(engine, files, images=2)
    tiers.move_due(engine, files, nas, 3, TODAY, lossy=JPEG_2000)
    assert retrieved(engine, files, datasets[0].StudyInstanceUID) == sent
    assert tiers.lossy_copies(engine, datasets[0].StudyInstanceUID) == 0


def test_a_lossy_study_brought_back_stays_lossy_and_flagged(engine: Engine, files: FileStore, nas: FolderStore) -> None:
    datasets, _ = old_study(engine, files, images=2)
    study_uid = str(datasets[0].StudyInstanceUID)
    tiers.move_due(engine, files, nas, 3, TODAY, lossy=JPEG_2000)
    before = retrieved(engine, files, study_uid)
    tiers.bring_back(engine, files, nas, study_uid)
    assert retrieved(engine, files, study_uid) == before
    assert {row.tier for row in rows(engine).values()} == {"immediate"} and tiers.lossy_copies(engine, study_uid) == 2
    assert len(list(files.archive_directory.rglob("*.lossy.dcm"))) == 2
    tiers.move_due(engine, files, nas, 3, TODAY, lossy=JPEG_2000)  # moving again: no second lossy step
    assert retrieved(engine, files, study_uid) == before
