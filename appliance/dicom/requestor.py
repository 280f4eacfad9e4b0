"""The box as a DICOM requestor (SCU) towards other nodes, for the worker (A7, priors):

- `ForwardSender`: the batch sender of the `forward:<AE>` outbox channels. One association per
  batch; each instance sent by the one retrieve rule (`archive.retrieve.payload`): the stored bytes
  when the destination accepted their syntax, decoded only when it refused it, the current
  identity coerced in. Each instance's attempt is recorded by the outbox; each batch is audited
  (110104 Instances Transferred, one record per patient, we are the source and the requestor).
- `RemoteArchive`: C-FIND (study level) and C-MOVE of a study to the archive's own AE title, for the
  console's searches, the fetches (`retrieve:<AE>`) and prefetch (`prefetch:<AE>`).

Timeouts come from the configuration in force at each attempt; nothing here raises into a courier
for a network problem: an unreachable node is "no answer" (retried with backoff), a failure status
is "refused" (parked after a few).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
)
from sqlalchemy import Engine

from appliance.archive.retrieve import CannotSend, RetrieveItem, RetrievePlan, payload, plan_instances
from appliance.archive.storage import FileStore
from appliance.audit.events import (
    Action,
    AuditEvent,
    EventId,
    ObjectKind,
    Outcome,
    ParticipantObject,
    ParticipantRole,
    Recorder,
    ae,
    never_raises,
    patient,
    patient_number,
)
from appliance.audit.subjects import study_subjects, tally_of
from appliance.config import Config, Peer, Settings
from appliance.dicom.pynetdicom_patches import REQUESTOR_HANDLERS
from appliance.dicom.retrieve import accepted, proposed_contexts, succeeded
from appliance.forward import prefetch, remote
from appliance.forward.queues import destination_of, forwarded_of
from appliance.outbox import Attempt, Message
from appliance.outbox import Outcome as Delivery

LOGGER = logging.getLogger(__name__)

PENDING_STATUSES = (0xFF00, 0xFF01)
SUCCESS = 0x0000


def requestor_ae(config: Config, *contexts: Any) -> AE:
    """Our AE, calling with the archive's AE title (the remote nodes know it), with the timeouts."""
    application = AE(ae_title=config.dicom.ae_title)
    application.connection_timeout = config.forward.connect_timeout_seconds
    application.acse_timeout = max(config.forward.connect_timeout_seconds, 30)
    application.dimse_timeout = config.dicom.dimse_timeout_seconds
    application.network_timeout = config.dicom.network_timeout_seconds
    for context in contexts:
        application.add_requested_context(context)
    return application


def associate(application: AE, peer: Peer, **keywords: Any) -> Association:
    return application.associate(
        peer.host, peer.port, ae_title=peer.ae_title, evt_handlers=list(REQUESTOR_HANDLERS), **keywords
    )


