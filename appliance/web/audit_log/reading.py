"""How the audit pages read the trail, and record that they did (110101 Audit Log Used).

The console's recorder (`services().audit`) only writes, and in the daemon it may queue events for
a writer thread; a page reads through an `AuditTrail` of its own on the configured file, opened for
the request (or for the length of a download) and closed after. SQLite in WAL lets it read while
the daemons append.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator, Mapping

from appliance.audit.events import Action, EventId, ObjectKind, ParticipantObject
from appliance.audit.export import export_event
from appliance.audit.trail import AUDIT_LOG, AuditFilter, AuditRecord, AuditTrail
from appliance.web.recording import console, record, requestor
from appliance.web.services import services


@contextlib.contextmanager
def opened_trail() -> Iterator[AuditTrail]:
    """The configured audit trail, to read from; closed when the block ends."""
    trail = AuditTrail(services().config.audit.database)
    try:
        yield trail
    finally:
        trail.close()


def audit_log(query: Mapping[str, str], details: tuple[tuple[str, str], ...] = ()) -> ParticipantObject:
    """The trail itself as a participant object (a security resource), with what was asked of it."""
    encoded = json.dumps(dict(query), sort_keys=True, ensure_ascii=False).encode("utf-8")
    return ParticipantObject(ObjectKind.SECURITY_RESOURCE, AUDIT_LOG, AUDIT_LOG, query=encoded, details=details)


def record_use(
    action: Action,
    query: Mapping[str, str],
    patients: tuple[ParticipantObject, ...] = (),
    details: tuple[tuple[str, str], ...] = (),
) -> None:
    """One 110101 Audit Log Used of this request: the trail with the filters or record asked for,
    and the patients named by what is shown (when they are known)."""
    record(EventId.AUDIT_LOG_USED, action, (audit_log(query, details), *patients))


def patients_of(found: AuditRecord) -> tuple[ParticipantObject, ...]:
    """The patient objects of a record (ID and name), as the page showing it names them."""
    return tuple(
        ParticipantObject(ObjectKind.PATIENT, item.object_id, item.name)
        for item in found.event.objects
        if item.kind is ObjectKind.PATIENT
    )


def record_export(selection: AuditFilter, export_format: str, count: int) -> None:
    """The export's own record, as the command line makes it (`export_event`), with the account as
    requestor: a count below 0 records a failure (the download stopped)."""
    event = export_event(selection, export_format, requestor(), console(), count)
    if count < 0:
        event = dataclasses.replace(event, outcome_description="the download did not complete")
    services().record(event)
