"""One sync for a batch (issue 14, A3): the ingest links its staged files into place without
syncing them, and the group commit makes the whole batch durable with one `syncfs` before its
index commit; each file's own write-back error fails that file alone, a failed `syncfs` fails the
batch, and where there is no `syncfs` every file and folder is synced as before. A crash before
that sync can leave a pending file cut short: the start-up adoption removes it instead of indexing
it."""

from __future__ import annotations

import ctypes
import errno
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from datagen import PATIENTS, encoded, make_instance
from pydicom.uid import generate_uid
from sqlalchemy import Engine, event, func, select

from appliance.archive import storage
from appliance.archive.attributes import read_attributes
from appliance.archive.index import Index
from appliance.archive.ingest import IncomingObject, Ingest, StoreOutcome
from appliance.archive.integrity import adopt_pending
from appliance.archive.storage import FileStore, Unsynced, instance_relative_path, make_durable, staged_digest
from appliance.db.schema import instance

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="syncfs is Linux's")


@pytest.fixture()
def events(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The syncs storage makes, in order: "syncfs", and "fsync" for a file's or a folder's."""
    happened: list[str] = []
    real_syncfs, real_fsync = storage.SYNCFS, os.fsync
    assert real_syncfs is not None

    def syncfs(descriptor: int) -> int:
        happened.append("syncfs")
        return real_syncfs(descriptor)

    def fsync(descriptor: int) -> None:
        happened.append("fsync")
        real_fsync(descriptor)

    monkeypatch.setattr(storage, "SYNCFS", syncfs)
    monkeypatch.setattr(storage.os, "fsync", fsync)
    return happened


def ct_object(study_uid: str = "", series_uid: str = "") -> tuple[bytes, str]:
    dataset = make_instance("CT", PATIENTS[1], study_uid or generate_uid(), series_uid or generate_uid(), 1)
    dataset.Rows = dataset.Columns = 16
    dataset.PixelData = dataset.PixelData[: 16 * 16 * 2]
    return encoded(dataset), str(dataset.SOPInstanceUID)


def request(data: bytes, sop_instance_uid: str) -> IncomingObject:
    return IncomingObject(data, sop_instance_uid, "1.2.840.10008.5.1.4.1.1.2", "MODALITY")


def indexed(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(instance)) or 0)


def test_a_new_study_takes_one_syncfs_before_its_commit_and_no_other_sync(
    tmp_path: Path, engine: Engine, events: list[str]
) -> None:
    """A new study's first image: its bytes, its new day, study and series folders and its link all
    made durable by one syncfs, which comes before the index commit (and so before the answer)."""
    event.listen(engine, "commit", lambda _connection: events.append("commit"))
    ingest = Ingest(FileStore(tmp_path / "data", 0), Index(engine))
    data, uid = ct_object()
    assert ingest.store(request(data, uid)).outcome is StoreOutcome.STORED
    assert events == ["syncfs", "commit"]
    stored = ingest.index.stored_instance(uid)
    assert stored is not None and ingest.files.absolute(stored.path).read_bytes() == data
    assert not list(ingest.files.incoming_directory.iterdir())


def staged_writes(files: FileStore, count: int) -> list[Unsynced]:
    """`count` images of one series staged and linked in place as the ingest does, not yet synced."""
    study_uid, series_uid = generate_uid(), generate_uid()
    items = []
    for number in range(count):
        data, _uid = ct_object(study_uid, series_uid)
        staged = files.stage(data)
        written = files.write_durably(data, f"2026/12/06/s/{number}.dcm", defer_sync=True, staged=staged)
        assert written.unsynced is not None and written.unsynced.staged is staged
        items.append(written.unsynced)
    return items


def test_a_batch_takes_one_syncfs_whatever_its_size(tmp_path: Path, events: list[str]) -> None:
    items = staged_writes(FileStore(tmp_path, 0), 5)
    assert events == []  # nothing synced while writing
    durability = make_durable(items)
    assert durability.errors == [None] * 5 and durability.syncs == 1
    assert events == ["syncfs"]
    assert all(item.synced and item.staged is not None and item.staged.descriptor == -1 for item in items)
    assert make_durable(items).syncs == 0 and events == ["syncfs"]  # a retried batch syncs nothing again


def failing_for(descriptors: set[int], real: Callable[..., int]) -> Callable[..., int]:
    """`sync_file_range` as the kernel answers it when a file's write-back met an I/O error."""

    def sync_file_range(descriptor: int, *arguments: Any) -> int:
        if descriptor in descriptors:
            ctypes.set_errno(errno.EIO)
            return -1
        return real(descriptor, *arguments)

    return sync_file_range


def test_a_file_whose_write_back_failed_fails_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    items = staged_writes(FileStore(tmp_path, 0), 3)
    assert storage.SYNC_FILE_RANGE is not None and items[1].staged is not None
    monkeypatch.setattr(storage, "SYNC_FILE_RANGE", failing_for({items[1].staged.descriptor}, storage.SYNC_FILE_RANGE))
    errors = make_durable(items).errors
    assert errors[0] is None and errors[2] is None
    assert isinstance(errors[1], OSError) and errors[1].errno == errno.EIO
    assert [item.synced for item in items] == [True, False, True]


def test_a_failed_syncfs_fails_the_whole_batch_and_the_ingest_acknowledges_nothing(
    tmp_path: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(_descriptor: int) -> int:
        ctypes.set_errno(errno.EIO)
        return -1

    monkeypatch.setattr(storage, "SYNCFS", refuse)
    errors = make_durable(staged_writes(FileStore(tmp_path / "direct", 0), 2)).errors
    assert all(isinstance(error, OSError) and error.errno == errno.EIO for error in errors)
    files = FileStore(tmp_path / "data", 0)
    ingest = Ingest(files, Index(engine))
    data, uid = ct_object()
    assert ingest.store(request(data, uid)).outcome is StoreOutcome.FAILED
    assert indexed(engine) == 0
    assert len(files.pending_files()) == 1  # kept, for the next start to check and index


def test_without_syncfs_each_file_and_folder_is_synced_as_before(
    tmp_path: Path, engine: Engine, events: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage, "SYNCFS", None)
    ingest = Ingest(FileStore(tmp_path / "data", 0), Index(engine))
    data, uid = ct_object()
    assert ingest.store(request(data, uid)).outcome is StoreOutcome.STORED
    # the file; the new year, month, day, study and series folders' parents; the series folder
    assert events == ["fsync"] * 7
    assert indexed(engine) == 1


def test_a_pending_file_cut_short_is_removed_at_start_not_indexed(tmp_path: Path, engine: Engine) -> None:
    """What a power cut before the batch's sync can leave: the links made, the bytes not all there.
    It was never acknowledged; the adoption removes it from its place, and indexes the whole one."""
    files = FileStore(tmp_path / "data", 0)
    placed = []
    for _number in range(2):
        data, _uid = ct_object()
        staged = files.stage(data)
        written = files.write_durably(data, relative_path(data), keep_pending=True, defer_sync=True, staged=staged)
        staged.discard()
        placed.append(written.relative_path)
    [cut] = [path for path in files.pending_files() if files.absolute(placed[0]).samefile(path)]
    assert staged_digest(cut) is not None
    os.truncate(cut, 0)  # as ext4 leaves a file whose blocks were never allocated: nothing to parse
    report = adopt_pending(engine, files)
    assert report.incomplete == [placed[0]] and report.adopted == [placed[1]]
    assert not files.absolute(placed[0]).exists() and files.absolute(placed[1]).exists()
    assert indexed(engine) == 1
    assert not list(files.incoming_directory.iterdir())


def relative_path(data: bytes) -> str:
    """Where the ingest places `data`."""
    attributes = read_attributes(data)
    return instance_relative_path(
        attributes.study_date,
        date.today(),
        attributes.study_instance_uid,
        attributes.series_instance_uid,
        attributes.sop_instance_uid,
    )


def test_a_file_closed_before_its_batch_fails_alone(tmp_path: Path) -> None:
    """Its write-back errors could no longer be read: it is not counted durable."""
    items = staged_writes(FileStore(tmp_path, 0), 2)
    assert items[0].staged is not None
    items[0].staged.close()
    errors = make_durable(items).errors
    assert isinstance(errors[0], OSError) and errors[0].errno == errno.EBADF and errors[1] is None


def test_associations_storing_at_once_share_a_syncfs_per_batch(tmp_path: Path, engine: Engine) -> None:
    """Staged objects from many threads (associations): every one stored, and no more syncs of
    files and folders than batches (one syncfs each)."""
    index = Index(engine)
    ingest = Ingest(FileStore(tmp_path / "data", 0), index)
    study_uid, series_uid = generate_uid(), generate_uid()
    objects = [ct_object(study_uid, series_uid) for _number in range(24)]
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda pair: ingest.store(request(*pair)).outcome, objects))
    assert outcomes == [StoreOutcome.STORED] * len(objects)
    assert indexed(engine) == len(objects) and index.group.statistics.members == len(objects)
    assert index.group.statistics.syncs == index.group.statistics.batches
    assert not list(ingest.files.incoming_directory.iterdir())