@dataclass
class ForwardSender:
    """The batch sender of the `forward:<AE>` channels."""

    settings: Settings
    engine: Engine
    files: FileStore
    recorder: Recorder

    def send(self, batch: list[Message]) -> list[Attempt]:
        """Send the instances of `batch` (one destination) on one association; one attempt each."""
        config = self.settings.current
        destination = destination_of(batch[0].channel)
        peer = config.peer(destination)
        if peer is None:
            return [Attempt(Delivery.REFUSED, f"{destination} is no longer a configured peer")] * len(batch)
        uids = [forwarded_of(message).sop_instance_uid for message in batch]
        plan = plan_instances(self.engine, uids)
        items = {item.sop_instance_uid: item for item in plan.items}
        results: dict[str, Attempt] = {}
        if plan.items:
            results = self.send_plan(config, peer, plan)
        gone = Attempt(Delivery.REFUSED, "no longer in the archive")
        attempts = [results.get(uid, gone) for uid in uids]
        self.audit(
            config, peer, [(items[uid], attempt) for uid, attempt in zip(uids, attempts, strict=True) if uid in items]
        )
        return attempts

    def send_plan(self, config: Config, peer: Peer, plan: RetrievePlan) -> dict[str, Attempt]:
        application = requestor_ae(config)
        association = associate(application, peer, contexts=proposed_contexts(plan))
        if not association.is_established:
            reason = Attempt(Delivery.NO_ANSWER, f"no association with {peer.ae_title} at {peer.host}:{peer.port}")
            return {item.sop_instance_uid: reason for item in plan.items}
        try:
            return dict(self.each_sent(association, peer, plan))
        finally:
            if association.is_established:
                association.release()

    def each_sent(self, association: Association, peer: Peer, plan: RetrievePlan) -> Iterator[tuple[str, Attempt]]:
        syntaxes: dict[str, list[str]] = {}
        for item in plan.items:
            if not association.is_established:
                yield item.sop_instance_uid, Attempt(Delivery.NO_ANSWER, f"{peer.ae_title} closed the association")
                continue
            if item.sop_class_uid not in syntaxes:
                syntaxes[item.sop_class_uid] = accepted(association, item.sop_class_uid)
            yield item.sop_instance_uid, self.send_one(association, peer, plan, item, syntaxes[item.sop_class_uid])

    def send_one(
        self, association: Association, peer: Peer, plan: RetrievePlan, item: RetrieveItem, syntaxes: list[str]
    ) -> Attempt:
        if not syntaxes:
            return Attempt(
                Delivery.REFUSED, f"{peer.ae_title} accepts no transfer syntax for SOP class {item.sop_class_uid}"
            )
        try:
            chosen = payload(self.files.absolute(item.path), item, plan.coercion_for(item), syntaxes)
        except CannotSend as error:
            return Attempt(Delivery.REFUSED, f"cannot be sent to {peer.ae_title}: {error}")
        except OSError as error:
            return Attempt(Delivery.REFUSED, f"file unreadable: {type(error).__name__}")
        content = chosen.path or chosen.dataset
        assert content is not None
        status = association.send_c_store(content)
        if succeeded(status):
            return Attempt(Delivery.DELIVERED)
        code = getattr(status, "Status", None)
        if code is None:
            return Attempt(Delivery.NO_ANSWER, f"{peer.ae_title} did not answer the C-STORE")
        return Attempt(Delivery.REFUSED, f"{peer.ae_title} answered status {int(code):04X}")

    @never_raises
    def audit(self, config: Config, peer: Peer, sent: list[tuple[RetrieveItem, Attempt]]) -> None:
        """One 110104 (R) per patient of the batch: we are the source and the requestor."""
        if not sent:
            return
        subjects = study_subjects(self.engine, {item.study_instance_uid for item, _ in sent})
        delivered = [item for item, attempt in sent if attempt.outcome is Delivery.DELIVERED]
        undelivered = [item for item, attempt in sent if attempt.outcome is not Delivery.DELIVERED]
        tally = tally_of(subjects, delivered, undelivered)
        participants = (
            ae(config.dicom.ae_title, "", True, ParticipantRole.SOURCE),
            ae(peer.ae_title, peer.host, False, ParticipantRole.DESTINATION),
        )
        for key, counted in sorted(tally.patients.items()):
            outcome = Outcome.SUCCESS if not counted.failed else (
                Outcome.MINOR_FAILURE if counted.done else Outcome.SERIOUS_FAILURE)  # fmt: skip
            description = (
                f"forwarded; {counted.failed} instance(s) not delivered yet" if counted.failed else "forwarded"
            )
            self.recorder.record(AuditEvent(EventId.INSTANCES_TRANSFERRED, Action.READ, outcome, participants,
                                            counted.objects(key), None, description))  # fmt: skip


def identifier_of(keys: dict[str, str], level: str = "STUDY") -> Dataset:
    """A study-level identifier: the matching keys given, the return keys empty."""
    identifier = Dataset()
    if any(not value.isascii() for value in keys.values()):
        identifier.SpecificCharacterSet = "ISO_IR 192"
    identifier.QueryRetrieveLevel = level
    for keyword in remote.RETURN_KEYS:
        setattr(identifier, keyword, keys.get(keyword, ""))
    for keyword, value in keys.items():
        setattr(identifier, keyword, value)
    return identifier


def answer_of(identifier: Dataset) -> dict[str, str]:
    answer: dict[str, str] = {}
    for keyword in remote.RETURN_KEYS:
        value = identifier.get(keyword, "")
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            answer[keyword] = "\\".join(str(part) for part in value)
        else:
            answer[keyword] = str(value if value is not None else "")
    return answer


class RemoteError(Exception):
    """A remote archive could not be asked, or refused; the message says why (no patient data)."""


