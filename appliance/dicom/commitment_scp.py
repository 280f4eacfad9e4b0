"""Storage Commitment Push Model SCP (PS3.4 J.3) on the archive's AE (W4).

N-ACTION: the request is recorded (`archive.commitment.record_request`) and answered at once; the
check and the report's queueing happen in the background (`archive.commitment.check_received`), and
`CommitmentReporter` delivers each queued report as an N-EVENT-REPORT on a new association to the
modality (the outbox retries it until the modality acknowledges it, across restarts).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_role, evt
from pynetdicom.events import Event
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from appliance.archive import commitment
from appliance.config import Settings
from appliance.dicom import statuses
from appliance.dicom.contexts import STORAGE_COMMITMENT
from appliance.dicom.peers import AccessPolicy, caller
from appliance.dicom.pynetdicom_patches import REQUESTOR_HANDLERS
from appliance.outbox import Attempt, Message, Outcome

LOGGER = logging.getLogger(__name__)

STORAGE_COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"  # the well-known SOP instance, PS3.4 J.3.5
REQUEST_COMMITMENT = 1  # PS3.4 J.3.2.1: action type ID


class Signal(Protocol):
    """What wakes the check of received requests: a `threading.Event`, or in a serving process
    the message that sets the acceptor's (`handoff.Reports`)."""

    def set(self) -> None: ...


@dataclass
class CommitmentServices:
    """N-ACTION handler; `received` is set whenever a request waits to be checked."""

    settings: Settings
    engine: Engine
    policy: AccessPolicy
    received: Signal

    def handlers(self) -> list[Any]:
        return [(evt.EVT_N_ACTION, self.on_action)]

    def on_action(self, event: Event) -> tuple[int, Dataset | None]:
        """Record the request durably, answer; the report follows on a new association."""
        calling = caller(event)
        if not self.policy.may(event.assoc, "store") or self.settings.current.peer(calling) is None:
            LOGGER.warning("storage commitment from %s refused: not a configured peer with the store right", calling)
            return statuses.NOT_AUTHORIZED, None
        information = event.action_information
        references = [
            commitment.Reference(str(item.ReferencedSOPClassUID), str(item.ReferencedSOPInstanceUID))
            for item in information.get("ReferencedSOPSequence", [])
        ]
        transaction_uid = str(information.get("TransactionUID", ""))
        if event.action_type != REQUEST_COMMITMENT or not transaction_uid or not references:
            return statuses.INVALID_ATTRIBUTE_VALUE, None
        try:
            commitment.record_request(self.engine, transaction_uid, calling, references)
        except SQLAlchemyError:
            LOGGER.exception("storage commitment %s from %s could not be recorded", transaction_uid, calling)
            return statuses.PROCESSING_FAILURE, None
        self.received.set()
        LOGGER.info("storage commitment %s from %s: %d instance(s)", transaction_uid, calling, len(references))
        return statuses.SUCCESS, None


@dataclass
class CommitmentReporter:
    """The outbox sender of the `storage-commitment:<AE>` channels."""

    settings: Settings
    engine: Engine

    def send(self, message: Message) -> Attempt:
        ae_title = message.channel.split(":", 1)[1]
        peer = self.settings.current.peer(ae_title)
        if peer is None:
            return Attempt(Outcome.REFUSED, f"{ae_title} is no longer a configured peer")
        report = commitment.decoded(message.payload)
        attempt = self.send_report(peer.host, peer.port, ae_title, report)
        if attempt.outcome is Outcome.DELIVERED:
            commitment.mark_reported(self.engine, report.request_id)
        return attempt

    def send_report(self, host: str, port: int, ae_title: str, report: commitment.Report) -> Attempt:
        """The N-EVENT-REPORT, as SCP of storage commitment, on a new association (PS3.4 J.3.3)."""
        ae = AE(ae_title=self.settings.current.dicom.ae_title)
        ae.add_requested_context(STORAGE_COMMITMENT, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        role = build_role(STORAGE_COMMITMENT, scp_role=True)
        association = ae.associate(host, port, ae_title=ae_title, ext_neg=[role], evt_handlers=list(REQUESTOR_HANDLERS))
        if not association.is_established:
            return Attempt(Outcome.NO_ANSWER, f"no association with {ae_title} at {host}:{port}")
        try:
            status, _ = association.send_n_event_report(
                event_information(report), report.event_type, STORAGE_COMMITMENT, STORAGE_COMMITMENT_INSTANCE
            )
        finally:
            association.release()
        if not status:
            return Attempt(Outcome.NO_ANSWER, f"{ae_title} did not answer the N-EVENT-REPORT")
        code = int(status.get("Status", 0xFFFF))
        if code == statuses.SUCCESS:
            return Attempt(Outcome.DELIVERED)
        return Attempt(Outcome.REFUSED, f"{ae_title} answered status {code:04X}")


def event_information(report: commitment.Report) -> Dataset:
    information = Dataset()
    information.TransactionUID = report.transaction_uid
    information.ReferencedSOPSequence = Sequence([reference_item(reference) for reference in report.result.committed])
    if report.result.failed:
        failed = []
        for reference, reason in report.result.failed:
            item = reference_item(reference)
            item.FailureReason = reason
            failed.append(item)
        information.FailedSOPSequence = Sequence(failed)
    return information


def reference_item(reference: commitment.Reference) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = reference.sop_class_uid
    item.ReferencedSOPInstanceUID = reference.sop_instance_uid
    return item
