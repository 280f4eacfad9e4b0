"""`appliance backup ...`: the command line of the backup (B1, B2), imported by `appliance/cli.py`.

configure (the borgmatic file and the timers' schedule), init (a repository, a new USB disk), run
(the nightly backup, under the archive's compression lock so that no file the snapshot names is
replaced meanwhile), list (results, USB rotation, archives), restore index|studies|box, drill,
export-key (the printable escrow page). Restored studies go back into the live archive through
the normal ingest, as the archive's owner, and each study is recorded in the audit trail (110104,
create).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from appliance.archive.attributes import InvalidObject, read_attributes
from appliance.archive.index import Index
from appliance.archive.ingest import IncomingObject, Ingest, StoreOutcome
from appliance.archive.lossless import LOCK_FILE, compression_lock
from appliance.archive.storage import FileStore
from appliance.audit.activity import local_user, this_application
from appliance.audit.events import Action, AuditEvent, EventId, Outcome, study
from appliance.audit.trail import AuditTrail
from appliance.backup import BackupError
from appliance.backup.borgmatic import run_borgmatic, write_borgmatic_file
from appliance.backup.drill import run_drill
from appliance.backup.history import KeyExport, RunRecord, record_key_export, rotation, runs
from appliance.backup.nightly import exclusive, initialise, run_backup
from appliance.backup.restore import (
    CheckedFile,
    archive_names,
    clean,
    extract_index,
    extract_studies,
    reachable,
    resolved_archive,
    restore_box,
    restore_index,
    saved_files,
)
from appliance.backup.targets import Target, targets_of
from appliance.config import Config
from appliance.daemons.runtime import add_location_options, loader, open_index

RESTORE_AE_TITLE = "BACKUP-RESTORE"  # the calling AE title the index keeps for restored instances
DRILL_HOURS_AFTER_BACKUP = 4


def add_backup_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backup = commands.add_parser("backup", help="the nightly backup (borgmatic, borg), restores and the drill")
    actions = backup.add_subparsers(dest="action", required=True)
    configure = actions.add_parser("configure", help="write the borgmatic configuration and the timers' schedule")
    add_location_options(configure)
    configure.add_argument("--output", type=Path, help="borgmatic file to write (default: backup.borgmatic_file)")
    configure.add_argument("--systemd-directory", type=Path, help="also write the timers' drop-ins under this folder")
    for name, what in (("init", "create a target's repository (a USB disk: plug in only that one)"),
                       ("run", "back up now to every target (or one)"),
                       ("list", "the last results, the USB rotation, the archives of a target")):  # fmt: skip
        command = actions.add_parser(name, help=what)
        add_location_options(command)
        command.add_argument("--target", default="", help="remote, local or usb (default: every target)")
    add_restore_commands(actions)
    drill = actions.add_parser("drill", help="the restore drill now: a sample of studies restored and checked")
    add_location_options(drill)
    drill.add_argument("--sample", type=int, help="how many studies (default: backup.drill.sample_studies)")
    export = actions.add_parser("export-key", help="print a target's key for escrow (once, at commissioning)")
    add_location_options(export)
    export.add_argument("--target", required=True, help="remote, local or usb (the disk plugged in)")
    export.add_argument("--format", choices=["qr-html", "paper"], default="qr-html", help="qr-html (default) or paper")
    export.add_argument("--output", type=Path, required=True, help="file to write (0600)")


def add_restore_commands(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    restore = actions.add_parser("restore", help="bring back the index, some studies, or the whole box")
    kinds = restore.add_subparsers(dest="kind", required=True)
    index = kinds.add_parser("index", help="the index snapshot alone, to a given place")
    index.add_argument(
        "--to", type=Path, required=True, help="where to put it (never over the live index without --force)"
    )
    studies = kinds.add_parser("studies", help="studies back into the live archive, through the normal ingest")
    studies.add_argument("--patient-id", default="", help="every study of this patient ID (IPP)")
    studies.add_argument("--study", action="append", default=[], help="a Study Instance UID (repeatable)")
    kinds.add_parser("box", help="a rebuilt box: images, index, audit trail, console settings (daemons stopped)")
    for command in (index, studies, kinds.choices["box"]):
        add_location_options(command)
        command.add_argument("--target", default="", help="remote, local or usb (default: the first configured)")
        command.add_argument("--archive", default="latest", help="archive name (default: the newest)")
    for command in (index, kinds.choices["box"]):
        command.add_argument("--force", action="store_true", help="replace what is there (the daemons stopped)")


def backup_command(arguments: argparse.Namespace) -> int:
    """Run one `appliance backup` command; 0 when it succeeded, 1 when it failed (said on stderr)."""
    config = loader(arguments)()
    try:
        return dispatch(config, arguments)
    except BackupError as error:
        print(error.reason, file=sys.stderr)
        if error.detail:
            print(error.detail, file=sys.stderr)
        return 1


def dispatch(config: Config, arguments: argparse.Namespace) -> int:
    action = arguments.action
    if action == "configure":
        return configure(config, arguments.output, arguments.systemd_directory)
    if action == "run":
        return print_runs(backup_now(config))
    if action == "list":
        return print_list(config, arguments.target)
    if action == "drill":
        record = run_drill(config, arguments.sample)
        print(f"{'réussi' if record.succeeded else 'ÉCHEC'}: {record.studies} studies, {record.files} files, "
              f"{record.bytes} bytes in {record.seconds:.1f} s from {record.target} {record.archive}")  # fmt: skip
        for line in [record.reason, record.detail, *record.index_problems, *record.missing, *record.altered]:
            if line:
                print(f"  {line}")
        return 0 if record.succeeded else 1
    target = target_of(config, arguments.target)
    if action == "init":
        label = initialise(config, target)
        print(f"{target.name}{f' ({label})' if label else ''}: repository created; export its key now (export-key)")
        return 0
    if action == "export-key":
        return export_key(config, target, arguments.format, arguments.output)
    return restore_command(config, target, arguments)


def target_of(config: Config, name: str) -> Target:
    targets = targets_of(config.backup)
    if not targets:
        raise BackupError("Aucune sauvegarde n'est configurée (backup.repository, backup.usb.labels).")
    for target in targets:
        if target.name == name or not name:
            return target
    raise BackupError(f"La cible « {name} » n'est pas configurée.")


def configure(config: Config, output: Path | None, systemd_directory: Path | None) -> int:
    path = write_borgmatic_file(config, output)
    print(f"borgmatic configuration written to {path}")
    if systemd_directory is not None:
        for timer, schedule in timer_schedules(config).items():
            folder = systemd_directory / f"{timer}.d"
            folder.mkdir(parents=True, exist_ok=True)
            text = (
                "# Written by `appliance backup configure` from backup.time and backup.drill.\n"
                f"[Timer]\nOnCalendar=\nOnCalendar={schedule}\n"
            )
            (folder / "schedule.conf").write_text(text, encoding="utf-8")
            print(f"{timer}: {schedule}")
    return 0


def timer_schedules(config: Config) -> dict[str, str]:
    """OnCalendar of the nightly backup (backup.time) and of the drill (its day, some hours later)."""
    hour, minute = (int(part) for part in config.backup.time.split(":"))
    drill_at = datetime(2000, 1, 1, hour, minute) + timedelta(hours=DRILL_HOURS_AFTER_BACKUP)
    day = config.backup.drill.day_of_month
    return {
        "appliance-backup.timer": f"*-*-* {hour:02d}:{minute:02d}:00",
        "appliance-drill.timer": f"*-*-{day:02d} {drill_at:%H:%M}:00",
    }


def backup_now(config: Config) -> list[RunRecord]:
    """The nightly run, holding the archive's compression lock: the background compressor waits,
    so no file the index snapshot names is replaced or removed until borg has read it."""
    files = FileStore(config.storage.data_directory, 0)
    lock = files.data_directory / LOCK_FILE
    if not lock.exists():  # made by root here, the worker (user appliance) must still open it
        lock.touch(mode=0o660)
        owner = files.archive_directory.stat()
        os.chown(lock, owner.st_uid, owner.st_gid)
    with compression_lock(files, wait=True):
        return run_backup(config)


def print_runs(records: list[RunRecord]) -> int:
    for record in records:
        print(run_line(record))
        if not record.succeeded and record.detail:
            print(f"  {record.detail}", file=sys.stderr)
    return 0 if all(record.succeeded for record in records) else 1


def run_line(record: RunRecord) -> str:
    """`2026-12-02 02:30 UTC usb APPLIANCE-BACKUP-2 ok appliance-... 1234 files, 5 MB read, 1 MB added`."""
    where = f"{record.target} {record.disk}".strip()
    head = f"{record.started_at:%Y-%m-%d %H:%M} UTC  {where:<24}"
    if not record.succeeded:
        return f"{head} FAILED  {record.reason}"
    seconds = (record.finished_at - record.started_at).total_seconds()
    return (f"{head} ok      {record.archive}: {record.files} files, {record.original_bytes} bytes read, "
            f"{record.compressed_bytes} compressed, {record.deduplicated_bytes} added, {seconds:.1f} s")  # fmt: skip


def print_list(config: Config, target_name: str) -> int:
    records = runs(config.backup.state_directory)
    for record in records[-20:]:
        print(run_line(record))
    advice = rotation(records, config.backup.usb.labels)
    if advice is not None and advice.last_disk:
        print(f"USB: {advice.last_disk} used last: take it off site; plug in {advice.next_disk}")
    elif advice is not None:
        print(f"USB: plug in {advice.next_disk}")
    if target_name:
        target = target_of(config, target_name)
        with reachable(config, target):
            for name in archive_names(config, target):
                print(f"{target.name}: {name}")
    return 0


def export_key(config: Config, target: Target, kind: str, output: Path) -> int:
    """borg key export --qr-html (a page with the key as text and QR code) or --paper."""
    with reachable(config, target) as label:
        run_borgmatic(config, ["key", "export", f"--{kind}", "--path", str(output)], "La clé n'a pas pu être exportée.",
                      target)  # fmt: skip
    os.chmod(output, 0o600)
    record_key_export(config.backup.state_directory, KeyExport(target.name, datetime.now(UTC), label, kind))
    print(f"key of {target.name}{f' ({label})' if label else ''} written to {output}: print it, seal it with the "
          "passphrase, keep one copy at the practice and one in the contractor's vault")  # fmt: skip
    return 0


def restore_command(config: Config, target: Target, arguments: argparse.Namespace) -> int:
    with exclusive(config.backup.state_directory), reachable(config, target):
        archive = resolved_archive(config, target, arguments.archive)
        print(f"restoring from {target.name} {archive}", file=sys.stderr)
        if arguments.kind == "index":
            problems = restore_index(config, target, archive, arguments.to, arguments.force)
            return print_integrity(arguments.to, problems)
        if arguments.kind == "box":
            problems = restore_box(config, target, archive, arguments.force)
            print(f"images, index, audit trail and console settings restored under {config.storage.data_directory}")
            print("then: appliance archive verify --adopt-orphans (images received after the snapshot)")
            return print_integrity(config.storage.data_directory, problems)
        return restore_studies(config, target, archive, arguments.patient_id, arguments.study)


def print_integrity(where: Path, problems: list[str]) -> int:
    for problem in problems:
        print(f"  index damaged: {problem}", file=sys.stderr)
    print(f"{where}: index integrity {'ok' if not problems else 'DAMAGED'}")
    return 0 if not problems else 1


def restore_studies(config: Config, target: Target, archive: str, patient_id: str, study_uids: list[str]) -> int:
    """The studies' files from `archive`, checked against the snapshot's SHA-256, then ingested."""
    if not patient_id and not study_uids:
        raise BackupError("Dire quels examens restaurer : --patient-id ou --study.")
    config.storage.archive_directory.mkdir(parents=True, exist_ok=True)
    # In the data folder, not the backup's state folder: root's alone, which the archive's owner
    # (who ingests the files, see as_owner_of) could not go through.
    scratch = config.storage.data_directory / "restore"
    clean(scratch)
    try:
        files = saved_files(extract_index(config, target, archive, scratch), patient_id, study_uids)
        if not files:
            raise BackupError("Aucun examen de cette sauvegarde ne correspond.", archive)
        checked = extract_studies(config, target, archive, files, scratch)
        hand_over(scratch, config.storage.archive_directory)
        with as_owner_of(config.storage.archive_directory):
            outcomes = ingest_files(config, checked)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return print_restored(checked, outcomes)


def hand_over(scratch: Path, archive_directory: Path) -> None:
    """The extracted files made readable by the archive's owner (who ingests them)."""
    owner = archive_directory.stat()
    for path in [scratch, *scratch.rglob("*")]:
        os.chown(path, owner.st_uid, owner.st_gid, follow_symlinks=False)


