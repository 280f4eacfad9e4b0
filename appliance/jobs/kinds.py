"""What each kind of job does, with the archive's own functions, and the summary it keeps (JSON).

- `verify`: every indexed file against its SHA-256, and the orphan files (`archive.integrity.verify`).
- `compress`: verified lossless compression of every image still stored uncompressed
  (`archive.lossless.compress_everything`), holding the compression lock as `archive compress` does.
- `reindex`: the *online* index check: the files no index row points to (an ingest or a
  compression interrupted by a crash) are indexed, or set aside in quarantine/ when their instance
  is already indexed elsewhere (`archive.integrity.adopt_orphans`), holding the compression lock so
  that no compressed file is caught half-installed.
- `tier-move`: every study past its immediate-access period moved to the deferred tier, verified
  (`archive.tiers.move_due`), holding the compression lock; `tier-recall`: one study brought back.
- `backup` (development, `make run`): the nightly backup now, to the data folder's local repository
  (made on first use), holding the compression lock as `appliance backup run` does. On a box the
  backup runs as root from systemd: the console asks for it through a request file
  (`appliance-backup-now.path`), never through this runner, which runs as the appliance user.
- `verify-audit`: the audit trail's hash chain recomputed (`audit.trail.AuditTrail.verify`): a
  year of records takes a minute or more, so the console runs it here, with its progress.

Why not the full rebuild: `archive.integrity.reindex` empties the study, series and instance tables
before it reads every file again. While it runs, queries and retrieves would answer from a
half-empty index and an image received meanwhile would be indexed into it, so it needs the index to
itself: it stays the command `appliance archive reindex`, with every daemon stopped (which the
console, served by one of them, cannot do). What can go wrong with the index while the box runs is
a file without its row, and that is what the online check repairs; a row without its file is for
`verify` to report and the backup to restore.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Engine

from appliance.archive.deferred import DeferredStore, deferred_store
from appliance.archive.index import Index
from appliance.archive.integrity import DamagedFile, adopt_orphans, orphan_files, verify
from appliance.archive.lossless import SYNTAXES, LosslessCompressor, compress_everything, compression_lock
from appliance.archive.lossy import LossyPolicy
from appliance.archive.progress import ProgressCallback
from appliance.archive.storage import FileStore
from appliance.archive.tiers import NoDeferredTier, bring_back, move_due
from appliance.audit.trail import verify_file
from appliance.backup import BackupError
from appliance.backup.local import prepare_development_repository
from appliance.backup.nightly import run_backup as back_up_every_target
from appliance.config import Config
from appliance.jobs.queue import BACKUP, COMPRESS, REINDEX, TIER_MOVE, TIER_RECALL, VERIFY, VERIFY_AUDIT

# A result lists at most this many files (the counts are complete; the CLI lists them all).
LISTED_FILES = 100
LISTED_BREAKS = 1000  # records breaking the audit chain named in a result (`appliance audit verify` names them all)
LOCK_POLL_SECONDS = 1.0
WAITING_FOR_LOCK = "waiting for the compression lock (another compression is running)"
PREPARING_REPOSITORY = "preparing the local backup repository"
BACKING_UP = "backing up (snapshot of the index, then borg)"


@dataclass(frozen=True)
class Workshop:
    """What jobs work with: the index, the files, the configuration, and processes to compress in
    (None: compress in the runner's own thread)."""

    engine: Engine
    files: FileStore
    config: Config
    executor: Executor | None = None


def workshop_of(engine: Engine, config: Config, executor: Executor | None = None) -> Workshop:
    storage = config.storage
    files = FileStore(storage.data_directory, storage.minimum_free_space_mb * 1024 * 1024)
    return Workshop(engine, files, config, executor)


Work = Callable[[Workshop, Mapping[str, Any], ProgressCallback], dict[str, Any]]


def run_verify(workshop: Workshop, arguments: Mapping[str, Any], progress: ProgressCallback) -> dict[str, Any]:
    report = verify(workshop.engine, workshop.files, progress)
    return {
        "verified": report.checked,
        "damaged": len(report.missing) + len(report.altered),
        "missing": len(report.missing),
        "altered": len(report.altered),
        "orphans": len(report.orphans),
        "intact": report.intact,
        "missing_files": [described(file) for file in report.missing[:LISTED_FILES]],
        "altered_files": [described(file) for file in report.altered[:LISTED_FILES]],
        "orphan_files": report.orphans[:LISTED_FILES],
    }


def described(file: DamagedFile) -> dict[str, str]:
    """A damaged file with what is needed to restore it (the patient's IPP, never a name)."""
    return {
        "path": file.path,
        "study_instance_uid": file.study_instance_uid,
        "study_date": file.study_date,
        "patient_id": file.patient_id,
    }


def run_compress(workshop: Workshop, arguments: Mapping[str, Any], progress: ProgressCallback) -> dict[str, Any]:
    lossless = workshop.config.lossless
    syntax = SYNTAXES[lossless.transfer_syntax]
    compressor = LosslessCompressor(Index(workshop.engine), workshop.files, syntax, timedelta(0))
    with compression_lock_when_free(workshop.files, progress):
        report = compress_everything(compressor, workshop.executor, progress)
    return {
        "compressed": report.compressed,
        "skipped": report.skipped,
        "failed_verification": report.failed,
        "saved_bytes": report.bytes_saved,
        "transfer_syntax": lossless.transfer_syntax,
    }


def run_reindex(workshop: Workshop, arguments: Mapping[str, Any], progress: ProgressCallback) -> dict[str, Any]:
    with compression_lock_when_free(workshop.files, progress):
        orphans = orphan_files(workshop.engine, workshop.files, progress)
        adoption = adopt_orphans(workshop.engine, workshop.files, orphans, progress)
    return {
        "orphans": len(orphans),
        "reindexed": len(adoption.adopted),
        "set_aside": len(adoption.set_aside),
        "indexed_meanwhile": len(adoption.indexed_meanwhile),
        "reindexed_files": adoption.adopted[:LISTED_FILES],
        "set_aside_files": adoption.set_aside[:LISTED_FILES],
    }


@contextlib.contextmanager
def compression_lock_when_free(files: FileStore, progress: ProgressCallback) -> Iterator[None]:
    """Hold the compression lock, waiting for it with a checkpoint each second (a cancellation is
    heard while another compression runs)."""
    while True:
        with compression_lock(files, wait=False) as held:
            if held:
                yield
                return
        progress(WAITING_FOR_LOCK, 0, 0)
        time.sleep(LOCK_POLL_SECONDS)


def run_verify_audit(workshop: Workshop, arguments: Mapping[str, Any], progress: ProgressCallback) -> dict[str, Any]:
    """The audit chain recomputed in one snapshot of the trail: how many records, the last one's
    seq and hash (to copy outside the box), and each record that breaks the chain, and why."""
    report = verify_file(workshop.config.audit.database, progress)
    return {
        "checked": report.checked,
        "first_seq": report.first_seq,
        "last_seq": report.last_seq,
        "last_hash": report.last_hash,
        "chain_intact": report.intact,
        "broken": len(report.breaks),
        "breaks": [{"seq": found.seq, "problem": found.problem} for found in report.breaks[:LISTED_BREAKS]],
    }


def deferred_tier(workshop: Workshop) -> DeferredStore:
    """The configured deferred tier. Raises NoDeferredTier when there is none."""
    store = deferred_store(workshop.config.tiers, workshop.config.storage.data_directory)
    if store is None:
        raise NoDeferredTier("no deferred tier is configured (tiers.deferred)")
    return store


def run_tier_move(workshop: Workshop, arguments: Mapping[str, Any], progress: ProgressCallback) -> dict[str, Any]:
    """Every study past `tiers.immediate_years` to the deferred tier, verified, under the compression lock."""
    store = deferred_tier(workshop)
    years = workshop.config.tiers.immediate_years
    with compression_lock_when_free(workshop.files, progress):
        lossy = LossyPolicy.of(workshop.config.tiers)  # None unless tiers.lossy.enabled
        report = move_due(workshop.engine, workshop.files, store, years, date.today(), progress, lossy)
    return {
        "studies_moved": report.studies,
        "instances_moved": report.instances,
        "moved_bytes": report.size_bytes,
        "studies_failed": len(report.failures),
        "failures": list(report.failures[:LISTED_FILES]),
        "tier": store.kind,
        "lossy_copies": report.lossy_copies,
    }


def run_tier_recall(workshop: Workshop, arguments: Mapping[str, Any], progress: ProgressCallback) -> dict[str, Any]:
    """One study (`study_instance_uid`) brought back to the main storage, under the compression lock."""
    store = deferred_tier(workshop)
    study_instance_uid = str(arguments.get("study_instance_uid", ""))
    with compression_lock_when_free(workshop.files, progress):
        back = bring_back(workshop.engine, workshop.files, store, study_instance_uid, progress)
    return {"study_instance_uid": study_instance_uid, "instances_back": back.instances, "back_bytes": back.size_bytes}


def run_backup(workshop: Workshop, arguments: Mapping[str, Any], progress: ProgressCallback) -> dict[str, Any]:
    """One backup run to every target (development: the local repository made first when missing).
    A target's failure is a result (its reason kept), not an error of the job."""
    config = workshop.config
    progress(PREPARING_REPOSITORY, 0, 0)
    try:
        prepare_development_repository(config)
    except BackupError as error:
        return {"succeeded": False, "targets": 0, "reason": error.reason, "detail": error.detail}
    with compression_lock_when_free(workshop.files, progress):
        progress(BACKING_UP, 0, 0)
        records = back_up_every_target(config)
    return {
        "succeeded": all(record.succeeded for record in records),
        "targets": len(records),
        "archive": ", ".join(record.archive for record in records if record.archive),
        "files": sum(record.files for record in records),
        "original_bytes": sum(record.original_bytes for record in records),
        "deduplicated_bytes": sum(record.deduplicated_bytes for record in records),
        "reason": " ".join(record.reason for record in records if record.reason),
    }


WORK: dict[str, Work] = {
    VERIFY: run_verify,
    COMPRESS: run_compress,
    REINDEX: run_reindex,
    VERIFY_AUDIT: run_verify_audit,
    TIER_MOVE: run_tier_move,
    TIER_RECALL: run_tier_recall,
    BACKUP: run_backup,
}
