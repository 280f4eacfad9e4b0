"""Getting things back out of a backup: the index snapshot, the files of some studies (checked
against the snapshot's SHA-256), or the whole data directory of a box rebuilt after a fire.

Putting studies back into the live archive goes through the normal ingest (duplicates stay
duplicates, the index row and fsync rules apply): that is the domain's, so the command line does
it with what `extract_studies` returns (`appliance/backup_cli.py`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sqlalchemy import create_engine, select

from appliance.backup import BackupError
from appliance.backup.borgmatic import json_of, run_borgmatic
from appliance.backup.history import runs
from appliance.backup.snapshot import AUDIT, INDEX, SETTINGS, integrity_problems, sqlite_index_path
from appliance.backup.targets import USB, Target, mounted, present_labels
from appliance.config import Config
from appliance.db.schema import instance, patient, series, study

STAGING = "staging"
ARCHIVE = "archive"
QUARANTINE = "quarantine"


@contextmanager
def reachable(config: Config, target: Target) -> Iterator[str]:
    """The target made readable for the block: a USB disk mounted (of several plugged in, the one
    backed up last). Yields the disk's label ('' for a repository). Raises BackupError."""
    if target.name != USB:
        yield ""
        return
    present = present_labels(config.backup)
    if not present:
        raise BackupError("Aucun disque de sauvegarde n'est branché.")
    used = [record.disk for record in runs(config.backup.state_directory) if record.succeeded]
    label = max(present, key=lambda disk: len(used) - used[::-1].index(disk) if disk in used else -1)
    with mounted(config.backup, label):
        yield label


def archive_names(config: Config, target: Target) -> list[str]:
    """The archives of `target`, oldest first."""
    listed = json_of(run_borgmatic(config, ["repo-list", "--json"], "La liste des sauvegardes est illisible.", target))
    try:
        return [str(item["name"]) for item in listed[0]["archives"]]
    except (LookupError, TypeError) as error:
        raise BackupError("La liste des sauvegardes est illisible.", str(listed)[:500]) from error


def resolved_archive(config: Config, target: Target, archive: str) -> str:
    """`archive`, or the newest one for "latest"; BackupError when the repository holds none."""
    if archive != "latest":
        return archive
    names = archive_names(config, target)
    if not names:
        raise BackupError(f"La cible {target.name} ne contient encore aucune sauvegarde.")
    return names[-1]


def extract(config: Config, target: Target, archive: str, paths: Sequence[str], destination: Path) -> None:
    """Extract `paths` (as stored: `staging/index.sqlite`, `archive/2026/...`) of `archive` under
    `destination`. Raises BackupError (a damaged repository fails here: borg checks every chunk)."""
    destination.mkdir(parents=True, exist_ok=True)
    arguments = ["extract", "--archive", archive, "--destination", str(destination)]
    for path in paths:
        arguments += ["--path", path]
    run_borgmatic(config, arguments, "L'extraction depuis la sauvegarde a échoué.", target)


def extract_index(config: Config, target: Target, archive: str, scratch: Path) -> Path:
    """The index snapshot of `archive`, extracted into `scratch`; BackupError when the archive
    has none (a PostgreSQL index: `borgmatic restore`) or it is damaged."""
    extract(config, target, archive, [f"{STAGING}/{INDEX}"], scratch)
    path = scratch / STAGING / INDEX
    if not path.is_file():
        raise BackupError("Cette sauvegarde ne contient pas de copie de l'index SQLite.", archive)
    return path


def restore_index(config: Config, target: Target, archive: str, destination: Path, force: bool) -> list[str]:
    """Put `archive`'s index snapshot at `destination`; returns the integrity problems found ([]
    = sound). Refuses (BackupError) an existing file, and above all the live index, without
    `force` (the daemons must then be stopped)."""
    live = sqlite_index_path(config)
    is_live = live is not None and destination.absolute() == live.absolute()
    if destination.exists() and not force:
        what = "l'index en service" if is_live else str(destination)
        raise BackupError(f"Refusé : {what} existe déjà (--force pour le remplacer, démons arrêtés).")
    scratch = config.backup.state_directory / "restore"
    clean(scratch)
    try:
        snapshot = extract_index(config, target, archive, scratch)
        problems = integrity_problems(snapshot)
        destination.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("-wal", "-shm"):  # a stale journal would be replayed over the restored file
            destination.with_name(destination.name + suffix).unlink(missing_ok=True)
        shutil.move(snapshot, destination)
        owned_like_parent(destination)
        return problems
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@dataclass(frozen=True)
class SavedFile:
    """One instance as the index snapshot names it."""

    study_instance_uid: str
    sop_instance_uid: str
    path: str  # under archive/
    sha256: str


