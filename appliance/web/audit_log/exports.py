"""Downloads of the audit trail, streamed record by record (a year of records never sits in memory):

- the export for an inspection (CNIL): CSV or DICOM AuditMessage XML, exactly as `appliance audit
  export` writes them (`appliance.audit.export`), for the filters of the search page;
- a patient's access report (GDPR art. 15, CJEU C-579/21): for one patient ID, the date, what was
  done and the role of who did it (never the employee's name), in the page's language, as a CSV a
  spreadsheet opens (semicolons, UTF-8 with its byte order mark).

Each download is recorded once it has ended, as the command line records its exports (110101 R,
the filters and the count as details, the patient when filtered on one); a download cut short is
recorded as a failure.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator

from flask import Response, stream_with_context
from flask_babel import gettext

from appliance.accounts import users
from appliance.accounts.roles import Role
from appliance.audit.activity import audit_source
from appliance.audit.events import Participant, ParticipantKind
from appliance.audit.export import XML_HEAD, XML_TAIL, csv_lines, xml_record
from appliance.audit.message import AuditSource
from appliance.audit.trail import AuditFilter, AuditRecord
from appliance.practice_time import today
from appliance.web.accounts.forms import ROLE_NAMES
from appliance.web.audit_log.reading import opened_trail, record_export
from appliance.web.audit_log.words import event_words
from appliance.web.languages import when
from appliance.web.services import services

CHUNK_RECORDS = 200  # records per piece sent to the browser
CSV = "csv"
XML = "xml"
FORMATS = (CSV, XML)
ACCESS_REPORT = "access-report"  # the `format` detail of a patient's access report in the trail
MEDIA_TYPES = {CSV: "text/csv; charset=utf-8", XML: "application/xml", ACCESS_REPORT: "text/csv; charset=utf-8"}


class Counted:
    """The records of an export, counted as they go by."""

    def __init__(self, records: Iterable[AuditRecord]) -> None:
        self.records = records
        self.count = 0

    def __iter__(self) -> Iterator[AuditRecord]:
        for found in self.records:
            self.count += 1
            yield found


Render = Callable[[Counted], Iterator[bytes]]


def download(selection: AuditFilter, export_format: str, file_name: str, render: Render) -> Response:
    """A streamed download of the selected records (oldest first), recorded when it ends."""

    def pieces() -> Iterator[bytes]:
        count = -1
        try:
            with opened_trail() as trail:
                counted = Counted(trail.records(selection))
                yield from chunked(render(counted))
                count = counted.count
        finally:
            record_export(selection, export_format, count)

    response = Response(stream_with_context(pieces()), mimetype=MEDIA_TYPES[export_format])
    response.headers["Content-Disposition"] = f'attachment; filename="{file_name}"'
    return response


def chunked(parts: Iterator[bytes]) -> Iterator[bytes]:
    """The parts joined `CHUNK_RECORDS` at a time (fewer, larger writes to the browser)."""
    waiting: list[bytes] = []
    for part in parts:
        waiting.append(part)
        if len(waiting) >= CHUNK_RECORDS:
            yield b"".join(waiting)
            waiting = []
    if waiting:
        yield b"".join(waiting)


def export(selection: AuditFilter, export_format: str) -> Response:
    """The trail's records selected, as CSV or AuditMessage XML (the command line's formats)."""
    file_name = f"audit-trail-{today()}.{export_format}"
    if export_format == CSV:
        return download(selection, CSV, file_name, lambda records: (line.encode() for line in csv_lines(records)))
    source = audit_source(services().config)
    return download(selection, XML, file_name, lambda records: xml_pieces(records, source))


def xml_pieces(records: Counted, source: AuditSource) -> Iterator[bytes]:
    yield XML_HEAD
    yield from (xml_record(found, source) for found in records)
    yield XML_TAIL


def access_report(patient_id: str) -> Response:
    """One patient's access report: date, action, role; oldest first."""
    safe_id = re.sub(r"[^A-Za-z0-9_-]", "_", patient_id)
    file_name = f"access-report-{safe_id}-{today()}.csv"
    return download(AuditFilter(patient=patient_id), ACCESS_REPORT, file_name, access_lines)


def access_lines(records: Counted) -> Iterator[bytes]:
    roles: dict[str, str] = {}
    yield "\ufeff".encode() + semicolon_line([gettext("Date"), gettext("Action"), gettext("Role")])
    for found in records:
        requestor = found.event.requestor
        key = f"{requestor.kind}:{requestor.user_id}" if requestor else ""
        if key not in roles:
            roles[key] = role_words(requestor)
        yield semicolon_line([when(found.event.at), event_words(found.event), roles[key]])


def semicolon_line(values: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=";").writerow(values)
    return buffer.getvalue().encode("utf-8")


def role_words(participant: Participant | None) -> str:
    """Who acted, by role only: a console account's role; a device, the RIS or the box itself."""
    if participant is None or participant.kind is ParticipantKind.APPLICATION:
        return gettext("the archive itself (automatic processing)")
    if participant.kind is ParticipantKind.AE:
        return gettext("imaging device or DICOM workstation")
    if participant.kind is ParticipantKind.NODE:
        return gettext("RIS or other software (HL7)")
    account = users.find_by_username(services().engine, participant.user_id)
    if account is None:
        return gettext("maintenance on the box itself")
    return str(ROLE_NAMES.get(Role(account.role), account.role))
