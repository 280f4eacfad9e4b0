"""Durable writes: fsync + rename, nothing half-written on a full disk, leftovers removed."""

from __future__ import annotations

import errno
import os
from datetime import date
from pathlib import Path

import pytest

from appliance.archive import storage
from appliance.archive.storage import FileStore, StorageFull, instance_relative_path


def test_paths_use_the_study_date_and_uid_hashes() -> None:
    path = instance_relative_path("20260131", date(2026, 11, 23), "1.2.3", "1.2.3.4", "1.2.3.4.5")
    parts = path.split("/")
    assert parts[:3] == ["2026", "01", "31"]
    assert all(len(part) == 32 for part in parts[3:5]) and parts[5].endswith(".dcm")


def test_paths_fall_back_to_the_reception_date() -> None:
    assert instance_relative_path("2026013", date(2026, 11, 23), "1", "2", "3").startswith("2026/11/23/")
    assert instance_relative_path("20261341", date(2026, 11, 23), "1", "2", "3").startswith("2026/11/23/")


def test_write_is_complete_and_checksummed(tmp_path: Path) -> None:
    files = FileStore(tmp_path, 0)
    written = files.write_durably(b"DICM" * 1000, "2026/11/23/a/b/c.dcm")
    assert files.absolute(written.relative_path).read_bytes() == b"DICM" * 1000
    assert written.size_bytes == 4000 and len(written.sha256) == 64
    assert not list(files.incoming_directory.iterdir())


def test_threshold_refuses_before_writing(tmp_path: Path) -> None:
    files = FileStore(tmp_path, minimum_free_bytes=files_free(tmp_path) + 10**12)
    with pytest.raises(StorageFull):
        files.write_durably(b"x" * 100, "a/b.dcm")
    assert not list(files.archive_directory.rglob("*.dcm")) and not list(files.incoming_directory.iterdir())


def files_free(path: Path) -> int:
    return FileStore(path, 0).free_bytes()


def test_disk_full_while_writing_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = FileStore(tmp_path, 0)
    real_write = os.write
    calls = []

    def failing_write(descriptor: int, data: bytes | memoryview) -> int:
        calls.append(len(data))
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(descriptor, bytes(data[:1000]))

    monkeypatch.setattr(storage.os, "write", failing_write)
    with pytest.raises(StorageFull):
        files.write_durably(b"y" * 5000, "2026/11/23/x.dcm")
    assert not list(files.archive_directory.rglob("*.dcm"))
    assert not list(files.incoming_directory.iterdir())


def test_leftovers_of_an_interrupted_write_are_removed(tmp_path: Path) -> None:
    files = FileStore(tmp_path, 0)
    (files.incoming_directory / "dead.part").write_bytes(b"half")
    assert files.remove_incoming_leftovers() == 1
    assert not list(files.incoming_directory.iterdir())
