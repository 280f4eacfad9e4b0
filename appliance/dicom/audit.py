"""What the DICOM services tell the audit trail (S2), one record per association and operation:

- C-STORE: the instances received on an association are counted by patient, study and SOP class
  and recorded when it ends, one 110104 Instances Transferred (action C) per patient.
- C-FIND (archive and worklist): one 110112 Query per request with the SOP class and the encoded
  query keys, and the patients answered.
- C-GET / C-MOVE: one 110104 (action R, we are the sender) per request and patient, with source,
  destination and requestor, the instances sent by study and SOP class, failures in the outcome.

The handlers fill a report while they work; this module turns it into events. Nothing here raises
into a handler.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pynetdicom.events import Event
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from appliance.archive.ingest import StoreOutcome, StoreResult
from appliance.archive.retrieve import RetrieveItem
from appliance.audit.events import (
    Action,
    AuditEvent,
    EventId,
    ObjectKind,
    Outcome,
    Participant,
    ParticipantObject,
    ParticipantRole,
    Recorder,
    ae,
    never_raises,
    patient,
    patient_number,
)
from appliance.audit.subjects import InstanceTally, StudySubject, study_subjects, tally_of

LOGGER = logging.getLogger(__name__)

STORED_OUTCOMES = {StoreOutcome.STORED, StoreOutcome.DUPLICATE_IDENTICAL, StoreOutcome.DUPLICATE_QUARANTINED}
MAXIMUM_PATIENTS_LISTED = 100  # patients named in one query record


@dataclass
class QueryReport:
    """What a C-FIND did: its outcome and the patients (ID, issuer, name) it answered with."""

    outcome: Outcome = Outcome.SUCCESS
    description: str = ""
    patients: dict[str, str] = field(default_factory=dict)  # CX patient number -> name

    def failed(self, outcome: Outcome, description: str) -> None:
        self.outcome, self.description = outcome, description

    def answered(self, patient_id: Any, issuer: Any, name: Any) -> None:
        if len(self.patients) <= MAXIMUM_PATIENTS_LISTED and patient_id:
            self.patients.setdefault(patient_number(str(patient_id), str(issuer or "")), str(name or ""))


@dataclass
class RetrieveReport:
    """What a C-GET or C-MOVE did: where to, what it planned, what went and what failed."""

    destination: Participant | None = None
    outcome: Outcome = Outcome.SUCCESS
    description: str = ""
    planned: int = 0
    sent: list[RetrieveItem] = field(default_factory=list)
    failed: list[RetrieveItem] = field(default_factory=list)

    def refused(self, outcome: Outcome, description: str) -> None:
        self.outcome, self.description = outcome, description

    def add(self, item: RetrieveItem, delivered: bool) -> None:
        (self.sent if delivered else self.failed).append(item)


def requestor(event: Event, role: ParticipantRole | None = None) -> Participant:
    """The calling AE at its address: the one who asked."""
    requesting = event.assoc.requestor
    return ae(str(requesting.ae_title).strip(), str(requesting.address), True, role)


def ourselves(event: Event, role: ParticipantRole) -> Participant:
    """Our AE title at the address the association came in on."""
    accepting = event.assoc.acceptor
    return ae(str(accepting.ae_title).strip(), str(accepting.address or ""), False, role)


def outcome_of(done: int, failed: int, missing: int = 0) -> tuple[Outcome, str]:
    """Success when nothing failed; minor failure when some went; serious when none did."""
    if not failed and not missing:
        return Outcome.SUCCESS, ""
    parts = ([f"{failed} instance(s) failed"] if failed else []) + ([f"{missing} not sent"] if missing else [])
    return (Outcome.MINOR_FAILURE if done else Outcome.SERIOUS_FAILURE), ", ".join(parts)


@dataclass
class DicomAudit:
    """Turns the DICOM services' work into audit events for `recorder`."""

    recorder: Recorder
    stores: weakref.WeakKeyDictionary[Any, InstanceTally] = field(default_factory=weakref.WeakKeyDictionary)

    @never_raises
    def stored(self, association: Any, result: StoreResult) -> None:
        """Count one C-STORE of an association (recorded when it ends)."""
        tally = self.stores.setdefault(association, InstanceTally())
        attributes = result.attributes
        if attributes is None:
            tally.fail_unattributed()
            return
        subject = StudySubject(
            attributes.study_instance_uid,
            attributes.accession_number,
            attributes.patient_id,
            attributes.issuer_of_patient_id,
            attributes.patient_name,
        )
        tally.add(subject, attributes.sop_class_uid, result.outcome in STORED_OUTCOMES)

    @never_raises
    def association_ended(self, event: Event) -> None:
        """Released or aborted: one 110104 (C) per patient whose instances it sent us."""
        tally = self.stores.pop(event.assoc, None)
        if tally is None or not tally.total:
            return
        participants = (requestor(event, ParticipantRole.SOURCE), ourselves(event, ParticipantRole.DESTINATION))
        for key, counted in sorted(tally.patients.items()):
            outcome, description = outcome_of(counted.done, counted.failed)
            self.record(EventId.INSTANCES_TRANSFERRED, Action.CREATE, outcome, participants, counted.objects(key),
                        description)  # fmt: skip
        if tally.unattributed_failures:
            description = f"{tally.unattributed_failures} unreadable or mismatched instance(s) refused"
            self.record(EventId.INSTANCES_TRANSFERRED, Action.CREATE, Outcome.SERIOUS_FAILURE, participants, (),
                        description)  # fmt: skip

    @never_raises
    def queried(self, event: Event, sop_class_uid: str, report: QueryReport) -> None:
        """One 110112 Query (E): the query keys as received, then the patients answered."""
        participants = (requestor(event, ParticipantRole.SOURCE), ourselves(event, ParticipantRole.DESTINATION))
        keys = ParticipantObject(
            ObjectKind.QUERY,
            sop_class_uid,
            query=encoded_identifier(event),
            details=(("TransferSyntax", str(event.context.transfer_syntax)),),
        )
        patients = tuple(patient(key, name) for key, name in list(report.patients.items())[:MAXIMUM_PATIENTS_LISTED])
        description = report.description
        if len(report.patients) > MAXIMUM_PATIENTS_LISTED:
            description = (description + "; " if description else "") + f"more than {MAXIMUM_PATIENTS_LISTED} patients"
        self.record(EventId.QUERY, Action.EXECUTE, report.outcome, participants, (keys, *patients), description)

    @never_raises
    def retrieved(self, event: Event, report: RetrieveReport, engine: Engine) -> None:
        """One 110104 (R) per patient sent: we are the source, the destination is the C-MOVE
        destination or, for a C-GET, the requestor itself."""
        participants: tuple[Participant, ...]
        if report.destination is None:
            participants = (ourselves(event, ParticipantRole.SOURCE), requestor(event, ParticipantRole.DESTINATION))
        else:
            participants = (ourselves(event, ParticipantRole.SOURCE), report.destination, requestor(event))
        if report.outcome is not Outcome.SUCCESS:  # refused before anything was planned
            self.record(EventId.INSTANCES_TRANSFERRED, Action.READ, report.outcome, participants, (),
                        report.description)  # fmt: skip
            return
        tally = self.retrieve_tally(report, engine)
        missing = report.planned - len(report.sent) - len(report.failed)
        if not tally.patients:  # nothing matched, or nothing could be sent
            outcome, description = outcome_of(0, 0, missing)
            self.record(EventId.INSTANCES_TRANSFERRED, Action.READ, outcome, participants, (), description)
        for key, counted in sorted(tally.patients.items()):
            outcome, description = outcome_of(counted.done, counted.failed, missing if len(tally.patients) == 1 else 0)
            self.record(EventId.INSTANCES_TRANSFERRED, Action.READ, outcome, participants, counted.objects(key),
                        description)  # fmt: skip

    def retrieve_tally(self, report: RetrieveReport, engine: Engine) -> InstanceTally:
        """The instances sent and failed, by patient as the index holds them now."""
        items = [*report.sent, *report.failed]
        try:
            subjects = study_subjects(engine, {item.study_instance_uid for item in items})
        except SQLAlchemyError as error:
            LOGGER.error("audit: the patients of a retrieve could not be looked up (%s)", type(error).__name__)
            subjects = {}
        return tally_of(subjects, report.sent, report.failed)

    def record(
        self,
        event_id: EventId,
        action: Action,
        outcome: Outcome,
        participants: tuple[Participant, ...],
        objects: Iterable[ParticipantObject],
        description: str,
    ) -> None:
        self.recorder.record(AuditEvent(event_id, action, outcome, participants, tuple(objects), None, description))


def encoded_identifier(event: Event) -> bytes:
    """The query keys as they came on the wire (the identifier's encoded bytes)."""
    identifier = getattr(event.request, "Identifier", None)
    if identifier is None:
        return b""
    return bytes(identifier.getvalue())
