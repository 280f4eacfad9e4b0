"""Files on disk: where an instance lives, and how bytes get there durably.

Layout: `archive/YYYY/MM/DD/<study hash>/<series hash>/<instance hash>.dcm`, the date being the
study date (the date the retention and tiering rules count from), or the reception date when the
object has none. Hashes keep names short and fixed-width whatever the UIDs look like.

A file is written to `incoming/` (same filesystem), fsynced, hard-linked into place and its folder
fsynced: after `write_durably` returns, the bytes survive a power cut. A link never replaces an
existing file, so several processes writing at once can never overwrite an acknowledged file: a path
already holding other bytes makes the new bytes go beside it, under a name carrying their digest.
Nothing half-written is ever left under `archive/`; leftovers in `incoming/` are removed by
`remove_incoming_leftovers` at start.

The ingest stages the bytes first (`stage`): written to `incoming/` as they arrive, their write-back
to the disk started (Linux `sync_file_range`, not waited for) while the object is parsed and
checked; `write_durably(..., staged=)` then fsyncs that file instead of writing it, with less left
to wait for. The order (fsync, link, folder sync, then the index) is the same.

The ingest goes further (`defer_sync`): the staged file is linked into place, its new folders
created, and nothing is synced yet; the write names what is left (`Unsynced`) and the group commit
makes a whole batch durable at once before its index commit (`make_durable`): one `syncfs` of the
file system, which returns once every file's bytes and every new folder entry written before it are
on the disk, then each file's own write-back checked for errors through its still-open descriptor.
One wait instead of one per file and per folder; nothing is indexed, so nothing acknowledged, before
it returns. A staged file is named after the SHA-256 of its bytes: a crash before that sync can
leave a pending link to bytes that never reached the disk whole, and the start-up adoption
(`integrity.adopt_pending`) tells them apart by that name (`staged_digest`) instead of indexing them;
once linked into place, the pending link's name also says where (`placed_by_name`), so that place is
found and removed as well even when the bytes cannot be read.

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
    (`used`), else `discard` removes them. `digest` is their SHA-256, also in the file's name."""

    path: Path
    descriptor: int
    digest: str
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


@dataclass
class Unsynced:
    """What a write with `defer_sync` left to make durable before anything is acknowledged: the
    folder that got the new link and, when its bytes were not synced either, the staged file (its
    descriptor still open, so its own write-back errors reach `make_durable`)."""

    folder: Path
    staged: Staged | None = None
    synced: bool = False


@dataclass(frozen=True)
class Durability:
    """What `make_durable` did: each item's error (None when it is durable) and how many syncs it took."""

    errors: list[OSError | None]
    syncs: int


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
    unsynced: Unsynced | None = None  # what is left to sync, when the caller took that over (defer_sync)


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
        digest = hashlib.sha256(data).hexdigest()
        temporary = self.incoming_directory / f"{digest}.{uuid.uuid4().hex}.part"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        staged = Staged(temporary, descriptor, digest)
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
        defer_sync: bool = False,
        staged: Staged | None = None,
    ) -> WrittenFile:
        """Write `data` at `relative_path` (under the archive, or `under`) and make it durable.

        An existing file is never replaced: if `relative_path` holds the same bytes, nothing is
        written (`created` False), but what is there is synced (`sync_in_place`); if it holds
        other bytes, `data` goes beside it under a name carrying its digest. Raises StorageFull
        (nothing left behind) when the disk is full.
        With `keep_pending`, a new file keeps its link in `incoming/` (`WrittenFile.pending`) until
        the caller calls `settled` once it is indexed: a crash in between leaves that link, which
        `pending_files` finds at start-up. With `staged` (`stage(data)`), that file is linked
        instead of `data` being written again.
        With `defer_sync`, what a new file still needs is named in `WrittenFile.unsynced` instead
        of being synced here, and the caller makes it durable (`make_durable`) before it
        acknowledges anything: the folder that received the link and, for staged bytes on a
        system with `syncfs`, the bytes and every folder created for them as well.
        """
        if staged is None:
            self.check_space(len(data))
        digest = staged.digest if staged else hashlib.sha256(data).hexdigest()
        root = under or self.archive_directory
        temporary = staged.path if staged else self.incoming_directory / f"{uuid.uuid4().hex}.part"
        with_batch = defer_sync and staged is not None and SYNCFS is not None  # bytes and folders too
        try:
            write_bytes(temporary, data, staged, with_batch)
            for candidate in (relative_path, beside(relative_path, digest)):
                destination = root / candidate
                if place(temporary, destination, durably=not with_batch):
                    unsynced = None
                    if defer_sync:
                        unsynced = Unsynced(destination.parent, staged if with_batch else None)
                    else:
                        sync_directory(destination.parent)
                    kept = None
                    if keep_pending:
                        kept = named_after_place(temporary, candidate) if staged and not under else temporary
                        temporary = self.incoming_directory / "none"
                    return WrittenFile(candidate, len(data), digest, True, kept, unsynced)
                if sha256_of_file(destination) == digest:
                    sync_in_place(destination)
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


def sync_in_place(path: Path) -> None:
    """Make durable a file found in place with the very bytes to write: the writer that placed it
    (another thread or process, or an attempt whose sync failed) may not have synced it yet, and
    the caller is about to index it and answer success. One `syncfs` covers the file and every
    folder created for it; without it, the file and its folder (the other folders were synced as
    they were created)."""
    if SYNCFS is not None:
        sync_file_system(path.parent)
        return
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    sync_directory(path.parent)


def beside(relative_path: str, digest: str) -> str:
    """The alternative name for other bytes at `relative_path`: its digest before the extension."""
    stem = relative_path.removesuffix(".dcm")
    return f"{stem}.{digest[:16]}.dcm"


