"""Staged writes (issue 14): the ingest writes an object's bytes to `incoming/` and starts their
write-back before parsing it, then syncs and links that same file; whatever is refused, already
archived or cannot be staged leaves nothing behind and gets the answer it got before."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from datagen import PATIENTS, encoded, make_instance
from pydicom.uid import generate_uid

from appliance.archive import storage
from appliance.archive.index import Index
from appliance.archive.ingest import IncomingObject, Ingest, StoreOutcome
from appliance.archive.storage import FileStore, StorageFull, placed_by_name, staged_digest
from appliance.db import create_index_engine, upgrade_schema


def test_staged_bytes_are_synced_and_linked_in_place(tmp_path: Path) -> None:
    files = FileStore(tmp_path, 0)
    staged = files.stage(b"DICM" * 1000)
    assert staged.path.parent == files.incoming_directory and staged.path.read_bytes() == b"DICM" * 1000
    written = files.write_durably(b"DICM" * 1000, "2026/11/23/a/b/c.dcm", staged=staged)
    staged.discard()  # taken over: nothing to remove
    assert files.absolute(written.relative_path).read_bytes() == b"DICM" * 1000
    assert written.created and written.size_bytes == 4000
    assert not list(files.incoming_directory.iterdir())


def test_staged_bytes_kept_pending_keep_their_link_until_indexed(tmp_path: Path) -> None:
    files = FileStore(tmp_path, 0)
    staged = files.stage(b"x" * 100)
    written = files.write_durably(b"x" * 100, "a/b.dcm", keep_pending=True, staged=staged)
    staged.discard()
    assert files.pending_files() == [written.pending]  # renamed to say where it is placed
    assert written.pending is not None and placed_by_name(written.pending) == "a/b.dcm"
    assert staged_digest(written.pending) == staged.digest == hashlib.sha256(b"x" * 100).hexdigest()
    files.settled(written)
    assert not list(files.incoming_directory.iterdir())


def test_discarded_staged_bytes_leave_nothing(tmp_path: Path) -> None:
    files = FileStore(tmp_path, 0)
    files.stage(b"y" * 100).discard()
    assert not list(files.incoming_directory.iterdir())


def test_staging_refuses_below_the_threshold_leaving_nothing(tmp_path: Path) -> None:
    files = FileStore(tmp_path, minimum_free_bytes=FileStore(tmp_path, 0).free_bytes() + 10**12)
    with pytest.raises(StorageFull):
        files.stage(b"z" * 100)
    assert not list(files.incoming_directory.iterdir())


def test_staging_starts_the_write_back_without_waiting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if sys.platform == "linux":
        assert storage.SYNC_FILE_RANGE is not None
    calls: list[tuple[int, int, int, int]] = []
    monkeypatch.setattr(storage, "SYNC_FILE_RANGE", lambda *arguments: calls.append(arguments) or 0)
    staged = FileStore(tmp_path, 0).stage(b"w" * 100)
    assert calls == [(staged.descriptor, 0, 0, storage.SYNC_FILE_RANGE_WRITE)]  # start write-out, no wait flag
    staged.discard()


@pytest.fixture()
def ingest(tmp_path: Path) -> Iterator[Ingest]:
    engine = create_index_engine(f"sqlite:///{tmp_path / 'index.sqlite'}")
    upgrade_schema(engine)
    yield Ingest(FileStore(tmp_path / "data", 0), Index(engine))
    engine.dispose()


def request(data: bytes, sop_instance_uid: str) -> IncomingObject:
    return IncomingObject(data, sop_instance_uid, "1.2.840.10008.5.1.4.1.1.2", "MODALITY")


def ct_object() -> tuple[bytes, str]:
    dataset = make_instance("CT", PATIENTS[1], generate_uid(), generate_uid(), 1)
    dataset.Rows = dataset.Columns = 16
    dataset.PixelData = dataset.PixelData[: 16 * 16 * 2]
    return encoded(dataset), str(dataset.SOPInstanceUID)


def test_every_answer_leaves_incoming_empty(ingest: Ingest) -> None:
    data, uid = ct_object()
    incoming = ingest.files.incoming_directory
    assert ingest.store(request(data, uid)).outcome is StoreOutcome.STORED
    assert not list(incoming.iterdir())
    assert ingest.files.absolute(ingest.index.stored_instance(uid).path).read_bytes() == data  # type: ignore[union-attr]
    assert ingest.store(request(data, uid)).outcome is StoreOutcome.DUPLICATE_IDENTICAL
    assert ingest.store(request(b"not DICOM at all", uid)).outcome is StoreOutcome.REFUSED_INVALID
    assert ingest.store(request(data, "1.2.3.4")).outcome is StoreOutcome.REFUSED_MISMATCH
    assert not list(incoming.iterdir())


def test_without_room_to_stage_the_answers_are_as_before(ingest: Ingest) -> None:
    """Staging is refused below the free-space threshold: a duplicate is still acknowledged (nothing
    to write), a new object refused for lack of space."""
    data, uid = ct_object()
    assert ingest.store(request(data, uid)).outcome is StoreOutcome.STORED
    ingest.files.minimum_free_bytes = ingest.files.free_bytes() + 10**12
    assert ingest.store(request(data, uid)).outcome is StoreOutcome.DUPLICATE_IDENTICAL
    other, other_uid = ct_object()
    assert ingest.store(request(other, other_uid)).outcome is StoreOutcome.REFUSED_NO_SPACE
    assert not list(ingest.files.incoming_directory.iterdir())