@contextmanager
def as_owner_of(directory: Path) -> Iterator[None]:
    """Run the block as the owner of `directory` (root's files in the archive would lock the
    daemons out); nothing changes when not root."""
    owner = directory.stat()
    switch = os.geteuid() == 0 and owner.st_uid != 0
    if switch:
        os.setegid(owner.st_gid)
        os.seteuid(owner.st_uid)
    try:
        yield
    finally:
        if switch:
            os.seteuid(0)
            os.setegid(0)


def ingest_files(config: Config, checked: list[CheckedFile]) -> dict[str, StoreOutcome]:
    """Each intact extracted file through the archive's ingest; the outcome by SOP Instance UID.
    Each study restored is recorded (110104 DICOM Instances Transferred, create)."""
    engine = open_index(config)
    ingest = Ingest(FileStore(config.storage.data_directory, config.storage.minimum_free_space_mb << 20), Index(engine))
    outcomes: dict[str, StoreOutcome] = {}
    try:
        for file in checked:
            if file.state == "ok":
                outcomes[file.saved.sop_instance_uid] = ingest_one(ingest, file.location.read_bytes())
    finally:
        engine.dispose()
    record_restored(config, sorted({file.saved.study_instance_uid for file in checked if file.state == "ok"}))
    return outcomes


