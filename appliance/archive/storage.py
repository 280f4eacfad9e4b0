"""Files on disk: where an instance lives, and how bytes get there durably.

Layout: `archive/YYYY/MM/DD/<study hash>/<series hash>/<instance hash>.dcm`, the date being the
study date (the date the retention and tiering rules count from), or the reception date when the
object has none. Hashes keep names short and fixed-width whatever the UIDs look like.

A file is written to `incoming/` (same filesystem), fsynced, hard-linked into place and its folder
fsynced: after `write_durably` returns, the bytes survive a power cut (the ingest leaves that folder
sync to its group commit, which syncs each folder once for all the files of a batch before the
index commit: `defer_folder_sync`). A link never replaces an
existing file, so several processes writing at once can never overwrite an acknowledged file: a path
already holding other bytes makes the new bytes go beside it, under a name carrying their digest.
Nothing half-written is ever left under `archive/`; leftovers in `incoming/` are removed by
`remove_incoming_leftovers` at start.

The ingest stages the bytes first (`stage`): written to `incoming/` as they arrive, their write-back
to the disk started (Linux `sync_file_range`, not waited for) while the object is parsed and
checked; `write_durably(..., staged=)` then fsyncs that file instead of writing it, with less left
to wait for. The order (fsync, link, folder sync, then the index) is the same.

An instance moved to a deferred tier (R1, `archive.tiers`) keeps its `path` in the index, but its
bytes live in the deferred store at `location`: `readable` finds them there through the store the
FileStore was given (`archive.deferred`), fetched first into `staging/` for an object store.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Protocol

IMMEDIATE = "immediate"  # the tier of a file under archive/


class DeferredReader(Protocol):
    """A deferred tier, as reads need it."""

    def readable(self, location: str, sha256: str) -> Path:
        """A local path holding the bytes at `location` (checked against `sha256` when fetched).

        Raises OSError when they cannot be read.
        """
        ...


@dataclass
class Staged:
    """Bytes written to `incoming/`, their write-back started: `write_durably` takes them over
    (`used`), else `discard` removes them."""

    path: Path
    descriptor: int
    used: bool = False

    def sync(self) -> None:
        """Wait until the bytes are on the disk; the file is the caller's from now on."""
        self.used = True
        try:
            os.fsync(self.descriptor)
        finally:
            self.close()

    def close(self) -> None:
        if self.descriptor >= 0:
            os.close(self.descriptor)
            self.descriptor = -1

    def discard(self) -> None:
        """Remove the staged file, unless `write_durably` took it over."""
        self.close()
        if not self.used:
            self.path.unlink(missing_ok=True)


class StorageFull(Exception):
    """Free space is below the configured threshold, or the disk ran out while writing."""


@dataclass(frozen=True)
class WrittenFile:
    """Where bytes are durably stored; `created` is False when the very same bytes were already there."""

    relative_path: str
    size_bytes: int
    sha256: str
    created: bool = True
    pending: Path | None = None  # the second link left in incoming/ until the caller has indexed it
    unsynced_folder: Path | None = None  # the folder of the new link, when its sync was left to the caller


def uid_hash(uid: str) -> str:
    """32 hex digits standing for a UID in file names."""
    return hashlib.sha256(uid.encode("ascii", "replace")).hexdigest()[:32]


def instance_relative_path(
    study_date: str, received_on: date, study_uid: str, series_uid: str, sop_instance_uid: str
) -> str:
    """The path of an instance under `archive/`, from its study date and UIDs."""
    day = parse_dicom_date(study_date) or received_on
    return "/".join(
        [
            f"{day.year:04d}",
            f"{day.month:02d}",
            f"{day.day:02d}",
            uid_hash(study_uid),
            uid_hash(series_uid),
            uid_hash(sop_instance_uid) + ".dcm",
        ]
    )


def parse_dicom_date(value: str) -> date | None:
    """A DA value (YYYYMMDD) as a date, or None when it is absent or not a real date."""
    text = value.strip()
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


