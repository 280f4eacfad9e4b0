"""`appliance`: the command line of the appliance (configuration, index, archive maintenance, worklist
preview, the outbox, sending an HL7 message by hand, the box's TLS certificates, the long jobs of the
background worker, the audit trail, the console's accounts when nobody can log in, the box's health
as the monitor last saw it).

Commands that read the archive say which data folder they read, and refuse a folder that holds no
archive rather than create an empty one. Long commands show a progress bar on a terminal (stderr).
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from tqdm import tqdm

from appliance import certificates, jobs, outbox, practice_time
from appliance.accounts import tokens, users
from appliance.accounts.roles import Role
from appliance.archive.index import Index
from appliance.archive.integrity import DamagedFile, VerifyReport, adopt_orphans, reindex, verify
from appliance.archive.lossless import (
    COMPRESSING,
    SYNTAXES,
    CompressionReport,
    LosslessCompressor,
    add_reports,
    compress_everything,
    compression_lock,
)
from appliance.archive.reconciliation import AttachOutcome, attach_study, unreconciled_studies
from appliance.archive.statistics import archive_statistics
from appliance.archive.storage import FileStore
from appliance.audit.activity import audit_source, local_user, this_application
from appliance.audit.events import Action, AuditEvent, EventId, EventType, ObjectKind, Outcome, ParticipantObject
from appliance.audit.export import export_event, write_csv, write_xml
from appliance.audit.trail import AuditFilter, AuditTrail, ChainReport, retention_cutoff
from appliance.backup_cli import add_backup_commands, backup_command
from appliance.config import Config, ConfigError, load_config
from appliance.config.sample import reference_markdown, sample_yaml
from appliance.daemons.runtime import IndexBusy, add_location_options, index_to_myself, loader, open_index
from appliance.dose_cli import add_billing_commands, add_dose_commands, billing_command, dose_command
from appliance.hl7.er7 import MessageError, parse
from appliance.hl7.mllp import ConnectionClosed, send_and_receive
from appliance.monitor import overview, store
from appliance.monitor.findings import Severity
from appliance.monitor.overview import Overview
from appliance.qc_cli import add_qc_commands, qc_command
from appliance.worklist.profiles import answers, typical_query


class NoArchive(Exception):
    """The data folder holds no archive; the message says which folder and what to do."""


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="appliance", description="PACS appliance command line.")
    top.add_argument("--version", action="version", version=f"%(prog)s {version('appliance')}")
    commands = top.add_subparsers(dest="command", required=True)
    add_config_commands(commands)
    database = commands.add_parser("db", help="the index database").add_subparsers(dest="action", required=True)
    add_location_options(database.add_parser("upgrade", help="create the index, or apply pending migrations"))
    add_archive_commands(commands)
    add_worklist_commands(commands)
    add_outbox_commands(commands)
    add_hl7_commands(commands)
    add_tls_commands(commands)
    add_jobs_commands(commands)
    add_audit_commands(commands)
    add_accounts_commands(commands)
    add_health_commands(commands)
    add_backup_commands(commands)
    add_qc_commands(commands)
    add_dose_commands(commands)
    add_billing_commands(commands)
    add_dicomweb_commands(commands)
    return top


def add_config_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = commands.add_parser("config", help="check or generate the configuration file")
    actions = config.add_subparsers(dest="action", required=True)
    check = actions.add_parser(
        "check", help="validate a configuration file and the console settings merged over it; print every problem"
    )
    check.add_argument("file", type=Path, help="the main configuration file (/etc/appliance/appliance.yaml)")
    actions.add_parser("sample", help="print a complete, commented sample configuration (the real defaults)")
    actions.add_parser("reference", help="print the configuration reference (Markdown)")


def add_archive_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    archive = commands.add_parser("archive", help="archive maintenance").add_subparsers(dest="action", required=True)
    verify_command = archive.add_parser("verify", help="recheck every file against its SHA-256")
    add_location_options(verify_command)
    verify_command.add_argument(
        "--adopt-orphans", action="store_true", help="index orphan files (set aside those already indexed)"
    )
    add_location_options(archive.add_parser("reindex", help="rebuild the index from the files (daemons stopped)"))
    add_location_options(archive.add_parser("stats", help="what the archive holds and what compression saved"))
    add_location_options(archive.add_parser("unreconciled", help="studies that match no order of their patient"))
    attach = archive.add_parser("attach", help="attach a study to the right patient (reconciliation)")
    add_location_options(attach)
    attach.add_argument("study_instance_uid", help="the study to move")
    attach.add_argument("--patient-id", required=True, help="the IPP of the right patient")
    attach.add_argument("--issuer", default="", help="the issuer of that IPP")
    compress = archive.add_parser("compress", help="run verified lossless compression now")
    add_location_options(compress)
    compress.add_argument(
        "--all", action="store_true", help="every image still uncompressed, whatever the configured delay"
    )


def add_worklist_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worklist = commands.add_parser("worklist", help="the modality worklist").add_subparsers(
        dest="action", required=True
    )
    preview = worklist.add_parser("preview", help="print exactly what a modality receives for a usual query")
    add_location_options(preview)
    preview.add_argument("--as", dest="calling_ae_title", required=True, help="the modality's calling AE title")
    preview.add_argument("--modality", default="", help="Modality the query asks for (default: any)")
    preview.add_argument("--date", default="", help="Scheduled date or range (default: the profile's window)")


def add_outbox_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    queue = commands.add_parser("outbox", help="messages waiting to be delivered (RIS, storage commitment)")
    actions = queue.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="each channel's queue, and the parked messages")
    add_location_options(listing)
    listing.add_argument("--channel", default="", help="only this channel (e.g. hl7-ris)")
    again = actions.add_parser("retry", help="send a parked message again")
    add_location_options(again)
    again.add_argument("message_id", type=int, help="the number shown by `appliance outbox list`")


def add_hl7_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`appliance hl7 send FILE`: what a RIS would send, by hand (the README's sample order)."""
    hl7 = commands.add_parser("hl7", help="the HL7 link").add_subparsers(dest="action", required=True)
    send = hl7.add_parser("send", help="send an HL7 v2 message file over MLLP; print the ACK code")
    send.add_argument("file", type=Path, help="the message, one segment per line (CR, LF or CRLF)")
    send.add_argument("--host", default="127.0.0.1", help="the MLLP listener's address (default: 127.0.0.1)")
    send.add_argument("--port", type=int, default=2575, help="the MLLP listener's port (default: 2575)")


