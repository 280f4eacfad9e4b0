"""What the HL7 link tells the audit trail (S2), one record per message applied or query answered:

- QBP^Q22 (PDQ, ITI-21): 110112 Query (E), the QPD segment as the query, the patients given out.
- ADT (ITI-30): 110110 Patient Record: C for A01, A04, A05, A28; U for A08, A31, A11 (admission
  cancelled), A40 (merge: the absorbed patient named too) and A47 (identifier change: the old one too).
- ORM^O01 / OMI^O23: 110111 Procedure Record: C for a new order, U for a change or status, D for a
  cancellation; the patient, and each order's study (Study Instance UID) with its accession number.

The requestor is the sending application as IHE writes it (`MSH-3|MSH-4`) at the peer's address;
a message refused (AE/AR after being read) is recorded with a minor-failure outcome and its reason.
Duplicates answered from the inbox are not recorded again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from appliance.audit.events import (
    Action,
    AuditEvent,
    EventId,
    ObjectKind,
    Outcome,
    Participant,
    ParticipantKind,
    ParticipantObject,
    ParticipantRole,
    Recorder,
    never_raises,
    patient,
    patient_number,
    study,
)
from appliance.hl7.er7 import Message
from appliance.hl7.segments import ContentError, PractisePolicy, absorbed_identifier, identity_of, required_pid
from appliance.patients.national import Identifier

PDQ_TRANSACTION = "ITI-21"  # the query object's ID (message.py gives it the IHE transaction code)
PATIENT_ACTIONS = {
    **dict.fromkeys(["A01", "A04", "A05", "A28"], Action.CREATE),
    **dict.fromkeys(["A08", "A31", "A11", "A40", "A47"], Action.UPDATE),
}
ORDER_ACTIONS = {
    "NW": Action.CREATE,
    "XO": Action.UPDATE,
    "SC": Action.UPDATE,
    **dict.fromkeys(["CA", "OC", "DC", "OD"], Action.DELETE),
}
ORDER_MESSAGES = {"ORM", "OMI"}


def sender(message: Message, peer: str) -> Participant:
    """The sending application, `MSH-3|MSH-4`, at the peer's address (its port left out)."""
    header = message.header
    address = peer.rsplit(":", 1)[0] if peer.count(":") == 1 else peer
    return Participant(f"{header.get(3)}|{header.get(4)}", True, ParticipantKind.NODE, address,
                       role=ParticipantRole.SOURCE)  # fmt: skip


def identifier_object(identifier: Identifier, name: str = "", role: str = "") -> ParticipantObject:
    found = patient(patient_number(identifier.value, identifier.issuer), name)
    if not role:
        return found
    return ParticipantObject(found.kind, found.object_id, found.name, details=(("role", role),))


@dataclass(frozen=True)
class Hl7Audit:
    """Turns messages applied and queries answered into audit events for `recorder`; `receiver`
    is this listener as a participant (our MSH-3|MSH-4 at the box's name)."""

    recorder: Recorder
    practise: PractisePolicy
    receiver: Participant

    @never_raises
    def queried(self, message: Message, peer: str, status: str, error: str, patients: list[dict[str, Any]]) -> None:
        """One 110112 for a PDQ query: the QPD as the query keys, each patient given out."""
        qpd = message.segment("QPD")
        query = ParticipantObject(
            ObjectKind.QUERY,
            PDQ_TRANSACTION,
            query=qpd.separators.field.join(qpd.fields).encode("utf-8") if qpd is not None else b"",
            details=(("MSH-10", message.control_id), ("QAK-2", status)),
        )
        found = [
            patient(patient_number(str(row["patient_id"]), str(row["issuer_of_patient_id"] or "")),
                    str(row["patient_name"] or ""))
            for row in patients
        ]  # fmt: skip
        outcome = Outcome.MINOR_FAILURE if error else Outcome.SUCCESS
        self.record(EventId.QUERY, Action.EXECUTE, outcome, message, peer, [query, *found], error)

    @never_raises
    def applied(self, message: Message, peer: str, accepted: bool, reason: str) -> None:
        """One 110110 (patient) or 110111 (order) record for a message that was applied or refused."""
        code, trigger = message.message_code, message.trigger_event
        outcome = Outcome.SUCCESS if accepted else Outcome.MINOR_FAILURE
        description = "" if accepted else reason
        if code in ORDER_MESSAGES:
            objects = [*self.patients_of(message), *orders_of(message)]
            action = order_action(message)
            self.record(EventId.PROCEDURE_RECORD, action, outcome, message, peer, objects, description)
        elif code == "ADT" and trigger in PATIENT_ACTIONS:
            action = PATIENT_ACTIONS[trigger]
            objects = self.patients_of(message)
            self.record(EventId.PATIENT_RECORD, action, outcome, message, peer, objects, description)

    def patients_of(self, message: Message) -> list[ParticipantObject]:
        """The patient of PID (IPP and name), and the identifier MRG-1 merges away or replaces."""
        found: list[ParticipantObject] = []
        try:
            identity = identity_of(required_pid(message), self.practise)
            found.append(identifier_object(identity.ipp, identity.dicom_name))
        except ContentError:
            pass  # an unreadable PID: the record says who sent what, without the patient
        for mrg in message.all("MRG"):
            try:
                found.append(identifier_object(absorbed_identifier(mrg), role=f"MRG-1 of {message.trigger_event}"))
            except ContentError:
                continue
        return found

    def record(
        self,
        event_id: EventId,
        action: Action,
        outcome: Outcome,
        message: Message,
        peer: str,
        objects: Iterable[ParticipantObject],
        description: str,
    ) -> None:
        participants = (sender(message, peer), self.receiver)
        self.recorder.record(AuditEvent(event_id, action, outcome, participants, tuple(objects), None, description))


def order_action(message: Message) -> Action:
    """The action of the first ORC's order control (NW creates, XO/SC update, CA/DC delete)."""
    orc = message.segment("ORC")
    return ORDER_ACTIONS.get(orc.get(1) if orc else "", Action.UPDATE)


def orders_of(message: Message) -> list[ParticipantObject]:
    """Each order's study, by its Study Instance UID (ZDS-1 or IPC-3), named by its accession number."""
    found: list[ParticipantObject] = []
    zds = message.segment("ZDS")
    accession = next((obr.get(18) for obr in message.all("OBR") if obr.get(18)), "")
    if zds is not None and zds.get(1):
        found.append(study(zds.get(1), accession))
    for ipc in message.all("IPC"):
        if ipc.get(3):
            found.append(study(ipc.get(3), ipc.get(1) or accession))
    return found
