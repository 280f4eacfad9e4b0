"""The monthly restore drill (B2): prove that last night's backup can be restored.

From the newest archive of the first target (the repository, else the USB disk plugged in): the
index snapshot is extracted and checked (`PRAGMA integrity_check`), then a random sample of its
studies is extracted into a scratch area and every file is checked against the SHA-256 the
snapshot's instance table keeps; finally `borg check` (repository and archives) is forced.

What catches what: a file altered on disk before the backup (bit rot, a bad write) comes back with
other bytes, and only the SHA-256 against the index catches it; a file missing from the store comes
back missing; a damaged repository segment makes borg refuse the extraction (every chunk is
authenticated) and `borg check` name it. The result (time, counts, each failure by study UID and
path, no patient data) is recorded for the quality-control report and the dashboard; a failed
drill is a finding of the monitor.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy import create_engine, select

from appliance.backup import BackupError
from appliance.backup.borgmatic import run_borgmatic
from appliance.backup.history import DrillRecord, append
from appliance.backup.nightly import Clock, exclusive, utc_now
from appliance.backup.restore import (
    clean,
    extract_index,
    extract_studies,
    reachable,
    resolved_archive,
    saved_files,
)
from appliance.backup.snapshot import integrity_problems
from appliance.backup.targets import Target, targets_of
from appliance.config import Config
from appliance.db.schema import study


def run_drill(
    config: Config, sample_size: int | None = None, seed: int | None = None, clock: Clock = utc_now
) -> DrillRecord:
    """Run the drill on the first target, record and return its result (a failure is a result).
    Raises BackupError only when no target is configured."""
    targets = targets_of(config.backup)
    if not targets:
        raise BackupError("Aucune sauvegarde n'est configurée : pas d'exercice de restauration.")
    size = sample_size or config.backup.drill.sample_studies
    with exclusive(config.backup.state_directory):
        record = drill(config, targets[0], size, random.Random(seed), clock)
        append(config.backup.state_directory, record)
    return record


def drill(config: Config, target: Target, sample_size: int, chance: random.Random, clock: Clock) -> DrillRecord:
    started = clock()
    scratch = config.backup.state_directory / "drill"
    label, archive = "", ""
    try:
        clean(scratch)
        with reachable(config, target) as label:
            archive = resolved_archive(config, target, "latest")
            record = checked_sample(config, target, archive, sample_size, chance, scratch)
            reason = "La vérification du dépôt de sauvegarde a échoué."
            run_borgmatic(config, ["check", "--force"], reason, target)
        failed = record.index_problems or record.missing or record.altered
        return DrillRecord(
            **{**record.__dict__, "target": target.name, "disk": label, "started_at": started,
               "finished_at": clock(), "succeeded": not failed, "reason": failure_reason(record)}
        )  # fmt: skip
    except BackupError as error:
        return DrillRecord(target.name, started, clock(), False, archive=archive, disk=label,
                           reason=error.reason, detail=error.detail)  # fmt: skip
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def checked_sample(
    config: Config, target: Target, archive: str, sample_size: int, chance: random.Random, scratch: Path
) -> DrillRecord:
    """The index snapshot and a sample of studies extracted into `scratch` and checked (the
    record's times and verdict are the caller's)."""
    index = extract_index(config, target, archive, scratch)
    problems = integrity_problems(index)
    chosen = sample(all_studies(index), sample_size, chance)
    files = saved_files(index, study_instance_uids=chosen)
    results = extract_studies(config, target, archive, files, scratch)
    named = {state: [f"{result.saved.study_instance_uid}: {result.saved.path}" for result in results
                     if result.state == state] for state in ("missing", "altered")}  # fmt: skip
    at = datetime.min
    return DrillRecord(
        target.name, at, at, False, archive=archive, index_problems=problems, studies=len(chosen),
        files=len(results), bytes=sum(result.size_bytes for result in results),
        missing=named["missing"], altered=named["altered"],
    )  # fmt: skip


def all_studies(index: Path) -> list[str]:
    engine = create_engine(f"sqlite:///{index}")
    try:
        with engine.connect() as connection:
            return [str(uid) for uid in connection.scalars(select(study.c.study_instance_uid).order_by(study.c.id))]
    finally:
        engine.dispose()


def sample(studies: Sequence[str], size: int, chance: random.Random) -> list[str]:
    return list(studies) if len(studies) <= size else chance.sample(list(studies), size)


def failure_reason(record: DrillRecord) -> str:
    """The drill's failures in one French sentence ('' when it passed)."""
    parts = []
    if record.index_problems:
        parts.append("la copie de l'index est endommagée")
    if record.missing:
        parts.append(f"{len(record.missing)} fichier(s) manquant(s)")
    if record.altered:
        parts.append(f"{len(record.altered)} fichier(s) altéré(s)")
    return ("Exercice de restauration en échec : " + ", ".join(parts) + ".") if parts else ""
