"""Exports of the audit trail for an inspection (CNIL) or a patient's request: CSV (one line per
record, for a spreadsheet) and XML (an `AuditMessages` element holding one DICOM AuditMessage per
record). Each export is itself recorded (`export_event`: 110101 Audit Log Used, action R).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import BinaryIO, TextIO
from xml.etree.ElementTree import tostring

from appliance.audit.chain import utc_text
from appliance.audit.events import (
    Action,
    AuditEvent,
    EventId,
    ObjectKind,
    Outcome,
    Participant,
    ParticipantObject,
    patient,
)
from appliance.audit.message import AuditSource, audit_message
from appliance.audit.trail import AUDIT_LOG, AuditFilter, AuditRecord

CSV_COLUMNS = [
    "seq", "event_time", "recorded_time", "event_id", "event", "action", "outcome", "event_type",
    "requestor", "requestor_address", "participants", "patients", "studies", "description", "hash",
]  # fmt: skip


def csv_row(record: AuditRecord) -> list[str]:
    event = record.event
    requestor = event.requestor
    return [
        str(record.seq),
        utc_text(event.at),
        utc_text(record.recorded_at),
        event.event.code,
        event.event.meaning,
        event.action.value,
        str(int(event.outcome)),
        event.event_type.meaning if event.event_type else "",
        requestor.user_id if requestor else "",
        requestor.address if requestor else "",
        " | ".join(participant_text(participant) for participant in event.participants),
        " | ".join(object_text(found) for found in event.objects if found.kind is ObjectKind.PATIENT),
        " | ".join(object_text(found) for found in event.objects if found.kind is ObjectKind.STUDY),
        event.outcome_description,
        record.hash,
    ]


def participant_text(participant: Participant) -> str:
    role = f" {participant.role.meaning}" if participant.role else ""
    address = f" @{participant.address}" if participant.address else ""
    return f"{participant.kind.value} {participant.user_id}{address}{role}"


def object_text(found: ParticipantObject) -> str:
    parts = [found.object_id]
    if found.name:
        parts.append(found.name)
    parts.extend(f"{count}x {sop_class}" for sop_class, count in found.instances)
    return " ".join(parts)


def csv_line(values: list[str]) -> str:
    """One CSV line (quoted as the csv module does, ended by CRLF)."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    return buffer.getvalue()


def csv_lines(records: Iterable[AuditRecord]) -> Iterator[str]:
    """The header, then one line per record: for writing to a file or streaming to a browser."""
    yield csv_line(CSV_COLUMNS)
    for record in records:
        yield csv_line(csv_row(record))


def write_csv(records: Iterable[AuditRecord], output: TextIO) -> int:
    """Write a header and one line per record; return how many records."""
    lines = csv_lines(records)
    output.write(next(lines))
    written = 0
    for line in lines:
        output.write(line)
        written += 1
    return written


XML_HEAD = b'<?xml version="1.0" encoding="UTF-8"?>\n<AuditMessages>\n'
XML_TAIL = b"</AuditMessages>\n"


def xml_record(record: AuditRecord, source: AuditSource) -> bytes:
    """One `<Record seq= hash=>` element holding the record's AuditMessage, on one line."""
    message: bytes = tostring(audit_message(record.event, source), encoding="utf-8", xml_declaration=False)
    return f'<Record seq="{record.seq}" hash="{record.hash}">'.encode("ascii") + message + b"</Record>\n"


def write_xml(records: Iterable[AuditRecord], output: BinaryIO, source: AuditSource) -> int:
    """Write `<AuditMessages>` with one AuditMessage per record (its seq and hash as attributes of a
    wrapping `Record` element, for checking against the trail); return how many records."""
    output.write(XML_HEAD)
    written = 0
    for record in records:
        output.write(xml_record(record, source))
        written += 1
    output.write(XML_TAIL)
    return written


def export_event(
    selection: AuditFilter, export_format: str, requestor: Participant, application: Participant, count: int
) -> AuditEvent:
    """110101 Audit Log Used (R): who exported which part of the trail, as what (a failure: count < 0)."""
    details = [("format", export_format), ("records", str(max(count, 0)))]
    details += [(name, value) for name, value in filter_details(selection) if value]
    log = ParticipantObject(ObjectKind.SECURITY_RESOURCE, AUDIT_LOG, AUDIT_LOG, details=tuple(details))
    objects = (log, patient(selection.patient)) if selection.patient else (log,)
    outcome = Outcome.SUCCESS if count >= 0 else Outcome.SERIOUS_FAILURE
    return AuditEvent(EventId.AUDIT_LOG_USED, Action.READ, outcome, (requestor, application), objects)


def filter_details(selection: AuditFilter) -> list[tuple[str, str]]:
    return [
        ("patient", selection.patient),
        ("user", selection.user),
        ("event", selection.event.code if selection.event else ""),
        ("since", utc_text(selection.since) if selection.since else ""),
        ("until", utc_text(selection.until) if selection.until else ""),
    ]
