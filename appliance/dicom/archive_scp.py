"""The archive's DICOM services: verification, storage, query and retrieve (A1, A3, A4, A6).

Each handler decodes the request, makes one domain call and maps the result to a named status.
Dependencies are bound when the handler table is built (`handlers()`), not through globals.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.events import Event
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from appliance.archive.egress import study_coercions
from appliance.archive.ingest import IncomingObject, Ingest, StoreOutcome
from appliance.archive.search import QueryError, RetrieveItem, find, retrieve_items
from appliance.archive.storage import FileStore
from appliance.config import Config
from appliance.dicom import statuses
from appliance.dicom.contexts import FIND_MODELS, GET_MODELS, MOVE_MODELS
from appliance.dicom.identifiers import IdentifierError, query_of, response_identifier
from appliance.dicom.peers import AccessPolicy
from appliance.dicom.retrieve import StoredReference, install_sender, proposed_contexts, throttle_pending_responses
from appliance.dicom.tuning import CONNECTION_HANDLERS, REQUESTOR_HANDLERS
from appliance.dicom.workflow_scp import WorkflowServices
from appliance.patients.national import national_identifiers

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

# Study root has no PATIENT level (PS3.4 C.6.2).
LEVELS_OF_MODEL = {
    "PATIENT_ROOT": ("PATIENT", "STUDY", "SERIES", "IMAGE"),
    "STUDY_ROOT": ("STUDY", "SERIES", "IMAGE"),
}


@dataclass
class ArchiveServices:
    """What the handlers need, bound once."""

    config: Config
    engine: Engine
    files: FileStore
    ingest: Ingest
    policy: AccessPolicy

    def handlers(self) -> list[Any]:
        return [
            *CONNECTION_HANDLERS,
            (evt.EVT_REQUESTED, self.on_requested),
            (evt.EVT_ESTABLISHED, self.on_established),
            (evt.EVT_C_ECHO, self.on_echo),
            (evt.EVT_C_STORE, self.on_store),
            (evt.EVT_C_FIND, self.on_find),
            (evt.EVT_C_GET, self.on_get),
            (evt.EVT_C_MOVE, self.on_move),
            *WorkflowServices(self.config, self.engine, self.files, self.policy).handlers(),
        ]

    def on_requested(self, event: Event) -> None:
        """A-ASSOCIATE-RQ: admit known peers only (A6); refuse others with a logged reason."""
        request = event.assoc.requestor.primitive
        calling = str(request.calling_ae_title if request else "").strip()
        address = event.assoc.requestor.address
        admission = self.policy.admit(calling, address)
        if not admission.admitted:
            LOGGER.warning("association from %s (%s) rejected: %s", calling, address, admission.reason)
            event.assoc.acse.send_reject(
                statuses.REJECTED_PERMANENT, statuses.SOURCE_SERVICE_USER, statuses.REASON_CALLING_AE_NOT_RECOGNIZED
            )
            event.assoc.kill()  # waits until the A-ASSOCIATE-RJ has gone out
            return
        if self.config.is_development and "development" in admission.reason:
            LOGGER.info("association from %s (%s) admitted: %s", calling, address, admission.reason)
        self.policy.remember(event.assoc, admission.rights)

    def on_established(self, event: Event) -> None:
        install_sender(event.assoc)
        throttle_pending_responses(event.assoc)
        LOGGER.info("association from %s (%s) established", caller(event), event.assoc.requestor.address)

    def on_echo(self, event: Event) -> int:
        return statuses.SUCCESS

    def on_store(self, event: Event) -> int:
        if not self.policy.may(event.assoc, "store"):
            LOGGER.warning("C-STORE from %s refused: no store right", caller(event))
            return statuses.NOT_AUTHORIZED
        request: Any = event.request
        incoming = IncomingObject(
            encoded=event.encoded_dataset(),
            affected_sop_instance_uid=str(request.AffectedSOPInstanceUID),
            affected_sop_class_uid=str(request.AffectedSOPClassUID),
            calling_ae_title=caller(event),
        )
        result = self.ingest.store(incoming)
        log_store(event, incoming, result.outcome, result.detail)
        return STORE_STATUS[result.outcome]

    def on_find(self, event: Event) -> Iterator[tuple[int, Dataset | None]]:
        if not self.policy.may(event.assoc, "query"):
            LOGGER.warning("C-FIND from %s refused: no query right", caller(event))
            yield statuses.NOT_AUTHORIZED, None
            return
        model = FIND_MODELS[str(event.request.AffectedSOPClassUID)]
        try:
            request = event.identifier
            query = query_of(request)
            check_level(model, query.level)
            limit = self.config.dicom.maximum_find_results
            rows = find(self.engine, query, limit)
        except (IdentifierError, QueryError) as error:
            LOGGER.warning("C-FIND from %s refused: %s", caller(event), error)
            yield statuses.DATASET_DOES_NOT_MATCH, None
            return
        except SQLAlchemyError:
            LOGGER.exception("C-FIND from %s failed", caller(event))
            yield statuses.UNABLE_TO_PROCESS, None
            return
        LOGGER.info("C-FIND %s from %s: %d match(es)", query.level, caller(event), min(len(rows), limit))
        if "OtherPatientIDsSequence" in request:
            national = national_identifiers(self.engine, sorted({row["PatientPK"] for row in rows}))
            rows = [{**row, "OtherPatientIDsSequence": national.get(row["PatientPK"], [])} for row in rows]
        for row in rows[:limit]:
            if event.is_cancelled:
                yield statuses.CANCEL, None
                return
            yield statuses.PENDING, response_identifier(row, request, query.level, self.config.dicom.ae_title)
        if len(rows) > limit:
            LOGGER.warning("C-FIND from %s: more than %d matches, answer cut", caller(event), limit)
            yield statuses.OUT_OF_RESOURCES, None

    def on_get(self, event: Event) -> Iterator[Any]:
        if not self.policy.may(event.assoc, "retrieve"):
            LOGGER.warning("C-GET from %s refused: no retrieve right", caller(event))
            yield statuses.NOT_AUTHORIZED, None
            return
        items = self.items_to_send(event, GET_MODELS)
        if items is None:
            yield statuses.DATASET_DOES_NOT_MATCH, None
            return
        LOGGER.info("C-GET from %s: %d instance(s)", caller(event), len(items))
        yield len(items)
        yield from self.sub_operations(event, items)

    def on_move(self, event: Event) -> Iterator[Any]:
        if not self.policy.may(event.assoc, "retrieve"):
            LOGGER.warning("C-MOVE from %s refused: no retrieve right", caller(event))
            yield statuses.NOT_AUTHORIZED, None
            return
        destination = self.config.peer(str(event.move_destination).strip())
        if destination is None:
            LOGGER.warning(
                "C-MOVE from %s: destination %s is not a configured peer", caller(event), event.move_destination
            )
            yield None, None
            return
        items = self.items_to_send(event, MOVE_MODELS)
        if items is None:
            yield destination.host, destination.port
            yield statuses.DATASET_DOES_NOT_MATCH, None
            return
        options = {
            "contexts": proposed_contexts(items),
            "evt_handlers": [*REQUESTOR_HANDLERS, (evt.EVT_ESTABLISHED, self.on_sub_association)],
        }
        yield destination.host, destination.port, options
        LOGGER.info("C-MOVE from %s to %s: %d instance(s)", caller(event), destination.ae_title, len(items))
        yield len(items)
        yield from self.sub_operations(event, items)

    def on_sub_association(self, event: Event) -> None:
        install_sender(event.assoc)

    def items_to_send(self, event: Event, models: dict[str, str]) -> list[RetrieveItem] | None:
        try:
            query = query_of(event.identifier)
            check_level(models[str(event.request.AffectedSOPClassUID)], query.level)
            return retrieve_items(self.engine, query)
        except (IdentifierError, QueryError) as error:
            LOGGER.warning("retrieve from %s refused: %s", caller(event), error)
            return None

    def sub_operations(self, event: Event, items: list[RetrieveItem]) -> Iterator[tuple[int, Dataset | None]]:
        coercions = study_coercions(self.engine, sorted({item.study_instance_uid for item in items}))
        for item in items:
            if event.is_cancelled:
                yield statuses.CANCEL, None
                return
            coercion = coercions.get(item.study_instance_uid)
            yield statuses.PENDING, StoredReference(item, self.files.absolute(item.path), coercion)


def check_level(model: str, level: str) -> None:
    if level not in LEVELS_OF_MODEL[model]:
        raise QueryError(f"QueryRetrieveLevel: {level} is not a level of the {model.lower().replace('_', ' ')} model")


def caller(event: Event) -> str:
    return str(event.assoc.requestor.ae_title).strip()


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
