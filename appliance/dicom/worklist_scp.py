"""The Modality Worklist SCP (W1, W2): C-FIND on the scheduled steps, answered the way each
modality's profile says (`worklist.profiles`); this module only speaks DICOM. Answers are written
straight from the index rows and kept (`worklist_answers`) when our identifier writer is in force
and the syntax is little endian; otherwise built as Datasets for pynetdicom to write."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.events import Event
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from appliance import practice_time
from appliance.audit.events import Outcome
from appliance.config import Settings
from appliance.dicom import statuses
from appliance.dicom.audit import DicomAudit, QueryReport
from appliance.dicom.encoding import PreEncoded
from appliance.dicom.peers import AccessPolicy, caller
from appliance.dicom.pynetdicom_patches import CONNECTION_HANDLERS, in_force
from appliance.dicom.worklist_answers import AnswerCache
from appliance.worklist.profiles import answers

LOGGER = logging.getLogger(__name__)

MODALITY_WORKLIST_FIND = "1.2.840.10008.5.1.4.31"  # PS3.4 K.6.1


@dataclass
class WorklistService:
    """The MWL SCP's handlers and what they need, bound once; the configuration is read per query
    so that a reload (SIGHUP) applies to the next association."""

    settings: Settings
    engine: Engine
    policy: AccessPolicy
    audit: DicomAudit
    cache: AnswerCache = field(default_factory=AnswerCache)

    def handlers(self) -> list[Any]:
        return [
            *CONNECTION_HANDLERS,
            (evt.EVT_REQUESTED, self.policy.on_requested),
            (evt.EVT_C_FIND, self.on_find),
            (evt.EVT_C_ECHO, lambda event: statuses.SUCCESS),
        ]

    def on_find(self, event: Event) -> Iterator[tuple[int, Dataset | None]]:
        report = QueryReport()
        try:
            yield from self.find_responses(event, report)
        finally:
            self.audit.queried(event, MODALITY_WORKLIST_FIND, report)

    def find_responses(self, event: Event, report: QueryReport) -> Iterator[tuple[int, Dataset | None]]:
        calling = caller(event)
        if not self.policy.may(event.assoc, "worklist"):
            LOGGER.warning("worklist query from %s refused: no worklist right", calling)
            report.failed(Outcome.MINOR_FAILURE, "no worklist right")
            yield statuses.NOT_AUTHORIZED, None
            return
        try:
            found = self.prepared_answers(event, calling)
        except SQLAlchemyError:
            LOGGER.exception("worklist query from %s failed", calling)
            report.failed(Outcome.SERIOUS_FAILURE, "the index did not answer")
            yield statuses.UNABLE_TO_PROCESS, None
            return
        LOGGER.info("worklist query from %s: %d item(s)", calling, len(found))
        for identifier, patient in found:
            if event.is_cancelled:
                yield statuses.CANCEL, None
                return
            report.answered(*patient)
            yield statuses.PENDING, identifier

    def prepared_answers(self, event: Event, calling: str) -> list[tuple[Dataset, tuple[str, str, str]]]:
        """Each answer's identifier (written already when it can be) and whom it is about (patient
        ID, its issuer, name); raises SQLAlchemyError when the index fails."""
        config = self.settings.current.worklist
        syntax, today = event.context.transfer_syntax, practice_time.today()
        if in_force("identifier_writer") and syntax.is_little_endian and not syntax.is_deflated:
            implicit = syntax.is_implicit_VR
            written = self.cache.answers(self.engine, config, event.identifier, calling, today, implicit)
            return [
                (PreEncoded(one.encoded, implicit), (one.patient_id, one.issuer_of_patient_id, one.patient_name))
                for one in written
            ]
        built = answers(self.engine, config, event.identifier, calling, today)
        return [
            (one, (one.get("PatientID", ""), one.get("IssuerOfPatientID", ""), one.get("PatientName", "")))
            for one in built
        ]