def placed_unsynced(files: FileStore, data: bytes, relative: str) -> None:
    """`data` placed at `relative` by a writer whose batch is not synced yet."""
    written = files.write_durably(data, relative, defer_sync=True, staged=files.stage(data))
    assert written.created and written.unsynced is not None


def test_bytes_found_in_place_are_synced_before_they_are_reported_written(tmp_path: Path, events: list[str]) -> None:
    """Another writer placed the same bytes and has not synced them yet (or its sync failed): the
    caller will index them and answer success, so they are made durable first, with one syncfs."""
    files = FileStore(tmp_path, 0)
    data, _uid = ct_object()
    placed_unsynced(files, data, "2026/12/07/s/1.dcm")
    assert events == []
    written = files.write_durably(data, "2026/12/07/s/1.dcm")
    assert not written.created and events == ["fsync", "syncfs"]  # its own copy first (unstaged), then what is there


def test_without_syncfs_bytes_found_in_place_are_synced_with_their_folder(
    tmp_path: Path, events: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    files = FileStore(tmp_path, 0)
    data, _uid = ct_object()
    placed_unsynced(files, data, "2026/12/07/s/1.dcm")
    monkeypatch.setattr(storage, "SYNCFS", None)
    events.clear()
    written = files.write_durably(data, "2026/12/07/s/1.dcm")
    assert not written.created and events == ["fsync"] * 3  # its own copy, then the file there and its folder