def saved_files(snapshot: Path, patient_id: str = "", study_instance_uids: Sequence[str] = ()) -> list[SavedFile]:
    """The instances of the snapshot's studies of `patient_id` and/or `study_instance_uids`."""
    engine = create_engine(f"sqlite:///{snapshot}")
    joined = instance.join(series, series.c.id == instance.c.series_pk).join(study, study.c.id == series.c.study_pk)
    joined = joined.join(patient, patient.c.id == study.c.patient_pk)
    columns = (study.c.study_instance_uid, instance.c.sop_instance_uid, instance.c.path, instance.c.sha256)
    statement = select(*columns).select_from(joined).order_by(study.c.study_instance_uid, instance.c.path)
    conditions = []
    if patient_id:
        conditions.append(patient.c.patient_id == patient_id)
    if study_instance_uids:
        conditions.append(study.c.study_instance_uid.in_(list(study_instance_uids)))
    if not conditions:
        return []
    try:
        with engine.connect() as connection:
            return [SavedFile(*row) for row in connection.execute(statement.where(*conditions))]
    finally:
        engine.dispose()


def study_folders(files: Sequence[SavedFile]) -> list[str]:
    """The stored folders holding these files (`archive/YYYY/MM/DD/<study hash>`), once each: one
    extraction path per study rather than per file."""
    folders = {str(PurePosixPath(ARCHIVE, *PurePosixPath(file.path).parts[:4])) for file in files}
    return sorted(folders)


@dataclass(frozen=True)
class CheckedFile:
    saved: SavedFile
    location: Path  # where it was extracted
    state: str  # "ok", "missing", "altered"
    size_bytes: int = 0


def extract_studies(
    config: Config, target: Target, archive: str, files: Sequence[SavedFile], scratch: Path
) -> list[CheckedFile]:
    """Extract the studies of `files` under `scratch` and check each file against its SHA-256."""
    if files:
        extract(config, target, archive, study_folders(files), scratch)
    return [checked(file, scratch / ARCHIVE / file.path) for file in files]


def checked(file: SavedFile, location: Path) -> CheckedFile:
    if not location.is_file():
        return CheckedFile(file, location, "missing")
    digest = hashlib.sha256()
    size = 0
    with open(location, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return CheckedFile(file, location, "ok" if digest.hexdigest() == file.sha256 else "altered", size)


def clean(scratch: Path) -> None:
    """An empty scratch folder, root's alone (what is extracted there is patient data)."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    os.chmod(scratch, 0o700)


def restore_box(config: Config, target: Target, archive: str, force: bool) -> list[str]:
    """A box rebuilt after a fire: the image store, the quarantine, the index, the audit trail and
    the console settings of `archive` put back under this box's data directory. Refuses
    (BackupError) a box that already holds an archive without `force`. Returns the integrity
    problems of the restored index ([] = sound). The daemons must be stopped."""
    data = config.storage.data_directory
    index = sqlite_index_path(config)
    if not force and ((index is not None and index.exists()) or any((data / ARCHIVE).glob("*"))):
        raise BackupError("Refusé : ce boîtier contient déjà des images ou un index (--force, démons arrêtés).")
    scratch = config.backup.state_directory / "restore"
    clean(scratch)
    try:
        extract(config, target, archive, [ARCHIVE, QUARANTINE, STAGING], scratch)
        for folder in (ARCHIVE, QUARANTINE):
            if (scratch / folder).is_dir():
                merge_into(scratch / folder, data / folder)
        return put_back_databases(config, scratch / STAGING)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def merge_into(source: Path, destination: Path) -> None:
    """Move every file of `source` to the same place under `destination` (same file system)."""
    for path in sorted(source.rglob("*")):
        if path.is_file():
            target = destination / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)


def put_back_databases(config: Config, staging: Path) -> list[str]:
    """The index, the audit trail and the console settings from the extracted staging folder."""
    problems: list[str] = []
    index = sqlite_index_path(config)
    moves = [(staging / AUDIT, config.audit.database), (staging / SETTINGS, config.console_settings_file)]
    if index is not None:
        moves.insert(0, (staging / INDEX, index))
    for source, destination in moves:
        if not source.is_file():
            continue
        if source.suffix == ".sqlite":
            problems += integrity_problems(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(source, destination)
        owned_like_parent(destination)
    return problems


def owned_like_parent(path: Path) -> None:
    """A restored database is the daemons' (the owner of its folder), 0640, not the snapshot's 0600
    root-only mode."""
    folder = path.parent.stat()
    os.chown(path, folder.st_uid, folder.st_gid)
    os.chmod(path, 0o640)