def write_bytes(temporary: Path, data: bytes, staged: Staged | None, with_batch: bool) -> None:
    """`data` in `temporary`, synced: written now, or already staged there (synced now, or later
    with its batch)."""
    if staged is None:
        write_and_sync(temporary, data)
    elif with_batch:
        staged.used = True
    else:
        staged.sync()


def place(source: Path, destination: Path, durably: bool) -> bool:
    """Link `source` at `destination`, creating its missing folders (`durably`: each synced into its
    parent); False when `destination` exists."""
    if durably:
        make_directories_durably(destination.parent)
    else:
        destination.parent.mkdir(parents=True, exist_ok=True)
    return link_unless_present(source, destination)


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


def syncfs_function() -> Callable[[int], int] | None:
    """libc's `syncfs` (Linux), or None where there is none."""
    try:
        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (AttributeError, OSError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return function


SYNCFS = syncfs_function()
SYNC_FILE_RANGE_WAIT = 1 | 2 | 4  # WAIT_BEFORE | WRITE | WAIT_AFTER: write out and wait, reporting errors


def sync_file_system(folder: Path) -> None:
    """Wait until everything written to `folder`'s file system so far is on the disk (`syncfs`:
    file bytes and folder entries alike; Linux reports the file system's own errors here)."""
    if SYNCFS is None:
        raise OSError(errno.ENOSYS, "syncfs is not available")
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if SYNCFS(descriptor) != 0:
            number = ctypes.get_errno()
            raise OSError(number, f"syncfs: {os.strerror(number)}")
    finally:
        os.close(descriptor)


def check_write_back(staged: Staged) -> None:
    """Raise the error the write-back of `staged`'s bytes met, if any (after `sync_file_system`,
    nothing is left to write: this waits for nothing, it reads the error its descriptor was told)."""
    if SYNC_FILE_RANGE is not None and SYNC_FILE_RANGE(staged.descriptor, 0, 0, SYNC_FILE_RANGE_WAIT) != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"writing {staged.path.name}: {os.strerror(number)}")


def make_durable(items: list[Unsynced]) -> Durability:
    """Make every write of a batch durable, each item getting its own error (None when durable).

    Items with staged bytes take one `syncfs` per file system (its failure fails them all), then
    each one's write-back is checked on its own descriptor; the folders of the others are synced
    one by one, once each. Items already made durable (a retried batch) take nothing."""
    errors: list[OSError | None] = [None] * len(items)
    syncs = sync_file_systems(items, errors) + sync_folders(items, errors)
    for position, item in enumerate(items):
        if item.staged is not None:
            item.staged.close()
        item.synced = item.synced or errors[position] is None
    return Durability(errors, syncs)


def synced_with(item: Unsynced, device: int) -> bool:
    """Whether `make_durable` makes `item` durable with a `syncfs` of the file system `device`,
    which then flushes everything else written there as well (the index's write-ahead log)."""
    staged = item.staged
    if SYNCFS is None or staged is None or item.synced or staged.descriptor < 0:
        return False
    return os.fstat(staged.descriptor).st_dev == device


def sync_file_systems(items: list[Unsynced], errors: list[OSError | None]) -> int:
    """One `syncfs` per file system of the items with staged bytes, then each one's write-back
    checked; returns how many syncs."""
    by_device: dict[int, list[int]] = {}
    for position, item in enumerate(items):
        if item.staged is None or item.synced:
            continue
        if item.staged.descriptor < 0:  # closed before its batch: its errors can no longer be read
            errors[position] = OSError(errno.EBADF, f"{item.staged.path.name} was closed before it was synced")
            continue
        by_device.setdefault(os.fstat(item.staged.descriptor).st_dev, []).append(position)
    for positions in by_device.values():
        try:
            sync_file_system(items[positions[0]].folder)
        except OSError as error:
            for position in positions:
                errors[position] = error
            continue
        for position in positions:
            errors[position] = write_back_error(items[position])
    return len(by_device)


def write_back_error(item: Unsynced) -> OSError | None:
    assert item.staged is not None
    try:
        check_write_back(item.staged)
    except OSError as error:
        return error
    return None


def sync_folders(items: list[Unsynced], errors: list[OSError | None]) -> int:
    """Sync each folder of the items whose bytes were already synced, once; returns how many."""
    outcomes: dict[Path, OSError | None] = {}
    for position, item in enumerate(items):
        if item.staged is not None or item.synced:
            continue
        if item.folder not in outcomes:
            try:
                sync_directory(item.folder)
                outcomes[item.folder] = None
            except OSError as error:
                outcomes[item.folder] = error
        errors[position] = outcomes[item.folder]
    return len(outcomes)


def named_after_place(staged: Path, relative_path: str) -> Path:
    """Rename a staged file kept pending so that its name also says where it is placed under
    `archive/` (`placed_by_name`): found at start-up even when its bytes cannot be read."""
    named = staged.with_name(f"{staged.name.removesuffix('.part')}.{relative_path.replace('/', '+')}.part")
    os.rename(staged, named)
    return named


def placed_by_name(pending: Path) -> str | None:
    """Where under `archive/` a pending file's name says it is placed, or None when it does not say."""
    parts = pending.name.removesuffix(".part").split(".", 2)
    if len(parts) < 3 or staged_digest(pending) is None:
        return None
    return parts[2].replace("+", "/")


def staged_digest(path: Path) -> str | None:
    """The SHA-256 a staged file's name gives for its bytes (`FileStore.stage`), or None for a name
    that gives none."""
    digest = path.name.split(".", 1)[0]
    if len(digest) == 64 and all(character in "0123456789abcdef" for character in digest):
        return digest
    return None


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
