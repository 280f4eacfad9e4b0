"""Receiving one object: check it, write it durably, index it, and say what happened.

The answer is a value (`StoreOutcome`) that the DICOM edge maps to a status. Success is only
returned once the file is durable in place and its index row committed (A3).

Duplicate policy (same SOP Instance UID as an archived instance):
- same bytes as received the first time, or as stored now: nothing is written, success;
- other bytes: the archived instance stays as it is (the first one received is authoritative); the
  new object is kept in `quarantine/` and listed in the index, so nothing acknowledged is lost, and
  the answer is success with a warning in the log.

Several processes may ingest at once (the DICOM archive and, later, STOW-RS). Files are linked into
place, never renamed over an existing one (`FileStore.write_durably`), and an index uniqueness
conflict means another writer indexed the instance first: it is a duplicate, handled by the policy
above. A file is removed only by the writer that created it, and only when no index row names it.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import logging
import threading
from dataclasses import dataclass, replace
from datetime import date

from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from appliance.archive.attributes import InstanceAttributes, InvalidObject, read_attributes
from appliance.archive.index import DuplicateInstance, Index
from appliance.archive.storage import (
    FileStore,
    Staged,
    StorageFull,
    WrittenFile,
    instance_relative_path,
    uid_hash,
)

LOGGER = logging.getLogger(__name__)

LOCK_STRIPES = 64


class StoreOutcome(enum.Enum):
    STORED = "stored"
    DUPLICATE_IDENTICAL = "duplicate-identical"
    DUPLICATE_QUARANTINED = "duplicate-quarantined"
    REFUSED_NO_SPACE = "refused-no-space"
    REFUSED_INVALID = "refused-invalid"
    REFUSED_MISMATCH = "refused-mismatch"
    FAILED = "failed"


@dataclass(frozen=True)
class IncomingObject:
    """One C-STORE (or later STOW-RS) request: the encoded file and what the command said."""

    encoded: bytes
    affected_sop_instance_uid: str
    affected_sop_class_uid: str
    calling_ae_title: str


@dataclass(frozen=True)
class StoreResult:
    outcome: StoreOutcome
    detail: str = ""
    attributes: InstanceAttributes | None = None  # what was read from the object (None when unreadable)


class Ingest:
    """Stores incoming objects into one file store and index."""

    def __init__(self, files: FileStore, index: Index) -> None:
        self.files = files
        self.index = index
        self.stripes = [threading.Lock() for _ in range(LOCK_STRIPES)]

    def store(self, incoming: IncomingObject) -> StoreResult:
        """Archive one object; never raises for a bad object, a full disk or a database failure.

        The bytes are staged first (`FileStore.stage`), so the disk writes them while they are
        parsed and checked; an object refused or already archived has its staged file removed.
        Its DICOM JSON is left to the worker (`archive.documents`, within seconds): about 250 µs of
        the 2 ms of CPU a small image cost here (200 two-image studies over one association, A/B
        in the daemon: 0.99 -> 0.86 s)."""
        staged = self.stage(incoming.encoded)
        try:
            return self.store_staged(incoming, staged)
        finally:
            if staged is not None:
                staged.discard()

    def stage(self, encoded: bytes) -> Staged | None:
        """The bytes staged, or None when they cannot be (a full disk, say): `store_new` then
        writes them itself, and reports what fails."""
        try:
            return self.files.stage(encoded)
        except (OSError, StorageFull):
            return None

    def store_staged(self, incoming: IncomingObject, staged: Staged | None) -> StoreResult:
        try:
            attributes = read_attributes(incoming.encoded, with_document=False)
        except InvalidObject as error:
            return StoreResult(StoreOutcome.REFUSED_INVALID, str(error))
        if attributes.sop_instance_uid != incoming.affected_sop_instance_uid or (
            attributes.sop_class_uid != incoming.affected_sop_class_uid
        ):
            return StoreResult(StoreOutcome.REFUSED_MISMATCH, "SOP UIDs differ from the C-STORE request")
        with self.stripe(attributes.sop_instance_uid):
            return replace(self.store_parsed(incoming, attributes, staged), attributes=attributes)

    def store_object(self, encoded: bytes, sender: str, expected_study_uid: str = "") -> StoreResult:
        """Archive one object that is its own request (STOW-RS): the same checks, writing, duplicate
        policy and answers as `store`, the object parsed once. When `expected_study_uid` is given
        (STOW-RS to /studies/{uid}), an object of another study is refused as mismatched (PS3.18
        10.5.1). Never raises for a bad object, a full disk or a database failure.
        """
        try:
            attributes = read_attributes(encoded)
        except InvalidObject as error:
            return StoreResult(StoreOutcome.REFUSED_INVALID, str(error))
        if expected_study_uid and attributes.study_instance_uid != expected_study_uid:
            detail = "the object belongs to another study than the one the request names"
            return StoreResult(StoreOutcome.REFUSED_MISMATCH, detail, attributes)
        incoming = IncomingObject(encoded, attributes.sop_instance_uid, attributes.sop_class_uid, sender)
        with self.stripe(attributes.sop_instance_uid):
            return replace(self.store_parsed(incoming, attributes), attributes=attributes)

    def stripe(self, sop_instance_uid: str) -> threading.Lock:
        return self.stripes[hash(sop_instance_uid) % LOCK_STRIPES]

    def store_parsed(
        self, incoming: IncomingObject, attributes: InstanceAttributes, staged: Staged | None = None
    ) -> StoreResult:
        try:
            existing = self.index.stored_instance(attributes.sop_instance_uid)
            if existing is not None:
                return self.store_duplicate(incoming, attributes, {existing.sha256, existing.received_sha256})
            return self.store_new(incoming, attributes, staged)
        except StorageFull as error:
            return StoreResult(StoreOutcome.REFUSED_NO_SPACE, str(error))
        except (OSError, SQLAlchemyError) as error:
            LOGGER.exception("storing instance %s failed", attributes.sop_instance_uid)
            return StoreResult(StoreOutcome.FAILED, type(error).__name__)

    def store_new(
        self, incoming: IncomingObject, attributes: InstanceAttributes, staged: Staged | None = None
    ) -> StoreResult:
        relative_path = instance_relative_path(
            attributes.study_date,
            date.today(),
            attributes.study_instance_uid,
            attributes.series_instance_uid,
            attributes.sop_instance_uid,
        )
        written = self.files.write_durably(
            incoming.encoded, relative_path, keep_pending=True, defer_sync=True, staged=staged
        )
        unsynced = [written.unsynced] if written.unsynced is not None else []
        try:
            self.index.add_instance(attributes, written, incoming.calling_ae_title, unsynced)
        except DuplicateInstance:
            self.files.settled(written)
            return self.lost_the_race(incoming, attributes, written)
        # Any other failure leaves the file where it is, unacknowledged, with its pending link: the
        # next start indexes it (`adopt_pending`), or another writer of the same bytes does first.
        self.files.settled(written)
        return StoreResult(StoreOutcome.STORED)

    def lost_the_race(
        self, incoming: IncomingObject, attributes: InstanceAttributes, written: WrittenFile
    ) -> StoreResult:
        """Another writer indexed the instance first: the duplicate policy, then tidy our own file."""
        existing = self.index.stored_instance(attributes.sop_instance_uid)
        if existing is None:  # indexed by another writer, then deleted again: let the sender retry
            return StoreResult(StoreOutcome.FAILED, "the instance left the index while it was being stored")
        result = self.store_duplicate(incoming, attributes, {existing.sha256, existing.received_sha256})
        if written.created and existing.path != written.relative_path:
            self.files.absolute(written.relative_path).unlink(missing_ok=True)
        return result

    def store_duplicate(
        self, incoming: IncomingObject, attributes: InstanceAttributes, known_digests: set[str]
    ) -> StoreResult:
        digest = hashlib.sha256(incoming.encoded).hexdigest()
        if digest in known_digests:
            return StoreResult(StoreOutcome.DUPLICATE_IDENTICAL)
        relative_path = f"{uid_hash(attributes.sop_instance_uid)}/{digest}.dcm"
        written = self.files.write_durably(incoming.encoded, relative_path, under=self.files.quarantine_directory)
        with contextlib.suppress(IntegrityError):  # the very same bytes were quarantined before
            self.index.add_quarantined(attributes.sop_instance_uid, written, incoming.calling_ae_title)
        LOGGER.warning(
            "instance %s received again with other content from %s: kept in quarantine",
            attributes.sop_instance_uid,
            incoming.calling_ae_title,
        )
        return StoreResult(StoreOutcome.DUPLICATE_QUARANTINED, relative_path)