class FileStore:
    """The files of the archive under one data directory."""

    def __init__(self, data_directory: Path, minimum_free_bytes: int, deferred: DeferredReader | None = None) -> None:
        self.data_directory = data_directory
        self.deferred = deferred
        self.archive_directory = data_directory / "archive"
        self.incoming_directory = data_directory / "incoming"
        self.quarantine_directory = data_directory / "quarantine"
        self.minimum_free_bytes = minimum_free_bytes
        for directory in (self.archive_directory, self.incoming_directory, self.quarantine_directory):
            directory.mkdir(parents=True, exist_ok=True)

    def absolute(self, relative_path: str) -> Path:
        return self.archive_directory / relative_path

    def readable(self, relative_path: str, tier: str = IMMEDIATE, location: str = "", sha256: str = "") -> Path:
        """Where to read an instance's bytes: under `archive/`, or from the deferred tier.

        Raises FileNotFoundError when the instance is in a deferred tier this store was not given,
        OSError when the deferred tier cannot be read.
        """
        if tier == IMMEDIATE:
            return self.absolute(relative_path)
        if self.deferred is None:
            raise FileNotFoundError(f"{relative_path}: in the {tier} tier, which is not configured")
        return self.deferred.readable(location, sha256)

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.archive_directory).free

    def check_space(self, incoming_bytes: int) -> None:
        """Raise StorageFull when writing `incoming_bytes` would cross the free-space threshold."""
        if self.free_bytes() - incoming_bytes < self.minimum_free_bytes:
            raise StorageFull(f"free space below the threshold of {self.minimum_free_bytes} bytes")

    def stage(self, data: bytes) -> Staged:
        """Write `data` to `incoming/` and start its write-back to the disk without waiting for it.

        Raises StorageFull (nothing left behind) when the disk is full, OSError when it cannot write.
        """
        self.check_space(len(data))
        temporary = self.incoming_directory / f"{uuid.uuid4().hex}.part"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        staged = Staged(temporary, descriptor)
        try:
            write_all(descriptor, data)
            start_write_back(descriptor)
        except OSError as error:
            staged.discard()
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFull(str(error)) from error
            raise
        return staged

    def write_durably(
        self,
        data: bytes,
        relative_path: str,
        under: Path | None = None,
        keep_pending: bool = False,
        defer_folder_sync: bool = False,
        staged: Staged | None = None,
    ) -> WrittenFile:
        """Write `data` at `relative_path` (under the archive, or `under`) and make it durable.

        An existing file is never replaced: if `relative_path` holds the same bytes, nothing is
        written (`created` False); if it holds other bytes, `data` goes beside it under a name
        carrying its digest. Raises StorageFull (nothing left behind) when the disk is full.
        With `keep_pending`, a new file keeps its link in `incoming/` (`WrittenFile.pending`) until
        the caller calls `settled` once it is indexed: a crash in between leaves that link, which
        `pending_files` finds at start-up. With `defer_folder_sync`, the folder that received the
        new link is not synced here but named in `WrittenFile.unsynced_folder`: the caller syncs it
        before it acknowledges anything (the group commit syncs it once for a whole batch).
        With `staged` (`stage(data)`), that file is synced and linked instead of `data` being
        written again.
        """
        if staged is None:
            self.check_space(len(data))
        digest = hashlib.sha256(data).hexdigest()
        root = under or self.archive_directory
        temporary = staged.path if staged else self.incoming_directory / f"{uuid.uuid4().hex}.part"
        try:
            if staged is None:
                write_and_sync(temporary, data)
            else:
                staged.sync()
            for candidate in (relative_path, beside(relative_path, digest)):
                destination = root / candidate
                make_directories_durably(destination.parent)
                if link_unless_present(temporary, destination):
                    unsynced = destination.parent if defer_folder_sync else None
                    if unsynced is None:
                        sync_directory(destination.parent)
                    kept = None
                    if keep_pending:
                        kept, temporary = temporary, self.incoming_directory / "none"
                    return WrittenFile(candidate, len(data), digest, True, kept, unsynced)
                if sha256_of_file(destination) == digest:
                    return WrittenFile(candidate, len(data), digest, created=False)
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFull(str(error)) from error
            raise
        finally:
            temporary.unlink(missing_ok=True)
        raise FileExistsError(f"{relative_path} and its digest-named alternative hold other bytes")

    def settled(self, written: WrittenFile) -> None:
        """The file `write_durably(..., keep_pending=True)` wrote is indexed: drop its pending link."""
        if written.pending is not None:
            written.pending.unlink(missing_ok=True)

    def pending_files(self) -> list[Path]:
        """Files an interrupted run linked into place but may not have indexed: the `incoming/`
        links of files that have another link (under `archive/`)."""
        return [path for path in sorted(self.incoming_directory.glob("*.part")) if path.stat().st_nlink > 1]

    def remove_incoming_leftovers(self) -> int:
        """Delete partial files an interrupted run left in `incoming/` (not the pending ones, see
        `pending_files`); return how many."""
        removed = 0
        for leftover in self.incoming_directory.glob("*.part"):
            if leftover.stat().st_nlink > 1:
                continue
            leftover.unlink(missing_ok=True)
            removed += 1
        return removed


def beside(relative_path: str, digest: str) -> str:
    """The alternative name for other bytes at `relative_path`: its digest before the extension."""
    stem = relative_path.removesuffix(".dcm")
    return f"{stem}.{digest[:16]}.dcm"


def link_unless_present(source: Path, destination: Path) -> bool:
    """Hard-link `source` at `destination`; False (nothing changed) when `destination` exists."""
    try:
        os.link(source, destination)
    except FileExistsError:
        return False
    return True


def write_and_sync(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        write_all(descriptor, data)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(descriptor, view)
        view = view[written:]


def sync_file_range_function() -> Callable[[int, int, int, int], int] | None:
    """libc's `sync_file_range` (Linux), or None where there is none."""
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (AttributeError, OSError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


SYNC_FILE_RANGE = sync_file_range_function()
SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>: start write-out of the dirty pages, do not wait


def start_write_back(descriptor: int) -> None:
    """Have the kernel start writing the file's dirty pages to the disk now, without waiting:
    a hint (its failure changes nothing), the fsync that follows still waits for everything."""
    if SYNC_FILE_RANGE is not None:
        SYNC_FILE_RANGE(descriptor, 0, 0, SYNC_FILE_RANGE_WRITE)


def make_directories_durably(directory: Path) -> None:
    """Create `directory` and its missing parents, syncing each parent that got a new entry."""
    if directory.is_dir():
        return
    missing = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    directory.mkdir(parents=True, exist_ok=True)
    for created in reversed(missing):
        sync_directory(created.parent)


def sync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
