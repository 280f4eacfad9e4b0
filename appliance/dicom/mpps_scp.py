"""Modality Performed Procedure Step SCP (N-CREATE / N-SET, PS3.4 F.7) on the archive's AE (W4): the
handlers decode, call `worklist.performed`, and answer its outcome as a named status."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import evt
from pynetdicom.events import Event
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from appliance.dicom import statuses
from appliance.dicom.peers import AccessPolicy, caller
from appliance.worklist import performed
from appliance.worklist.performed import PerformedOutcome, PerformedResult

LOGGER = logging.getLogger(__name__)

MPPS_STATUS = {
    PerformedOutcome.CREATED: statuses.SUCCESS,
    PerformedOutcome.UPDATED: statuses.SUCCESS,
    PerformedOutcome.DUPLICATE: statuses.DUPLICATE_SOP_INSTANCE,
    PerformedOutcome.NO_SUCH_STEP: statuses.NO_SUCH_OBJECT_INSTANCE,
    PerformedOutcome.FINISHED: statuses.PROCESSING_FAILURE,  # PS3.4 F.7.2.2.2: may no longer be updated
    PerformedOutcome.INVALID_STATUS: statuses.INVALID_ATTRIBUTE_VALUE,
}


@dataclass
class PerformedStepServices:
    engine: Engine
    policy: AccessPolicy

    def handlers(self) -> list[Any]:
        return [(evt.EVT_N_CREATE, self.on_create), (evt.EVT_N_SET, self.on_set)]

    def on_create(self, event: Event) -> tuple[int, Dataset | None]:
        if not self.policy.may(event.assoc, "worklist"):
            LOGGER.warning("MPPS N-CREATE from %s refused: no worklist right", caller(event))
            return statuses.NOT_AUTHORIZED, None
        request: Any = event.request
        uid = str(request.AffectedSOPInstanceUID or "") or generate_uid(prefix=None)
        request.AffectedSOPInstanceUID = uid
        return self.answer(
            "N-CREATE", uid, lambda: performed.create(self.engine, uid, event.attribute_list, caller(event))
        )

    def on_set(self, event: Event) -> tuple[int, Dataset | None]:
        if not self.policy.may(event.assoc, "worklist"):
            LOGGER.warning("MPPS N-SET from %s refused: no worklist right", caller(event))
            return statuses.NOT_AUTHORIZED, None
        uid = str(getattr(event.request, "RequestedSOPInstanceUID", "") or "")
        return self.answer("N-SET", uid, lambda: performed.modify(self.engine, uid, event.modification_list))

    def answer(self, operation: str, uid: str, work: Callable[[], PerformedResult]) -> tuple[int, Dataset | None]:
        try:
            result = work()
        except SQLAlchemyError:
            LOGGER.exception("MPPS %s %s failed", operation, uid)
            return statuses.PROCESSING_FAILURE, None
        LOGGER.info("MPPS %s %s: %s %s", operation, uid, result.outcome.value, result.detail)
        return MPPS_STATUS[result.outcome], result.dataset
