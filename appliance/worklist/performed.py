"""Modality Performed Procedure Steps (W4): IN PROGRESS, then COMPLETED or DISCONTINUED, linked to
the scheduled step they perform, whose status follows; each change is a workflow event for the RIS."""

from __future__ import annotations

import enum
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from sqlalchemy import Connection, Engine, insert, select, update

from appliance.archive import changes
from appliance.db.schema import performed_step, scheduled_step
from appliance.worklist.scheduling import COMPLETED, DISCONTINUED, IN_PROGRESS

FINAL = {COMPLETED, DISCONTINUED}
CHANGE_OF_STATUS = {
    IN_PROGRESS: changes.PROCEDURE_IN_PROGRESS,
    COMPLETED: changes.PROCEDURE_COMPLETED,
    DISCONTINUED: changes.PROCEDURE_DISCONTINUED,
}


class PerformedOutcome(enum.Enum):
    CREATED = "created"
    UPDATED = "updated"
    DUPLICATE = "duplicate"  # N-CREATE of an existing step: 0111H
    NO_SUCH_STEP = "no-such-step"  # N-SET of an unknown step: 0112H
    FINISHED = "finished"  # N-SET after COMPLETED or DISCONTINUED: refused
    INVALID_STATUS = "invalid-status"  # a status other than the three allowed: 0106H


@dataclass(frozen=True)
class PerformedResult:
    outcome: PerformedOutcome
    dataset: Dataset | None = None
    detail: str = ""


def create(engine: Engine, sop_instance_uid: str, attributes: Dataset, calling_ae_title: str) -> PerformedResult:
    """N-CREATE: a step starts (status must be IN PROGRESS, PS3.4 F.7.2.1)."""
    status = str(attributes.get("PerformedProcedureStepStatus", ""))
    if status != IN_PROGRESS:
        return PerformedResult(PerformedOutcome.INVALID_STATUS, detail=f"status {status!r} at creation")
    with engine.begin() as connection:
        if connection.execute(
            select(performed_step.c.id).where(performed_step.c.sop_instance_uid == sop_instance_uid)
        ).first():
            return PerformedResult(PerformedOutcome.DUPLICATE)
        scheduled = linked_scheduled_step(connection, attributes)
        moment = datetime.now(UTC)
        connection.execute(
            insert(performed_step).values(
                sop_instance_uid=sop_instance_uid,
                scheduled_step_pk=scheduled["id"] if scheduled else None,
                status=status,
                calling_ae_title=calling_ae_title,
                study_instance_uid=first_scheduled_value(attributes, "StudyInstanceUID"),
                accession_number=first_scheduled_value(attributes, "AccessionNumber"),
                dataset=encoded(attributes),
                created_at=moment,
                updated_at=moment,
            )
        )
        follow(connection, scheduled, status, moment)
    return PerformedResult(PerformedOutcome.CREATED, attributes)


def modify(engine: Engine, sop_instance_uid: str, modifications: Dataset) -> PerformedResult:
    """N-SET: attributes change; COMPLETED or DISCONTINUED is final (PS3.4 F.7.2.2)."""
    with engine.begin() as connection:
        row = connection.execute(
            select(performed_step).where(performed_step.c.sop_instance_uid == sop_instance_uid)
        ).first()
        if row is None:
            return PerformedResult(PerformedOutcome.NO_SUCH_STEP)
        if row.status in FINAL:
            return PerformedResult(PerformedOutcome.FINISHED, detail=f"already {row.status}")
        dataset = read_dataset(io.BytesIO(row.dataset), is_implicit_VR=False, is_little_endian=True)
        dataset.update(modifications)
        status = str(dataset.get("PerformedProcedureStepStatus", row.status))
        if status not in (IN_PROGRESS, *FINAL):
            return PerformedResult(PerformedOutcome.INVALID_STATUS, detail=f"status {status!r}")
        moment = datetime.now(UTC)
        connection.execute(
            update(performed_step)
            .where(performed_step.c.id == row.id)
            .values(status=status, dataset=encoded(dataset), updated_at=moment)
        )
        if status != row.status:
            scheduled = scheduled_by_id(connection, row.scheduled_step_pk)
            follow(connection, scheduled, status, moment, row.study_instance_uid, row.accession_number)
    return PerformedResult(PerformedOutcome.UPDATED, dataset)


def linked_scheduled_step(connection: Connection, attributes: Dataset) -> dict[str, Any] | None:
    """The scheduled step this performed step says it performs (accession number, then study UID)."""
    for column, keyword in (
        (scheduled_step.c.accession_number, "AccessionNumber"),
        (scheduled_step.c.study_instance_uid, "StudyInstanceUID"),
    ):
        value = first_scheduled_value(attributes, keyword)
        if value:
            row = connection.execute(select(scheduled_step).where(column == value).limit(1)).first()
            if row is not None:
                return dict(row._mapping)
    return None


def scheduled_by_id(connection: Connection, step_id: int | None) -> dict[str, Any] | None:
    if step_id is None:
        return None
    row = connection.execute(select(scheduled_step).where(scheduled_step.c.id == step_id)).first()
    return dict(row._mapping) if row else None


def follow(
    connection: Connection,
    scheduled: dict[str, Any] | None,
    status: str,
    moment: datetime,
    study_instance_uid: str = "",
    accession_number: str = "",
) -> None:
    """The scheduled step takes the performed step's status; the change is published (for the RIS)."""
    if scheduled is not None:
        connection.execute(
            update(scheduled_step)
            .where(scheduled_step.c.id == scheduled["id"])
            .values(status=status, updated_at=moment)
        )
    changes.publish(
        connection,
        CHANGE_OF_STATUS[status],
        scheduled["study_instance_uid"] if scheduled else study_instance_uid,
        moment,
        accession_number=scheduled["accession_number"] if scheduled else accession_number,
        scheduled_step_pk=scheduled["id"] if scheduled else None,
    )


def first_scheduled_value(attributes: Dataset, keyword: str) -> str:
    sequence = attributes.get("ScheduledStepAttributesSequence")
    if sequence:
        return str(sequence[0].get(keyword, "") or "")
    return ""


def encoded(dataset: Dataset) -> bytes:
    """The dataset in Explicit VR Little Endian, without file meta (kept in the index)."""
    buffer = DicomBytesIO()
    buffer.is_little_endian = True
    buffer.is_implicit_VR = False
    write_dataset(buffer, dataset)
    return bytes(buffer.getvalue())