def add_tls_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`appliance tls ensure|show`: the box's CA and the console's certificate (nginx serves it)."""
    tls = commands.add_parser("tls", help="the box's certificate authority and the console's TLS certificate")
    actions = tls.add_subparsers(dest="action", required=True)
    ensure = actions.add_parser(
        "ensure", help="make the CA and the server certificate when missing, ending or out of date; print them"
    )
    add_location_options(ensure)
    ensure.add_argument(
        "--screen-file",
        type=Path,
        help="also write what the box's login screen shows (address, fingerprints) to this agetty issue file",
    )
    add_location_options(actions.add_parser("show", help="print the certificates in force and their fingerprints"))


def add_audit_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = commands.add_parser("audit", help="the audit trail: who accessed which patient data, when, from where")
    actions = audit.add_subparsers(dest="action", required=True)
    add_location_options(actions.add_parser("verify", help="recompute the hash chain; name each record that breaks it"))
    export = actions.add_parser(
        "export", help="export records as CSV or DICOM AuditMessage XML (the export is recorded)"
    )
    add_location_options(export)
    export.add_argument("--format", choices=["csv", "xml"], default="csv", help="csv (default) or xml")
    export.add_argument("--patient", default="", help="only the records naming this patient ID (IPP)")
    export.add_argument("--user", default="", help="only the records of this requestor (account, AE title)")
    export.add_argument("--since", type=date.fromisoformat, help="first day (YYYY-MM-DD, local time)")
    export.add_argument("--until", type=date.fromisoformat, help="last day included (YYYY-MM-DD, local time)")
    export.add_argument("--output", type=Path, help="file to write (created 0600); default: standard output")
    purge = actions.add_parser(
        "purge", help="remove the records older than audit.retention_months (the worker does it daily)"
    )
    add_location_options(purge)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    try:
        if arguments.command == "config":
            return config_command(arguments)
        if arguments.command == "hl7":
            return send_message(arguments.file, arguments.host, arguments.port)
        if arguments.command == "tls":
            return tls_command(loader(arguments)(), arguments)
        if arguments.command == "audit":
            return audit_command(loader(arguments)(), arguments)
        if arguments.command == "accounts":
            return accounts_command(loader(arguments)(), arguments)
        if arguments.command == "health":
            return health_command(arguments)
        if arguments.command == "backup":
            return backup_command(arguments)
        if arguments.command == "qc":
            return qc_command(arguments)
        if arguments.command == "dose":
            return dose_command(arguments)
        if arguments.command == "billing":
            return billing_command(arguments)
        if arguments.command == "dicomweb":
            return dicomweb_command(loader(arguments)(), arguments)
        return runtime_command(arguments)
    except (ConfigError, NoArchive, IndexBusy, certificates.CertificateError, jobs.JobError) as error:
        print(error, file=sys.stderr)
        return 2


def config_command(arguments: argparse.Namespace) -> int:
    if arguments.action == "check":
        print_check(load_config(arguments.file))
    elif arguments.action == "sample":
        print(sample_yaml(), end="")
    else:
        print(reference_markdown(), end="")
    return 0


def print_check(config: Config) -> None:
    """What `config check` found valid: the main file, and the console settings merged over it."""
    print(f"{config.source}: valid ({config.mode}, {len(config.peers)} peer(s))")
    if len(config.layers) > 1:
        print(f"{config.layers[1]}: valid, console settings merged over {config.source}")
    else:
        print(f"{config.console_settings_file}: no console settings (the file does not exist)")


def send_message(path: Path, host: str, port: int) -> int:
    """Send the HL7 message in `path` over MLLP and print the code of the ACK (and its text, if any);
    0 when the message was accepted (AA or CA)."""
    try:
        message = wire_segments(path.read_bytes())
        answer = send_and_receive(host, port, message)
    except OSError as error:
        print(f"cannot send {path} to {host}:{port}: {error.strerror or error}", file=sys.stderr)
        return 2
    except ConnectionClosed as error:
        print(f"{host}:{port} gave no answer: {error}", file=sys.stderr)
        return 1
    try:
        code, text = acknowledgement_of(answer)
    except MessageError as error:
        print(f"{host}:{port} answered something that is not an HL7 ACK ({error})", file=sys.stderr)
        return 1
    print(f"{code}: {text}" if text else code)
    return 0 if code in ("AA", "CA") else 1


def wire_segments(data: bytes) -> bytes:
    """A message file as it goes on the wire: segments ended by CR, whatever an editor saved."""
    lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    return b"".join(line + b"\r" for line in lines if line.strip())


def acknowledgement_of(answer: bytes) -> tuple[str, str]:
    """MSA-1 of an ACK, and its error text (ERR-8, or MSA-3 in v2.3). Raises MessageError."""
    acknowledgement = parse(answer)
    msa = acknowledgement.segment("MSA")
    if msa is None:
        raise MessageError("no MSA segment")
    error = acknowledgement.segment("ERR")
    text = (error.get(8) if error else "") or msa.get(3)
    return msa.get(1), text


def tls_command(config: Config, arguments: argparse.Namespace) -> int:
    directory = certificates.tls_directory(config)
    if arguments.action == "show":
        print_certificate("certificate authority", directory / certificates.CA_CERTIFICATE)
        print_certificate("server", directory / certificates.SERVER_CERTIFICATE)
        return 0
    identity = certificates.box_identity(config)
    made = certificates.ensure(directory, identity)
    if made.made_ca:
        print(f"made a new certificate authority: {directory / certificates.CA_CERTIFICATE}")
    if made.made_server:
        print(f"made a new server certificate: {directory / certificates.SERVER_CERTIFICATE}")
    print(f"certificate authority SHA-256 {certificates.fingerprint(made.ca)}")
    print(f"server                SHA-256 {certificates.fingerprint(made.server)}")
    if arguments.screen_file:
        screen = certificates.console_screen(identity, made).encode("utf-8")
        certificates.write_atomically(arguments.screen_file, screen, 0o644)
    return 0


def print_certificate(role: str, path: Path) -> None:
    """One certificate: file, subject, validity, names, SHA-256 fingerprint (CertificateError if missing)."""
    certificate = certificates.load_certificate(path)
    print(f"{role}: {path}")
    print(f"  subject  {certificate.subject.rfc4514_string()}")
    print(f"  valid    {certificate.not_valid_before_utc:%Y-%m-%d} to {certificate.not_valid_after_utc:%Y-%m-%d}")
    names = certificates.alternative_names(certificate)
    if names:
        print(f"  names    {', '.join(names)}")
    print(f"  SHA-256  {certificates.fingerprint(certificate)}")


def audit_command(config: Config, arguments: argparse.Namespace) -> int:
    path = config.audit.database
    if not path.is_file():
        print(f"no audit trail at {path} ({config.source})", file=sys.stderr)
        return 2
    trail = AuditTrail(path)
    try:
        if arguments.action == "verify":
            return print_audit_verify(path, trail.verify())
        if arguments.action == "purge":
            cutoff = retention_cutoff(datetime.now(UTC), config.audit.retention_months)
            report = trail.purge(cutoff, local_user(), this_application("appliance-cli"))
            print(f"purged {report.removed} record(s) recorded before {cutoff:%Y-%m-%d %H:%M} UTC")
            return 0
        return export_audit(config, trail, arguments)
    finally:
        trail.close()


def print_audit_verify(path: Path, report: ChainReport) -> int:
    """Each break with its seq; 0 when the chain is intact."""
    state = "intact" if report.intact else f"BROKEN at {len(report.breaks)} record(s)"
    print(f"{path}: {report.checked} record(s), seq {report.first_seq}..{report.last_seq}, {state}")
    print(f"last hash {report.last_hash}")
    for found in report.breaks[:1000]:
        print(f"  seq {found.seq}: {found.problem}")
    return 0 if report.intact else 1


def local_midnight(day: date | None) -> datetime | None:
    return datetime.combine(day, datetime.min.time()).astimezone() if day else None


def export_audit(config: Config, trail: AuditTrail, arguments: argparse.Namespace) -> int:
    """Write the selected records, then record the export (110101) with the local user as requestor."""
    until = arguments.until + timedelta(days=1) if arguments.until else None
    selection = AuditFilter(arguments.patient, arguments.user, None, local_midnight(arguments.since),
                            local_midnight(until))  # fmt: skip
    count = -1
    try:
        count = write_export(config, trail, selection, arguments.format, arguments.output)
    finally:
        event = export_event(selection, arguments.format, local_user(), this_application("appliance-cli"), count)
        trail.record(event)
    print(f"exported {count} record(s)", file=sys.stderr)
    return 0


def write_export(config: Config, trail: AuditTrail, selection: AuditFilter, kind: str, output: Path | None) -> int:
    records = trail.records(selection)
    if output is None:
        if kind == "csv":
            return write_csv(records, sys.stdout)
        sys.stdout.flush()
        return write_xml(records, sys.stdout.buffer, audit_source(config))
    descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    if kind == "csv":
        with open(descriptor, "w", encoding="utf-8", newline="") as text_file:
            return write_csv(records, text_file)
    with open(descriptor, "wb") as binary_file:
        return write_xml(records, binary_file, audit_source(config))


def runtime_command(arguments: argparse.Namespace) -> int:
    config = loader(arguments)()
    if arguments.command == "db":
        open_index(config).dispose()
        print(f"index schema is up to date ({config.database_url})")
        return 0
    engine = open_archive(config)
    if arguments.command == "worklist":
        return print_worklist_preview(config, engine, arguments)
    if arguments.command == "outbox":
        return outbox_command(engine, arguments)
    if arguments.command == "jobs":
        return jobs_command(engine, arguments)
    return archive_command(config, engine, arguments)


def open_archive(config: Config) -> Engine:
    """The index of an existing archive, after saying which one; NoArchive when there is none."""
    data = config.storage.data_directory
    print(f"archive in {data} ({config.source})", file=sys.stderr)
    if not holds_archive(config):
        raise NoArchive(
            f"{data} holds no archive: give --config FILE (the box) or --data FOLDER; "
            "`make run` or `appliance db upgrade` creates one"
        )
    return open_index(config)


def holds_archive(config: Config) -> bool:
    """Whether the configured archive exists: its files (the index can be rebuilt from them), or its
    SQLite index."""
    if config.storage.archive_directory.is_dir():
        return True
    url = make_url(config.database_url)
    return url.get_backend_name() == "sqlite" and url.database is not None and Path(url.database).is_file()


def archive_command(config: Config, engine: Engine, arguments: argparse.Namespace) -> int:
    storage = config.storage
    files = FileStore(storage.data_directory, storage.minimum_free_space_mb * 1024 * 1024)
    if arguments.action == "verify":
        return run_verify(engine, files, arguments.adopt_orphans)
    if arguments.action == "reindex":
        with index_to_myself(config):
            return run_reindex(engine, files)
    if arguments.action == "unreconciled":
        return print_unreconciled(engine)
    if arguments.action == "attach":
        outcome = attach_study(engine, arguments.study_instance_uid, arguments.patient_id, arguments.issuer, "cli")
        print(f"{arguments.study_instance_uid}: {outcome.value}")
        return 0 if outcome in (AttachOutcome.ATTACHED, AttachOutcome.ALREADY) else 1
    if arguments.action == "compress":
        delay = timedelta(0) if arguments.all else timedelta(seconds=config.lossless.delay_seconds)
        compressor = LosslessCompressor(Index(engine), files, SYNTAXES[config.lossless.transfer_syntax], delay)
        return print_compress(compressor, files, config.lossless.worker_processes, arguments.all)
    return print_statistics(engine)


def outbox_command(engine: Engine, arguments: argparse.Namespace) -> int:
    if arguments.action == "retry":
        if outbox.retry(engine, arguments.message_id):
            print(f"message {arguments.message_id} is queued again")
            return 0
        print(f"message {arguments.message_id} is not parked", file=sys.stderr)
        return 1
    for state in outbox.channel_states(engine):
        since = f", oldest since {state.oldest_pending:%Y-%m-%d %H:%M:%S} UTC" if state.oldest_pending else ""
        print(f"{state.channel}: {state.pending} pending{since}, {state.parked} parked")
    for message in outbox.messages(engine, outbox.PARKED, arguments.channel):
        print(f"  parked #{message.id} {message.channel} {message.summary}: {message.last_error}")
    return 0


def print_unreconciled(engine: Engine) -> int:
    studies = unreconciled_studies(engine)
    print(f"{len(studies)} study(ies) match no order of their patient")
    for row in studies:
        accession = row["accession_number"] or "-"
        study = f"{row['study_date'] or '--------'}  {accession:<16} {row['modalities_in_study']:<8}"
        who = f"{row['patient_id']} {row['patient_name']}"
        print(f"  {study} {row['number_of_instances']:>5} img  {who}  {row['study_instance_uid']}: {row['reason']}")
    return 0


def print_worklist_preview(config: Config, engine: Engine, arguments: argparse.Namespace) -> int:
    """The datasets the modality calling as `--as` would receive, as pydicom shows them."""
    query = typical_query(arguments.modality)
    query.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate = arguments.date
    found = answers(engine, config.worklist, query, arguments.calling_ae_title, practice_time.today())
    profile = config.worklist.profile_for(arguments.calling_ae_title)
    print(f"{len(found)} item(s) for {arguments.calling_ae_title} (profile: {profile.ae_title or 'default'})")
    for number, answer in enumerate(found, start=1):
        print(f"--- item {number}")
        print(answer)
    return 0


def run_verify(engine: Engine, files: FileStore, adopt: bool) -> int:
    with ProgressBar() as bar:
        report = verify(engine, files, bar)
        if adopt and report.orphans:
            with compression_lock(files, wait=True):  # no compressed file caught half-installed
                adoption = adopt_orphans(engine, files, report.orphans, bar)
    if adopt and report.orphans:
        print(f"adopted {len(adoption.adopted)} orphan(s); set aside {len(adoption.set_aside)} in quarantine/")
        report.orphans = []
    return print_verify(report)


def run_reindex(engine: Engine, files: FileStore) -> int:
    with ProgressBar() as bar:
        report = reindex(engine, files, bar)
    print(f"indexed {report.indexed} file(s); {len(report.unreadable)} unreadable")
    for path in report.unreadable:
        print(f"  unreadable: {path}")
    return 1 if report.unreadable else 0


def print_verify(report: VerifyReport) -> int:
    """The verify report: each missing or altered file with its study and patient (IPP), the
    orphans, then the studies to restore; 0 when everything is intact."""
    print(
        f"checked {report.checked} file(s): {len(report.missing)} missing, {len(report.altered)} altered, "
        f"{len(report.orphans)} orphan(s)"
    )
    for label, damaged in (("missing", report.missing), ("altered", report.altered)):
        for file in damaged[:1000]:
            print(f"  {label}: {file.path}  {study_and_patient(file)}")
    for path in report.orphans[:1000]:
        print(f"  orphan: {path}")
    print_studies_to_restore(report)
    return 0 if report.intact else 1


def study_and_patient(file: DamagedFile) -> str:
    """`study UID of YYYY-MM-DD, patient IPP` (what an operator looks up in the backup or the RIS)."""
    if not file.study_instance_uid:
        return "(no longer in the index)"
    return f"study {file.study_instance_uid} of {readable_date(file.study_date)}, patient {file.patient_id or '-'}"


def readable_date(value: str) -> str:
    """A DICOM DA value as YYYY-MM-DD ("no date" when it is not one)."""
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else "no date"


def print_studies_to_restore(report: VerifyReport) -> None:
    """One line per study with missing or altered files, with how many of each."""
    counts: dict[tuple[str, str, str], list[int]] = {}
    for position, damaged in enumerate((report.missing, report.altered)):
        for file in damaged:
            if file.study_instance_uid:
                key = (file.study_date, file.study_instance_uid, file.patient_id)
                counts.setdefault(key, [0, 0])[position] += 1
    if counts:
        print(f"{len(counts)} study(ies) to restore from the backup:")
    for (study_date, study_instance_uid, patient_id), (missing, altered) in sorted(counts.items()):
        print(
            f"  {readable_date(study_date)}  {study_instance_uid}  patient {patient_id or '-'}: "
            f"{missing} missing, {altered} altered"
        )


def print_compress(compressor: LosslessCompressor, files: FileStore, processes: int, everything: bool) -> int:
    """Compress everything due (or every uncompressed image), holding the compression lock (the
    background worker waits meanwhile)."""
    with compression_lock(files, wait=False) as free:
        if not free:
            print("the background worker is compressing: waiting for its round to end", file=sys.stderr)
    lock = compression_lock(files, wait=True)
    with lock, ProcessPoolExecutor(max_workers=processes) as executor, ProgressBar() as bar:
        if everything:
            report = compress_everything(compressor, executor, bar)
        else:
            report = compress_due(compressor, executor, bar)
    print(
        f"compressed {report.compressed}, skipped {report.skipped}, failed verification {report.failed}, "
        f"saved {report.bytes_saved} bytes"
    )
    return 1 if report.failed else 0


def compress_due(compressor: LosslessCompressor, executor: ProcessPoolExecutor, bar: ProgressBar) -> CompressionReport:
    """What the change feed holds and the delay allows, batch after batch (the total is not known)."""
    total = CompressionReport()
    while True:
        report = compressor.run_batch(executor)
        handled = report.compressed + report.skipped + report.failed
        if not handled:
            return total
        total = add_reports(total, report)
        bar(COMPRESSING, total.compressed + total.skipped + total.failed, 0)


def print_statistics(engine: Engine) -> int:
    statistics = archive_statistics(engine)
    ratio = statistics.bytes_received / statistics.bytes_on_disk if statistics.bytes_on_disk else 1.0
    lines = [
        f"patients            {statistics.patients}",
        f"studies             {statistics.studies}",
        f"series              {statistics.series}",
        f"instances           {statistics.instances}",
        f"  compressed        {statistics.compressed_instances} (verified lossless)",
        f"  uncompressed      {statistics.uncompressed_instances}",
        f"  lossy as received {statistics.lossy_instances}",
        f"quarantined copies  {statistics.quarantined_duplicates}",
        f"bytes received      {statistics.bytes_received}",
        f"bytes on disk       {statistics.bytes_on_disk}",
        f"bytes saved         {statistics.bytes_saved} (ratio {ratio:.2f}:1)",
    ]
    print("\n".join(lines))
    return 0


class ProgressBar:
    """An `archive.progress.ProgressCallback` drawing a tqdm bar on stderr, one per step; quiet when
    stderr is not a terminal (a log, a pipe, a timer's journal)."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.bar: tqdm[Any] | None = None
        self.step = ""

    def __call__(self, step: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        bar = self.bar_of(step, total)
        if total and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    def bar_of(self, step: str, total: int) -> tqdm[Any]:
        """The bar of this step (a new step closes the previous bar)."""
        if self.bar is not None and step == self.step:
            return self.bar
        self.close()
        bar: tqdm[Any] = tqdm(desc=step, total=total or None, file=sys.stderr, dynamic_ncols=True)
        self.bar, self.step = bar, step
        return bar

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


FOLLOW_SECONDS = 0.5
WAITING_FOR_THE_WORKER = "waiting for the background worker (appliance-worker)"


def add_jobs_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`appliance jobs list|show|cancel|start`: the console's long jobs, from the command line."""
    actions = commands.add_parser("jobs", help="long jobs run by the background worker").add_subparsers(
        dest="action", required=True
    )
    listing = actions.add_parser("list", help="the latest jobs, newest first, with their result")
    add_location_options(listing)
    listing.add_argument("--limit", type=int, default=20, help="how many (default: 20)")
    for name, what in (("show", "one job: state, progress, result, error"), ("cancel", "stop a job")):
        command = actions.add_parser(name, help=what)
        add_location_options(command)
        command.add_argument("job_id", type=int, help="the number shown by `appliance jobs list`")
    start = actions.add_parser(
        "start", help="queue a job for the background worker and follow it (Ctrl-C detaches, the job goes on)"
    )
    add_location_options(start)
    start.add_argument(
        "kind",
        choices=jobs.WITHOUT_ARGUMENTS,
        help="verify, compress, reindex (the online check), verify-audit or tier-move",
    )
    start.add_argument("--detach", action="store_true", help="queue it and return at once")


def jobs_command(engine: Engine, arguments: argparse.Namespace) -> int:
    if arguments.action == "list":
        for job in jobs.recent(engine, arguments.limit):
            print(job_line(job))
        return 0
    if arguments.action == "show":
        return print_job(jobs.get(engine, arguments.job_id))
    if arguments.action == "cancel":
        job = jobs.request_cancel(engine, arguments.job_id, command_line_user())
        print(job_line(job) if job.finished else f"job {job.id}: cancellation requested, it stops at its next step")
        return 0
    job_id = jobs.submit(engine, arguments.kind, {}, command_line_user())
    print(f"job {job_id} ({arguments.kind}) queued", file=sys.stderr)
    return 0 if arguments.detach else follow(engine, job_id)


def command_line_user() -> str:
    """Who started or cancelled a job from the command line, for the job's row and the audit trail."""
    return f"{getpass.getuser()} (command line)"


def follow(engine: Engine, job_id: int) -> int:
    """Show a job's progress until it ends, then the job; Ctrl-C stops following, not the job."""
    try:
        with ProgressBar() as bar:
            job = jobs.get(engine, job_id)
            while not job.finished:
                bar(job.step if job.state == jobs.RUNNING else WAITING_FOR_THE_WORKER, job.done, job.total)
                time.sleep(FOLLOW_SECONDS)
                job = jobs.get(engine, job_id)
    except KeyboardInterrupt:
        print(f"\njob {job_id} goes on; `appliance jobs show {job_id}` follows it, `cancel` stops it", file=sys.stderr)
        return 0
    return print_job(job)


def job_line(job: jobs.Job) -> str:
    """`#3  verify    succeeded  100%  2026-12-02 10:00 UTC  dr.martin`."""
    return (
        f"#{job.id:<5} {job.kind:<9} {job.state:<10} {job.percent:>3}%  {job.created_at:%Y-%m-%d %H:%M} UTC  "
        f"{job.started_by}"
    )


def print_job(job: jobs.Job) -> int:
    """A job in full; 0 when it succeeded (or has not ended yet), 1 when it failed or was cancelled."""
    print(job_line(job))
    times = (("created", job.created_at), ("started", job.started_at), ("finished", job.finished_at))
    print("  " + ", ".join(f"{label} {moment:%Y-%m-%d %H:%M:%S} UTC" for label, moment in times if moment))
    if not job.finished or job.state == jobs.CANCELLED:
        print(f"  {job.step or 'not started'}: {job.done}/{job.total or '?'}")
    for key, value in sorted(job.result.items()):
        if isinstance(value, list):
            print(f"  {key}: {len(value)} listed")
            for item in value:
                print(f"    {' '.join(map(str, item.values())) if isinstance(item, dict) else item}")
        else:
            print(f"  {key}: {value}")
    if job.error:
        print(f"  {job.error}")
    return 1 if job.state in (jobs.FAILED, jobs.CANCELLED) else 0


# --- `appliance accounts`: the console's accounts from the box's own console (as root), the way
# back in when nobody can log in (the only administrator forgot the password, or is locked out).
# Each command is recorded in the audit trail like the console's account pages record theirs
# (110113 Security Alert), with the local OS user as requestor.

ACCOUNT_LIST = "console accounts"  # the security resource a listing reads


def add_accounts_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    accounts = commands.add_parser(
        "accounts", help="the console's accounts: list, unlock, set a password, a new administrator (recorded)"
    )
    actions = accounts.add_subparsers(dest="action", required=True)
    add_location_options(actions.add_parser("list", help="every account: role, state, last login"))
    for name, what in (
        ("unlock", "lift the lock put after too many failed logins"),
        ("set-password", "give an account a new password (asked twice; its sessions end)"),
    ):
        command = actions.add_parser(name, help=what)
        add_location_options(command)
        command.add_argument("username")
    create = actions.add_parser(
        "create-administrator", help="a new administrator account, even when accounts exist (the recovery path)"
    )
    add_location_options(create)
    create.add_argument("username")
    create.add_argument("--full-name", required=True, help="the person's name (one person, one account)")


def accounts_command(config: Config, arguments: argparse.Namespace) -> int:
    """Run one `appliance accounts` command; 0 when done, 1 when refused (said on stderr)."""
    engine = open_archive(config)
    trail = AuditTrail(config.audit.database)
    try:
        if arguments.action == "list":
            return list_accounts(engine, trail)
        return change_account(engine, trail, arguments)
    finally:
        trail.close()
        engine.dispose()


def list_accounts(engine: Engine, trail: AuditTrail) -> int:
    listed = users.all_accounts(engine)
    for account in listed:
        last = f"{account.last_login_at:%Y-%m-%d %H:%M} UTC" if account.last_login_at else "never logged in"
        print(f"{account.username:<24} {account.role.value:<14} {account_state(account):<14} {last}  "
              f"{account.full_name}")  # fmt: skip
    accounts_list = ParticipantObject(ObjectKind.SECURITY_RESOURCE, ACCOUNT_LIST, ACCOUNT_LIST,
                                      details=(("accounts", str(len(listed))),))  # fmt: skip
    record_account_command(trail, Action.EXECUTE, accounts_list, EventType.USE_OF_RESTRICTED_FUNCTION)
    return 0


def account_state(account: users.Account) -> str:
    """disabled, locked, not-yet-valid, expired or active, today."""
    at = users.now()
    if account.disabled:
        return "disabled"
    if account.locked(at):
        return "locked"
    refusal = users.standing_refusal(account, at)
    return refusal.value if refusal else "active"


def change_account(engine: Engine, trail: AuditTrail, arguments: argparse.Namespace) -> int:
    """unlock, set-password or create-administrator; a refusal is recorded too (outcome 4)."""
    username = str(arguments.username).strip().lower()
    subject = ParticipantObject(ObjectKind.ACCOUNT, username, getattr(arguments, "full_name", "") or "")
    action = Action.CREATE if arguments.action == "create-administrator" else Action.EXECUTE
    try:
        subject, details = apply_account_command(engine, arguments.action, username, arguments)
    except users.AccountError as error:
        print(f"refused: {error}", file=sys.stderr)
        record_account_command(trail, action, subject, outcome=Outcome.MINOR_FAILURE, description=str(error))
        return 1
    record_account_command(trail, action, dataclasses.replace(subject, details=details))
    return 0


def apply_account_command(
    engine: Engine, action: str, username: str, arguments: argparse.Namespace
) -> tuple[ParticipantObject, tuple[tuple[str, str], ...]]:
    """Do it; the account as the audit record names it, and what changed. Raises AccountError."""
    if action == "create-administrator":
        password = ask_new_password(username)
        created = users.create(engine, username, arguments.full_name, Role.ADMINISTRATOR, password,
                               command_line_user())  # fmt: skip
        print(f"administrator {created.username} created: log in to the console with it")
        details = (("role", Role.ADMINISTRATOR.value), ("created", "on the box's command line"))
        return ParticipantObject(ObjectKind.ACCOUNT, created.username, created.full_name), details
    account = users.find_by_username(engine, username)
    if account is None:
        raise users.AccountError("username", "no such account")
    subject = ParticipantObject(ObjectKind.ACCOUNT, account.username, account.full_name)
    if action == "unlock":
        users.unlock(engine, account.id)
        print(f"{account.username} unlocked ({account_state(users.find(engine, account.id) or account)})")
        return subject, (("locked", "false"),)
    users.set_password(engine, account.id, ask_new_password(account.username))
    print(f"new password of {account.username} set; its sessions are ended")
    if account.locked(users.now()):
        print(f"{account.username} is still locked: `appliance accounts unlock {account.username}`")
    return subject, (("password", "set on the box's command line"),)


def ask_new_password(username: str) -> str:
    """A new password typed twice without echo, checked against the rule. Raises AccountError."""
    password = getpass.getpass(f"new password for {username}: ")
    problem = users.password_problem(password, username)
    if problem:
        raise users.AccountError("password", problem)
    if getpass.getpass("the same password again: ") != password:
        raise users.AccountError("password", "the two passwords differ")
    return password


def record_account_command(
    trail: AuditTrail,
    action: Action,
    subject: ParticipantObject,
    event_type: EventType = EventType.USER_SECURITY_ATTRIBUTES_CHANGED,
    outcome: Outcome = Outcome.SUCCESS,
    description: str = "",
) -> None:
    """110113 Security Alert: the local OS user (requestor) through appliance-cli, about `subject`."""
    participants = (local_user(), this_application("appliance-cli"))
    trail.record(AuditEvent(EventId.SECURITY_ALERT, action, outcome, participants, (subject,), event_type, description))


# --- `appliance health`: the dashboard's tiles in a terminal, read from what appliance-monitor stored
# (never running a check), with an exit status for scripts and supervision tools.

HEALTH_STATUS = {Severity.ABSENT: 0, Severity.OK: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}
HEALTH_UNKNOWN = 3  # the stored state could not be read (no archive, no index)
SEVERITY_WORDS = {
    Severity.OK: "ok",
    Severity.WARNING: "WARNING",
    Severity.CRITICAL: "CRITICAL",
    Severity.ABSENT: "absent",
}
SOURCE_NAMES = {
    "disk": "storage",
    "raid": "RAID",
    "smart": "disks (SMART)",
    "ups": "UPS",
    "services": "services",
    "dicom": "DICOM/worklist/HL7",
    "time": "clock",
    "certificate": "certificate",
    "backup": "last backup",
    "qc": "last QC report",
    "events": "system events",
}


def add_health_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    health = commands.add_parser(
        "health",
        help="the box's health as appliance-monitor last stored it (never runs a check)",
        description="The box's health as appliance-monitor last stored it (never runs a check). Exit status: "
        "0 every source OK or absent, 1 a warning (or the monitor silent for a few rounds), 2 a critical "
        "finding, 3 the stored state could not be read.",
    )
    add_location_options(health)
    health.add_argument("--verbose", action="store_true", help="every subject with the detail for the contractor")
    health.add_argument("--json", action="store_true", help="machine-readable: the monitor and every stored state")


def health_command(arguments: argparse.Namespace) -> int:
    """Print the tiles (or JSON); the exit status says the worst severity (HEALTH_STATUS)."""
    try:
        config = loader(arguments)()
        engine = open_archive(config)
    except (ConfigError, NoArchive) as error:
        print(error, file=sys.stderr)
        return HEALTH_UNKNOWN
    try:
        states = store.current(engine)
    finally:
        engine.dispose()
    seen = overview.overview(states, datetime.now(UTC), config.monitor.interval_seconds)
    if arguments.json:
        print(json.dumps(health_json(seen, states), ensure_ascii=False, indent=2))
    else:
        print_health(seen, arguments.verbose)
    return HEALTH_STATUS[seen.severity]


def local_time(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M") if moment else "-"


def print_health(seen: Overview, verbose: bool) -> None:
    """One line per tile: source, severity, the sentence, since when; the details with `verbose`."""
    monitor = seen.monitor
    if monitor.last_checked is None:
        print("monitor: nothing recorded yet: is appliance-monitor running?")
    elif monitor.stale:
        print(f"monitor: SILENT since {local_time(monitor.last_checked)}: what follows is the last known state")
    else:
        print(f"monitor: last check {local_time(monitor.last_checked)}")
    for source in seen.sources:
        name = SOURCE_NAMES.get(source.source, source.source)
        worst = source.worst
        if worst is None:
            print(f"{name:<20} {'absent':<9} nothing recorded")
            continue
        since = f" (since {local_time(worst.since)})" if worst.severity is not Severity.ABSENT else ""
        print(f"{name:<20} {SEVERITY_WORDS[worst.severity]:<9} {worst.message}{since}")
        if verbose:
            for state in source.states:
                print(f"    {state.subject}: {SEVERITY_WORDS[state.severity]}, {state.message}")
                if state.detail:
                    print(f"        {state.detail}")


def iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None


def health_json(seen: Overview, states: list[store.State]) -> dict[str, Any]:
    """The monitor, the worst severity, and every stored state (times in ISO 8601, UTC)."""
    return {
        "severity": seen.severity.value,
        "monitor": {"last_checked_at": iso(seen.monitor.last_checked), "stale": seen.monitor.stale},
        "states": [
            {
                "source": state.source,
                "subject": state.subject,
                "severity": state.severity.value,
                "message": state.message,
                "detail": state.detail,
                "since": iso(state.since),
                "checked_at": iso(state.checked_at),
            }
            for state in states
        ],
    }


# --- `appliance dicomweb token`: a short-lived bearer token for Weasis, scripts and other tools.


def add_dicomweb_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dicomweb = commands.add_parser("dicomweb", help="DICOMweb: access tokens for tools (recorded)")
    actions = dicomweb.add_subparsers(dest="action", required=True)
    token = actions.add_parser("token", help="print a new bearer token for an account (Authorization: Bearer ...)")
    add_location_options(token)
    token.add_argument("--user", required=True, help="the account the token acts as (its role's permissions)")
    token.add_argument("--minutes", type=int, default=60, help=f"how long it works (1 to {tokens.MAXIMUM_MINUTES})")


def dicomweb_command(config: Config, arguments: argparse.Namespace) -> int:
    """Print a new DICOMweb token for an account; 1 when refused (said on stderr). Recorded as
    110113 Security Alert C, 110137 User Security Attributes Changed (never the token itself)."""
    engine = open_archive(config)
    trail = AuditTrail(config.audit.database)
    try:
        return issue_token(engine, trail, str(arguments.user).strip().lower(), arguments.minutes)
    finally:
        trail.close()
        engine.dispose()


def issue_token(engine: Engine, trail: AuditTrail, username: str, minutes: int) -> int:
    subject = ParticipantObject(ObjectKind.ACCOUNT, username)
    try:
        account = users.find_by_username(engine, username)
        if account is None:
            raise users.AccountError("username", "no such account")
        issued = tokens.create(engine, account.id, minutes, note="appliance dicomweb token")
    except users.AccountError as error:
        print(f"refused: {error}", file=sys.stderr)
        record_account_command(trail, Action.CREATE, subject, outcome=Outcome.MINOR_FAILURE, description=str(error))
        return 1
    details = (("token", f"DICOMweb, until {issued.expires_at:%Y-%m-%d %H:%M} UTC"),)
    record_account_command(trail, Action.CREATE, dataclasses.replace(subject, details=details))
    print(issued.token)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
