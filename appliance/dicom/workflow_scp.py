"""MPPS SCP (N-CREATE / N-SET) and Storage Commitment Push Model SCP (N-ACTION, then an
N-EVENT-REPORT on a new association), on the archive's AE (W4)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom import AE, build_role, evt
from pynetdicom.events import Event
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from appliance.archive import commitment
from appliance.archive.storage import FileStore
from appliance.config import Config, Peer
from appliance.dicom import statuses
from appliance.dicom.contexts import STORAGE_COMMITMENT
from appliance.dicom.peers import AccessPolicy
from appliance.dicom.tuning import REQUESTOR_HANDLERS
from appliance.worklist import performed
from appliance.worklist.performed import PerformedOutcome

LOGGER = logging.getLogger(__name__)

STORAGE_COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"  # the well-known SOP instance
REPORT_ATTEMPTS = (0.0, 2.0, 10.0, 30.0)

MPPS_STATUS = {
    PerformedOutcome.CREATED: statuses.SUCCESS,
    PerformedOutcome.UPDATED: statuses.SUCCESS,
    PerformedOutcome.DUPLICATE: 0x0111,  # PS3.7 C.5 Duplicate SOP Instance
    PerformedOutcome.NO_SUCH_STEP: 0x0112,  # No Such Object Instance
    PerformedOutcome.FINISHED: statuses.PROCESSING_FAILURE,  # PS3.4 F.7.2.2.2: may no longer be updated
    PerformedOutcome.INVALID_STATUS: 0x0106,  # Invalid Attribute Value
}


@dataclass
class WorkflowServices:
    config: Config
    engine: Engine
    files: FileStore
    policy: AccessPolicy

    def handlers(self) -> list[Any]:
        return [(evt.EVT_N_CREATE, self.on_create), (evt.EVT_N_SET, self.on_set), (evt.EVT_N_ACTION, self.on_action)]

    def on_create(self, event: Event) -> tuple[int, Dataset | None]:
        if not self.policy.may(event.assoc, "worklist"):
            return statuses.NOT_AUTHORIZED, None
        request: Any = event.request
        uid = str(request.AffectedSOPInstanceUID or "") or generate_uid(prefix=None)
        request.AffectedSOPInstanceUID = uid
        return self.answer(
            "N-CREATE", uid, lambda: performed.create(self.engine, uid, event.attribute_list, caller(event))
        )

    def on_set(self, event: Event) -> tuple[int, Dataset | None]:
        if not self.policy.may(event.assoc, "worklist"):
            return statuses.NOT_AUTHORIZED, None
        uid = str(getattr(event.request, "RequestedSOPInstanceUID", "") or "")
        return self.answer("N-SET", uid, lambda: performed.modify(self.engine, uid, event.modification_list))

    def answer(self, operation: str, uid: str, work: Any) -> tuple[int, Dataset | None]:
        try:
            result = work()
        except SQLAlchemyError:
            LOGGER.exception("MPPS %s %s failed", operation, uid)
            return statuses.PROCESSING_FAILURE, None
        LOGGER.info("MPPS %s %s: %s %s", operation, uid, result.outcome.value, result.detail)
        return MPPS_STATUS[result.outcome], result.dataset

    def on_action(self, event: Event) -> tuple[int, Dataset | None]:
        """N-ACTION: answer at once, check and report on a new association in the background."""
        calling = caller(event)
        peer = self.config.peer(calling)
        if not self.policy.may(event.assoc, "store") or peer is None:
            LOGGER.warning("storage commitment from %s refused: not a configured peer with the store right", calling)
            return statuses.NOT_AUTHORIZED, None
        information = event.action_information
        references = [
            commitment.Reference(str(item.ReferencedSOPClassUID), str(item.ReferencedSOPInstanceUID))
            for item in information.get("ReferencedSOPSequence", [])
        ]
        transaction_uid = str(information.get("TransactionUID", ""))
        if event.action_type != 1 or not transaction_uid or not references:
            return 0x0106, None  # invalid attribute value
        request_id = commitment.record_request(self.engine, transaction_uid, calling, len(references))
        threading.Thread(
            target=self.report, args=(peer, transaction_uid, references, request_id), name="commitment", daemon=True
        ).start()
        LOGGER.info("storage commitment %s from %s: %d instance(s)", transaction_uid, calling, len(references))
        return statuses.SUCCESS, None

    def report(self, peer: Peer, transaction_uid: str, references: list[commitment.Reference], request_id: int) -> None:
        result = commitment.check(self.engine, self.files, references)
        information = event_information(transaction_uid, result)
        event_type = 1 if not result.failed else 2  # PS3.4 J.3.3: 1 all succeeded, 2 with failures
        problem = ""
        for delay in REPORT_ATTEMPTS:
            time.sleep(delay)
            problem = self.send_report(peer, information, event_type)
            if not problem:
                commitment.record_report(self.engine, request_id, result)
                LOGGER.info("storage commitment %s reported to %s: %d committed, %d failed",
                            transaction_uid, peer.ae_title, len(result.committed), len(result.failed))  # fmt: skip
                return
        LOGGER.error("storage commitment %s could not be reported to %s: %s", transaction_uid, peer.ae_title, problem)
        commitment.record_report(self.engine, request_id, None, problem)

    def send_report(self, peer: Peer, information: Dataset, event_type: int) -> str:
        """Send the N-EVENT-REPORT as SCP of storage commitment; '' on success, else the problem."""
        ae = AE(ae_title=self.config.dicom.ae_title)
        ae.add_requested_context(STORAGE_COMMITMENT, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        role = build_role(STORAGE_COMMITMENT, scp_role=True)
        handlers: list[Any] = list(REQUESTOR_HANDLERS)
        association = ae.associate(peer.host, peer.port, ae_title=peer.ae_title, ext_neg=[role], evt_handlers=handlers)
        if not association.is_established:
            return f"no association with {peer.host}:{peer.port}"
        try:
            status, _ = association.send_n_event_report(
                information, event_type, STORAGE_COMMITMENT, STORAGE_COMMITMENT_INSTANCE
            )
            code = int(status.get("Status", 0xFFFF)) if status else 0xFFFF
            return "" if code == statuses.SUCCESS else f"status {code:04X}"
        finally:
            association.release()


def event_information(transaction_uid: str, result: commitment.CommitmentResult) -> Dataset:
    information = Dataset()
    information.TransactionUID = transaction_uid
    information.ReferencedSOPSequence = Sequence([reference_item(reference) for reference in result.committed])
    if result.failed:
        failed = []
        for reference, reason in result.failed:
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


def caller(event: Event) -> str:
    return str(event.assoc.requestor.ae_title).strip()