@dataclass
class RemoteArchive:
    """C-FIND and C-MOVE at the configured remote archives, and the outbox senders built on them."""

    settings: Settings
    engine: Engine
    recorder: Recorder

    def peer(self, ae_title: str) -> Peer:
        peer = self.settings.current.peer(ae_title)
        if peer is None or not peer.remote_archive:
            raise RemoteError(f"{ae_title} is not a configured remote archive")
        return peer

    def find(self, ae_title: str, keys: dict[str, str]) -> list[dict[str, str]]:
        """The studies `ae_title` answers for `keys` (raises RemoteError)."""
        config, peer = self.settings.current, self.peer(ae_title)
        association = associate(requestor_ae(config, StudyRootQueryRetrieveInformationModelFind), peer)
        if not association.is_established:
            raise RemoteError(f"no association with {peer.ae_title} at {peer.host}:{peer.port}")
        answers: list[dict[str, str]] = []
        try:
            for status, identifier in association.send_c_find(
                identifier_of(keys), StudyRootQueryRetrieveInformationModelFind
            ):
                code = int(getattr(status, "Status", -1)) if status else -1
                if code in PENDING_STATUSES and identifier is not None:
                    answers.append(answer_of(identifier))
                elif code == -1:
                    raise RemoteError(f"{peer.ae_title} did not answer the C-FIND")
                elif code != SUCCESS:
                    raise RemoteError(f"{peer.ae_title} answered the C-FIND with status {code:04X}")
        finally:
            if association.is_established:
                association.release()
        return answers

    def move(self, ae_title: str, study_instance_uid: str) -> Attempt:
        """C-MOVE one study to the archive's own AE title."""
        config = self.settings.current
        try:
            peer = self.peer(ae_title)
        except RemoteError as error:
            return Attempt(Delivery.REFUSED, str(error))
        association = associate(requestor_ae(config, StudyRootQueryRetrieveInformationModelMove), peer)
        if not association.is_established:
            return Attempt(Delivery.NO_ANSWER, f"no association with {peer.ae_title} at {peer.host}:{peer.port}")
        final = -1
        try:
            identifier = Dataset()
            identifier.QueryRetrieveLevel = "STUDY"
            identifier.StudyInstanceUID = study_instance_uid
            for status, _ in association.send_c_move(identifier, config.dicom.ae_title,
                                                     StudyRootQueryRetrieveInformationModelMove):  # fmt: skip
                final = int(getattr(status, "Status", -1)) if status else -1
        finally:
            if association.is_established:
                association.release()
        if final == SUCCESS:
            return Attempt(Delivery.DELIVERED)
        if final == -1:
            return Attempt(Delivery.NO_ANSWER, f"{peer.ae_title} did not answer the C-MOVE")
        return Attempt(Delivery.REFUSED, f"{peer.ae_title} answered the C-MOVE with status {final:04X}")

    def send_retrieve(self, message: Message) -> Attempt:
        """The sender of the `retrieve:<AE>` channels: one study fetched."""
        return self.move(destination_of(message.channel), remote.fetch_of(message.payload).study_instance_uid)

    def send_prefetch(self, message: Message) -> Attempt:
        """The sender of the `prefetch:<AE>` channels: the patient's studies asked for, the priors
        the rule wants queued for fetching."""
        ae_title = destination_of(message.channel)
        request = prefetch.request_of(message.payload)
        keys = {"PatientID": request.patient_id, "StudyDate": f"{request.since}-"}
        try:
            answers = self.find(ae_title, keys)
        except RemoteError as error:
            self.audit_query(ae_title, request, Outcome.SERIOUS_FAILURE, str(error))
            return Attempt(Delivery.NO_ANSWER, str(error))
        chosen = prefetch.queue_priors(self.engine, ae_title, request, answers)
        self.audit_query(ae_title, request, Outcome.SUCCESS, f"{len(answers)} study(ies) found, {len(chosen)} to fetch")
        return Attempt(Delivery.DELIVERED, f"{len(chosen)} prior(s) queued")

    def run_query(self, query: remote.RemoteQuery) -> None:
        """Serve one of the console's searches: the answers, or the reason, written back."""
        try:
            answers = self.find(query.peer_ae_title, dict(query.keys))
        except (RemoteError, OSError, RuntimeError, ValueError) as error:
            remote.finish(self.engine, query.id, None, str(error))
            return
        remote.finish(self.engine, query.id, answers)

    def serve_next_query(self) -> int:
        """The worker's loop: the oldest waiting search, if any; 1 when one was served."""
        query = remote.claim_next(self.engine)
        if query is None:
            return 0
        self.run_query(query)
        return 1

    @never_raises
    def audit_query(self, ae_title: str, request: prefetch.PriorsRequest, outcome: Outcome, description: str) -> None:
        """A prefetch's C-FIND: 110112 Query (E), we ask, the remote archive answers."""
        config = self.settings.current
        peer = config.peer(ae_title)
        participants = (
            ae(config.dicom.ae_title, "", True, ParticipantRole.SOURCE),
            ae(ae_title, peer.host if peer else "", False, ParticipantRole.DESTINATION),
        )
        keys = f"PatientID={request.patient_id}; StudyDate>={request.since}".encode()
        objects = (
            ParticipantObject(ObjectKind.QUERY, str(StudyRootQueryRetrieveInformationModelFind), query=keys),
            patient(patient_number(request.patient_id, request.issuer_of_patient_id)),
        )
        self.recorder.record(AuditEvent(EventId.QUERY, Action.EXECUTE, outcome, participants, objects, None,
                                        f"prefetch: {description}"))  # fmt: skip
