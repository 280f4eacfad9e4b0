"""Verified lossless compression: same pixels and header for every modality, original kept on mismatch."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from datagen import MODALITIES, encoded, make_instance
from pydicom import dcmread
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless

from appliance.archive import lossless
from appliance.archive.index import Index
from appliance.archive.ingest import IncomingObject, Ingest, StoreOutcome
from appliance.archive.lossless import LosslessCompressor, NotCompressible, compress_verified
from appliance.archive.statistics import archive_statistics
from appliance.archive.storage import FileStore
from appliance.db import create_index_engine, upgrade_schema


@pytest.mark.parametrize("syntax", [JPEGLSLossless, JPEG2000Lossless])
@pytest.mark.parametrize("modality", sorted(MODALITIES))
def test_compressed_pixels_equal_the_original(modality: str, syntax: str) -> None:
    original = make_instance(modality)
    result = compress_verified(encoded(original), syntax)
    copy = dcmread(io.BytesIO(result.encoded))
    assert copy.file_meta.TransferSyntaxUID == syntax
    assert copy.SOPInstanceUID == original.SOPInstanceUID
    assert np.array_equal(copy.pixel_array, original.pixel_array)
    assert len(result.encoded) < len(encoded(original))


def test_already_compressed_or_pixel_less_objects_are_left_alone() -> None:
    once = compress_verified(encoded(make_instance("CT")), JPEGLSLossless)
    with pytest.raises(NotCompressible, match="already compressed"):
        compress_verified(once.encoded, JPEGLSLossless)
    report = make_instance("CT")
    del report.PixelData
    with pytest.raises(NotCompressible, match="no pixel data"):
        compress_verified(encoded(report), JPEGLSLossless)


def archive_with(tmp_path: Path, modality: str) -> tuple[Index, FileStore, str]:
    engine = create_index_engine(f"sqlite:///{tmp_path / 'index.sqlite'}")
    upgrade_schema(engine)
    files, index = FileStore(tmp_path / "data", 0), Index(engine)
    dataset = make_instance(modality)
    incoming = IncomingObject(encoded(dataset), dataset.SOPInstanceUID, dataset.SOPClassUID, "TEST")
    assert Ingest(files, index).store(incoming).outcome == StoreOutcome.STORED
    return index, files, dataset.SOPInstanceUID


def test_worker_replaces_the_file_and_the_index_row(tmp_path: Path) -> None:
    index, files, uid = archive_with(tmp_path, "MG")
    before = index.stored_instance(uid)
    report = LosslessCompressor(index, files, JPEGLSLossless, timedelta(0)).run_once(executor=None)
    after = index.stored_instance(uid)
    assert report.compressed == 1 and report.bytes_saved > 0
    assert before is not None and after is not None
    assert after.transfer_syntax_uid == JPEGLSLossless and after.path != before.path
    assert not files.absolute(before.path).exists()
    assert dcmread(files.absolute(after.path)).SOPInstanceUID == uid
    assert archive_statistics(index.engine).bytes_saved == report.bytes_saved


def test_forced_mismatch_keeps_the_original(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index, files, uid = archive_with(tmp_path, "CT")
    before = index.stored_instance(uid)
    assert before is not None
    original_bytes = files.absolute(before.path).read_bytes()
    monkeypatch.setattr(lossless, "decoded_pixels", lambda dataset: dataset.pixel_array + 1)
    report = LosslessCompressor(index, files, JPEGLSLossless, timedelta(0)).run_once(executor=None)
    assert report.failed == 1 and report.compressed == 0
    assert index.stored_instance(uid) == before
    assert files.absolute(before.path).read_bytes() == original_bytes
    assert [path.name for path in files.archive_directory.rglob("*.dcm")] == [Path(before.path).name]


def test_delay_keeps_fresh_images_unchanged(tmp_path: Path) -> None:
    index, files, uid = archive_with(tmp_path, "CR")
    report = LosslessCompressor(index, files, JPEGLSLossless, timedelta(hours=1)).run_once(executor=None)
    assert report.compressed == 0
    stored = index.stored_instance(uid)
    assert stored is not None and stored.transfer_syntax_uid == "1.2.840.10008.1.2.1"
