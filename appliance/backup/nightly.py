"""One backup run: the snapshot, then each target in turn (the repository, then the USB disk
plugged in tonight), each result recorded in the history, whatever happened to the others.

For a USB disk: the one plugged in is mounted (with several, the one whose last backup is the
oldest), backed up, pruned (keep_*), compacted, checked, unmounted. None plugged in is a failed run
with the reason said in French. The off-site ssh:// repository is never pruned from the box: its
server runs `borg serve --append-only`, and pruning is done on the server's side (README.md).
"""

from __future__ import annotations

import fcntl
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appliance.backup import BackupError
from appliance.backup.borgmatic import json_of, run_borgmatic
from appliance.backup.history import RunRecord, append, rotation, runs
from appliance.backup.snapshot import take_snapshot
from appliance.backup.targets import USB, Target, mounted, present_labels, targets_of
from appliance.config import BackupConfig, Config

Clock = Callable[[], datetime]
LOCK = "backup.lock"


def utc_now() -> datetime:
    return datetime.now(UTC)


@contextmanager
def exclusive(state_directory: Path) -> Iterator[None]:
    """Backup runs, drills and restores take turns (borg would otherwise wait on its own lock
    and give up)."""
    state_directory.mkdir(parents=True, exist_ok=True)
    with open(state_directory / LOCK, "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def run_backup(config: Config, clock: Clock = utc_now) -> list[RunRecord]:
    """Back up to every configured target; record and return one result per target. Raises
    BackupError only when nothing is configured."""
    targets = targets_of(config.backup)
    if not targets:
        raise BackupError("Aucune sauvegarde n'est configurée (backup.repository, backup.usb.labels).")
    with exclusive(config.backup.state_directory):
        started = clock()
        try:
            take_snapshot(config, started)
        except (OSError, sqlite3.Error) as error:
            reason = "La copie de l'index ou du journal d'audit n'a pas pu être faite."
            records = [RunRecord(target.name, started, clock(), False, reason=reason, detail=str(error))
                       for target in targets]  # fmt: skip
        else:
            records = [back_up(config, target, clock) for target in targets]
        for record in records:
            append(config.backup.state_directory, record)
    return records


def back_up(config: Config, target: Target, clock: Clock) -> RunRecord:
    """One target's run, as a record (a failure is a record, not an exception)."""
    started = clock()
    label = ""
    try:
        if target.name != USB:
            return finished(create(config, target), target, started, clock())
        label = disk_for_tonight(config.backup)
        with mounted(config.backup, label):
            require_repository(target, label)
            return replace(finished(create(config, target), target, started, clock()), disk=label)
    except BackupError as error:
        return RunRecord(target.name, started, clock(), False, disk=label, reason=error.reason, detail=error.detail)


def disk_for_tonight(backup: BackupConfig) -> str:
    """The label of the USB disk to use: the one plugged in, or of several the least recently used.
    Raises BackupError when none is."""
    present = present_labels(backup)
    if not present:
        advice = rotation(runs(backup.state_directory), backup.usb.labels)
        expected = f" Brancher le disque {advice.next_disk}." if advice else ""
        raise BackupError(
            f"Aucun disque de sauvegarde n'est branché (attendu : {' ou '.join(backup.usb.labels)}).{expected}"
        )
    advice = rotation(runs(backup.state_directory), tuple(present))
    return advice.next_disk if advice else present[0]


def require_repository(target: Target, label: str) -> None:
    """A disk without a repository is refused (each disk is initialised, and its key escrowed, once)."""
    if not (Path(target.repository) / "config").is_file():
        raise BackupError(
            f"Le disque {label} n'est pas préparé pour la sauvegarde.",
            f"no borg repository at {target.repository}: `appliance backup init --target usb` with it plugged in",
        )


def create(config: Config, target: Target) -> dict[str, Any]:
    """borgmatic create (then prune and compact where the box may), then check; borg's statistics
    of the new archive. Raises BackupError."""
    where = f"vers {target.name}"
    output = run_borgmatic(config, ["create", "--json"], f"La sauvegarde {where} a échoué.", target)
    archive = archive_of(json_of(output))
    if target.box_may_prune:
        run_borgmatic(config, ["prune"], f"Le tri des anciennes sauvegardes {where} a échoué.", target)
        run_borgmatic(config, ["compact"], f"Le compactage {where} a échoué.", target)
    run_borgmatic(config, ["check"], f"La vérification de la sauvegarde {where} a échoué.", target)
    return archive


def archive_of(created: Any) -> dict[str, Any]:
    """The `archive` object of borgmatic create --json (one repository per run)."""
    try:
        archive: dict[str, Any] = created[0]["archive"]
        return archive
    except (LookupError, TypeError) as error:
        raise BackupError("borgmatic n'a pas dit ce qu'il a sauvegardé.", str(created)[:500]) from error


def finished(archive: dict[str, Any], target: Target, started: datetime, at: datetime) -> RunRecord:
    stats = archive.get("stats", {})
    return RunRecord(
        target.name,
        started,
        at,
        True,
        archive=str(archive.get("name", "")),
        files=int(stats.get("nfiles", 0)),
        original_bytes=int(stats.get("original_size", 0)),
        compressed_bytes=int(stats.get("compressed_size", 0)),
        deduplicated_bytes=int(stats.get("deduplicated_size", 0)),
    )


def initialise(config: Config, target: Target) -> str:
    """Create `target`'s repository (repokey-blake2; a USB disk must be the only one plugged in).
    Returns the disk's label ('' for the repository). Raises BackupError."""
    arguments = ["repo-create", "--encryption", "repokey-blake2"]
    if target.name != USB:
        run_borgmatic(config, arguments, f"Le dépôt {target.name} n'a pas pu être créé.", target)
        return ""
    present = present_labels(config.backup)
    if len(present) != 1:
        raise BackupError("Brancher un seul disque de sauvegarde pour le préparer.", f"plugged in: {present}")
    with mounted(config.backup, present[0]):
        run_borgmatic(config, arguments, f"Le disque {present[0]} n'a pas pu être préparé.", target)
    return present[0]
