"""The archive's DICOM services: verification, storage, query and retrieve (A1, A3, A4, A6).

Each handler decodes the request, makes one domain call and maps the result to a named status.
Dependencies are bound when the handler table is built (`handlers()`), not through globals.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.events import Event
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from appliance.archive.ingest import IncomingObject, Ingest, StoreOutcome
from appliance.archive.retrieve import HeldSyntaxesReader, RetrievePlan, plan, source
from appliance.archive.search import QueryError, find
from appliance.archive.storage import FileStore
from appliance.audit.events import Outcome, ParticipantRole, ae
from appliance.config import Settings
from appliance.dicom import statuses
from appliance.dicom.audit import DicomAudit, QueryReport, RetrieveReport
from appliance.dicom.contexts import FIND_MODELS, GET_MODELS, MOVE_MODELS
from appliance.dicom.file_meta import received_file
from appliance.dicom.identifiers import IdentifierError, query_of, response_identifier
from appliance.dicom.peers import AccessPolicy, caller
from appliance.dicom.pynetdicom_patches import (
    CONNECTION_HANDLERS,
    REQUESTOR_HANDLERS,
    fast_stores,
    note_move_destination,
    refuse_retrieve,
    throttled_retrieve_responses,
)
from appliance.dicom.retrieve import Lookahead, install_sender, proposed_contexts, retrieve_contexts
from appliance.monitor.dicom import MONITOR_AE_TITLE

LOGGER = logging.getLogger(__name__)

STORE_STATUS = {
    StoreOutcome.STORED: statuses.SUCCESS,
    StoreOutcome.DUPLICATE_IDENTICAL: statuses.SUCCESS,
    StoreOutcome.DUPLICATE_QUARANTINED: statuses.SUCCESS,
    StoreOutcome.REFUSED_NO_SPACE: statuses.OUT_OF_RESOURCES,
    StoreOutcome.REFUSED_INVALID: statuses.CANNOT_UNDERSTAND,
    StoreOutcome.REFUSED_MISMATCH: statuses.DATASET_DOES_NOT_MATCH,
    StoreOutcome.FAILED: statuses.OUT_OF_RESOURCES,
}

REFUSED_MOVE_DESTINATION = ("127.0.0.1", 0)  # a refused C-MOVE's placeholder, never contacted

# Study root has no PATIENT level (PS3.4 C.6.2).
LEVELS_OF_MODEL = {
    "PATIENT_ROOT": ("PATIENT", "STUDY", "SERIES", "IMAGE"),
    "STUDY_ROOT": ("STUDY", "SERIES", "IMAGE"),
}


@dataclass
class ArchiveServices:
    """What the handlers need, bound once; the configuration is read per request so that a reload
    (SIGHUP) applies to the next association."""

    settings: Settings
    engine: Engine
    files: FileStore
    ingest: Ingest
    policy: AccessPolicy
    audit: DicomAudit
    held: HeldSyntaxesReader = field(init=False)

    def __post_init__(self) -> None:
        self.held = HeldSyntaxesReader(self.engine)

    def handlers(self) -> list[Any]:
        return [
            *CONNECTION_HANDLERS,
            (evt.EVT_REQUESTED, self.on_requested),
            (evt.EVT_ESTABLISHED, self.on_established),
            (evt.EVT_RELEASED, self.on_closed),
            (evt.EVT_ABORTED, self.on_closed),
            (evt.EVT_C_ECHO, self.on_echo),
            (evt.EVT_C_STORE, self.on_store),
            (evt.EVT_C_FIND, self.on_find),
            (evt.EVT_C_GET, self.on_get),
            (evt.EVT_C_MOVE, self.on_move),
        ]

    def on_requested(self, event: Event) -> None:
        self.policy.on_requested(event)
        if not (event.assoc.is_rejected or event.assoc.is_aborted):
            retrieve_contexts(event.assoc, self.held.current)

    def on_established(self, event: Event) -> None:
        install_sender(event.assoc)
        throttled_retrieve_responses(event)
        fast_stores(event)
        STORED.setdefault(event.assoc, StoreTally())
        calling = caller(event)
        level = logging.DEBUG if calling == MONITOR_AE_TITLE else logging.INFO  # its C-ECHO every minute
        LOGGER.log(level, "association from %s (%s) established", calling, event.assoc.requestor.address)

    def on_closed(self, event: Event) -> None:
        self.audit.association_ended(event)
        tally = STORED.pop(event.assoc, None)
        if tally is not None and tally.count:
            LOGGER.info("association from %s (%s): %s", caller(event), event.assoc.requestor.address, tally.summary())

    def on_echo(self, event: Event) -> int:
        return statuses.SUCCESS

    def on_store(self, event: Event) -> int | Dataset:
        if not self.policy.may(event.assoc, "store"):
            LOGGER.warning("C-STORE from %s refused: no store right", caller(event))
            return statuses.NOT_AUTHORIZED
        request: Any = event.request
        context_class = str(event.context.abstract_syntax)
        if str(request.AffectedSOPClassUID) != context_class:
            LOGGER.warning("C-STORE from %s refused: SOP class %s sent on the presentation context of %s",
                           caller(event), request.AffectedSOPClassUID, context_class)  # fmt: skip
            return refusal(statuses.SOP_CLASS_NOT_SUPPORTED, "SOP class differs from its presentation context")
        incoming = IncomingObject(
            encoded=received_file(event),
            affected_sop_instance_uid=str(request.AffectedSOPInstanceUID),
            affected_sop_class_uid=str(request.AffectedSOPClassUID),
            calling_ae_title=caller(event),
        )
        result = self.ingest.store(incoming)
        STORED.setdefault(event.assoc, StoreTally()).add(result.outcome, len(incoming.encoded))
        self.audit.stored(event.assoc, result)
        log_store(event, incoming, result.outcome, result.detail)
        if result.outcome in (StoreOutcome.REFUSED_INVALID, StoreOutcome.REFUSED_MISMATCH):
            return refusal(STORE_STATUS[result.outcome], result.detail)
        return STORE_STATUS[result.outcome]

    def on_find(self, event: Event) -> Iterator[tuple[int, Dataset | None]]:
        report = QueryReport()
        try:
            yield from self.find_responses(event, report)
        finally:
            self.audit.queried(event, str(event.request.AffectedSOPClassUID), report)

    def find_responses(self, event: Event, report: QueryReport) -> Iterator[tuple[int, Dataset | None]]:
        if not self.policy.may(event.assoc, "query"):
            LOGGER.warning("C-FIND from %s refused: no query right", caller(event))
            report.failed(Outcome.MINOR_FAILURE, "no query right")
            yield statuses.NOT_AUTHORIZED, None
            return
        model = FIND_MODELS[str(event.request.AffectedSOPClassUID)]
        dicom = self.settings.current.dicom
        try:
            request = event.identifier
            query = query_of(request)
            check_level(model, query.level)
            rows = find(self.engine, query, dicom.maximum_find_results)
        except (IdentifierError, QueryError) as error:
            LOGGER.warning("C-FIND from %s refused: %s", caller(event), error)
            report.failed(Outcome.MINOR_FAILURE, "invalid query")
            yield statuses.DATASET_DOES_NOT_MATCH, None
            return
        except SQLAlchemyError:
            LOGGER.exception("C-FIND from %s failed", caller(event))
            report.failed(Outcome.SERIOUS_FAILURE, "the index did not answer")
            yield statuses.UNABLE_TO_PROCESS, None
            return
        limit = dicom.maximum_find_results
        LOGGER.info("C-FIND %s from %s: %d match(es)", query.level, caller(event), min(len(rows), limit))
        for row in rows[:limit]:
            if event.is_cancelled:
                yield statuses.CANCEL, None
                return
            report.answered(row.get("PatientID"), row.get("IssuerOfPatientID"), row.get("PatientName"))
            yield statuses.PENDING, response_identifier(row, request, query.level, dicom.ae_title)
        if len(rows) > limit:
            LOGGER.warning("C-FIND from %s: more than %d matches, answer cut", caller(event), limit)
            yield statuses.OUT_OF_RESOURCES, None

    def on_get(self, event: Event) -> Iterator[Any]:
        report = RetrieveReport()
        try:
            yield from self.get_responses(event, report)
        finally:
            self.audit.retrieved(event, report, self.engine)

    def get_responses(self, event: Event, report: RetrieveReport) -> Iterator[Any]:
        if not self.policy.may(event.assoc, "retrieve"):
            LOGGER.warning("C-GET from %s refused: no retrieve right", caller(event))
            report.refused(Outcome.MINOR_FAILURE, "no retrieve right")
            refuse_retrieve(event.assoc, statuses.NOT_AUTHORIZED)
            yield 0
            return
        found = self.plan_of(event, GET_MODELS)
        if found is None:
            report.refused(Outcome.MINOR_FAILURE, "invalid query")
            refuse_retrieve(event.assoc, statuses.IDENTIFIER_DOES_NOT_MATCH)
            yield 0
            return
        LOGGER.info("C-GET from %s: %d instance(s)", caller(event), len(found.items))
        report.planned = len(found.items)
        yield len(found.items)
        yield from self.sub_operations(event, found, report)

    def on_move(self, event: Event) -> Iterator[Any]:
        report = RetrieveReport()
        try:
            yield from self.move_responses(event, report)
        finally:
            self.audit.retrieved(event, report, self.engine)

    def move_responses(self, event: Event, report: RetrieveReport) -> Iterator[Any]:
        if not self.policy.may(event.assoc, "retrieve"):
            LOGGER.warning("C-MOVE from %s refused: no retrieve right", caller(event))
            report.refused(Outcome.MINOR_FAILURE, "no retrieve right")
            refuse_retrieve(event.assoc, statuses.NOT_AUTHORIZED)
            yield from refused_move()
            return
        named = str(event.move_destination).strip()
        destination = self.settings.current.peer(named)
        report.destination = ae(named, destination.host if destination else "", False, ParticipantRole.DESTINATION)
        if destination is None:
            LOGGER.warning(
                "C-MOVE from %s: destination %s is not a configured peer", caller(event), event.move_destination
            )
            report.refused(Outcome.MINOR_FAILURE, "unknown move destination")
            yield None, None
            return
        found = self.plan_of(event, MOVE_MODELS)
        if found is None:
            report.refused(Outcome.MINOR_FAILURE, "invalid query")
            refuse_retrieve(event.assoc, statuses.IDENTIFIER_DOES_NOT_MATCH)
            yield from refused_move()
            return
        report.planned = len(found.items)
        options = {
            "contexts": proposed_contexts(found),
            "evt_handlers": [*REQUESTOR_HANDLERS, (evt.EVT_ESTABLISHED, self.on_sub_association)],
        }
        note_move_destination(event.assoc, f"{destination.ae_title} at {destination.host}:{destination.port}")
        yield destination.host, destination.port, options
        LOGGER.info("C-MOVE from %s to %s: %d instance(s)", caller(event), destination.ae_title, len(found.items))
        yield len(found.items)
        yield from self.sub_operations(event, found, report)

    def on_sub_association(self, event: Event) -> None:
        install_sender(event.assoc)

    def plan_of(self, event: Event, models: dict[str, str]) -> RetrievePlan | None:
        try:
            query = query_of(event.identifier)
            check_level(models[str(event.request.AffectedSOPClassUID)], query.level)
            return plan(self.engine, query)
        except (IdentifierError, QueryError) as error:
            LOGGER.warning("retrieve from %s refused: %s", caller(event), error)
            return None

    def sub_operations(
        self, event: Event, found: RetrievePlan, report: RetrieveReport
    ) -> Iterator[tuple[int, Dataset | None]]:
        lookahead = Lookahead(found, partial(source, self.files))
        try:
            for position, item in enumerate(found.items):
                if event.is_cancelled:
                    yield statuses.CANCEL, None
                    return
                reference = lookahead.reference(position)
                yield statuses.PENDING, reference
                report.add(item, reference.delivered)  # resumed once the sub-operation is over
        finally:
            lookahead.close()


@dataclass
class StoreTally:
    """What one association stored, for its summary line (counts and bytes, no patient data)."""

    started: float = field(default_factory=time.monotonic)
    outcomes: Counter[str] = field(default_factory=Counter)
    count: int = 0
    bytes: int = 0

    def add(self, outcome: StoreOutcome, size: int) -> None:
        self.outcomes[outcome.value] += 1
        self.count += 1
        self.bytes += size

    def summary(self) -> str:
        seconds = time.monotonic() - self.started
        detail = ", ".join(f"{count} {outcome}" for outcome, count in sorted(self.outcomes.items()))
        return f"{self.count} object(s), {self.bytes} bytes in {seconds:.1f} s ({detail})"


STORED: weakref.WeakKeyDictionary[object, StoreTally] = weakref.WeakKeyDictionary()


def refused_move() -> Iterator[Any]:
    """What a refused C-MOVE yields: a placeholder destination (never contacted) and no
    sub-operation, so that pynetdicom answers with the final response the refusal filter rewrites
    (`refuse_retrieve`). Yielding no destination would make pynetdicom answer A801 and log a
    configured destination as unknown."""
    yield REFUSED_MOVE_DESTINATION
    yield 0


def refusal(status: int, reason: str) -> Dataset:
    """A C-STORE response status with its reason in Error Comment (LO: 64 characters, never patient
    data: the reasons are about the encoding and the UIDs' places)."""
    response = Dataset()
    response.Status = status
    response.ErrorComment = reason[:64]
    return response


def check_level(model: str, level: str) -> None:
    if level not in LEVELS_OF_MODEL[model]:
        raise QueryError(f"QueryRetrieveLevel: {level} is not a level of the {model.lower().replace('_', ' ')} model")


def log_store(event: Event, incoming: IncomingObject, outcome: StoreOutcome, detail: str) -> None:
    if outcome in (StoreOutcome.STORED, StoreOutcome.DUPLICATE_IDENTICAL):
        LOGGER.debug(
            "C-STORE %s from %s: %s", incoming.affected_sop_instance_uid, incoming.calling_ae_title, outcome.value
        )
        return
    LOGGER.warning(
        "C-STORE %s from %s (%s): %s %s",
        incoming.affected_sop_instance_uid,
        incoming.calling_ae_title,
        event.assoc.requestor.address,
        outcome.value,
        detail,
    )