def ingest_one(ingest: Ingest, encoded: bytes) -> StoreOutcome:
    try:
        attributes = read_attributes(encoded)
    except InvalidObject:
        return StoreOutcome.REFUSED_INVALID
    incoming = IncomingObject(encoded, attributes.sop_instance_uid, attributes.sop_class_uid, RESTORE_AE_TITLE)
    return ingest.store(incoming).outcome


def record_restored(config: Config, study_uids: list[str]) -> None:
    trail = AuditTrail(config.audit.database)
    try:
        for uid in study_uids:
            participants = (local_user(), this_application("appliance-cli"))
            trail.record(AuditEvent(EventId.INSTANCES_TRANSFERRED, Action.CREATE, Outcome.SUCCESS, participants,
                                    (study(uid),)))  # fmt: skip
    finally:
        trail.close()


def print_restored(checked: list[CheckedFile], outcomes: dict[str, StoreOutcome]) -> int:
    counts: dict[str, int] = {}
    for outcome in outcomes.values():
        counts[outcome.value] = counts.get(outcome.value, 0) + 1
    damaged = [file for file in checked if file.state != "ok"]
    studies = len({file.saved.study_instance_uid for file in checked})
    summary = ", ".join(f"{count} {name}" for name, count in sorted(counts.items()))
    print(f"{studies} study(ies), {len(checked)} file(s): {summary or 'nothing ingested'}")
    for file in damaged:
        print(f"  {file.state}: {file.saved.study_instance_uid} {file.saved.path}", file=sys.stderr)
    refused = [uid for uid, outcome in outcomes.items() if outcome.value.startswith(("refused", "failed"))]
    return 1 if damaged or refused else 0
