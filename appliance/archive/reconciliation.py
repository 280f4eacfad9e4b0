"""Studies and the orders of the RIS (P2): images that arrive before their order join its patient
when the order comes, studies that stay apart are listed, and staff attach them to the right patient.

At ingest a new study joins the patient of the order with its Study Instance UID or accession
number (see `index.ordered_patient`). When the order comes after the images, `link_to_order` moves
the studies it names from the patient created from the images to the order's patient. A study that
matches no order of its own patient is *unreconciled*: it matches no order at all, or its accession
number (or Study Instance UID) is that of another patient's order. Staff attach it to the right
patient (`appliance archive attach`, or the console's reconciliation page); a study attached by hand
is no longer listed, even without an order. The files are never rewritten, what leaves the archive
is coerced (`retrieve`), and every move is recorded in the identity audit trail.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Row,
    ScalarSelect,
    Select,
    and_,
    bindparam,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)

from appliance.db.schema import identity_change, patient, patient_identity, scheduled_step, study

LOGGER = logging.getLogger(__name__)
ATTACHED = "study-attached"  # identity_change.action of a study attached to a patient by hand


class AttachOutcome(enum.Enum):
    ATTACHED = "attached"
    UNKNOWN_STUDY = "unknown-study"
    UNKNOWN_PATIENT = "unknown-patient"
    ALREADY = "already-attached"


@dataclass(frozen=True)
class Move:
    """One study moved from a patient to another, and who or what moved it (for the audit trail)."""

    study_pk: int
    study_instance_uid: str
    from_patient_pk: int
    to_patient_pk: int
    action: str  # identity_change.action
    source_application: str
    source_event: str
    source_control_id: str = ""
    reason: str = ""


@dataclass(frozen=True)
class OrderedStudy:
    """What an order says about its study: the patient, the Study Instance UID, the accession number,
    and the placer order number (named in the audit trail)."""

    patient_pk: int
    study_instance_uid: str
    accession_number: str
    placer_order_number: str


# A scheduled step names a study by its Study Instance UID, or by its (non-empty) accession number.
NAMED_BY_UID = scheduled_step.c.study_instance_uid == study.c.study_instance_uid
NAMED_BY_ACCESSION = and_(study.c.accession_number != "", scheduled_step.c.accession_number == study.c.accession_number)


def unreconciled_studies(engine: Engine, limit: int = 500) -> list[dict[str, Any]]:
    """Studies that match no order of their own patient and that nobody attached by hand (newest
    first), each with its patient as received and its `reason`: no order at all, or the order of
    another patient has its Study Instance UID (`uid_ordered_for`) or accession number
    (`accession_ordered_for`)."""
    statement = unreconciled_statement().order_by(study.c.received_at.desc(), study.c.id.desc()).limit(limit)
    with engine.connect() as connection:
        rows = [dict(row._mapping) for row in connection.execute(statement)]
    return [{**row, "reason": unreconciled_reason(row)} for row in rows]


def unreconciled_study(engine: Engine, study_instance_uid: str) -> dict[str, Any] | None:
    """One study as `unreconciled_studies` lists it, or None when it is not (or no longer) waiting."""
    statement = unreconciled_statement().where(study.c.study_instance_uid == study_instance_uid)
    with engine.connect() as connection:
        row = connection.execute(statement).first()
    if row is None:
        return None
    found = dict(row._mapping)
    return {**found, "reason": unreconciled_reason(found)}


def count_unreconciled(engine: Engine) -> int:
    """How many studies `unreconciled_studies` would list without a limit (one COUNT, no rows)."""
    statement = select(func.count()).select_from(study).where(unreconciled())
    with engine.connect() as connection:
        return int(connection.execute(statement).scalar_one())


def unreconciled() -> ColumnElement[bool]:
    """A study that matches no order of its own patient, and that staff did not attach to it by hand."""
    ordered_same_patient = and_(
        or_(NAMED_BY_UID, NAMED_BY_ACCESSION), scheduled_step.c.patient_pk == study.c.patient_pk
    )
    attached_by_hand = and_(
        identity_change.c.patient_pk == study.c.patient_pk,
        identity_change.c.action == ATTACHED,
        identity_change.c.detail.startswith(literal("study ") + study.c.study_instance_uid + literal(" moved")),
    )
    return and_(~exists().where(ordered_same_patient), ~exists().where(attached_by_hand))


def unreconciled_statement() -> Select[Any]:
    return (
        select(
            study.c.study_instance_uid,
            study.c.study_date,
            study.c.accession_number,
            study.c.study_description,
            study.c.modalities_in_study,
            study.c.number_of_instances,
            study.c.received_at,
            patient.c.patient_id,
            patient.c.issuer_of_patient_id,
            patient.c.patient_name,
            patient.c.patient_birth_date,
            patient.c.patient_sex,
            patient_ordering(NAMED_BY_UID).label("uid_ordered_for"),
            patient_ordering(NAMED_BY_ACCESSION).label("accession_ordered_for"),
        )
        .select_from(study.join(patient, patient.c.id == study.c.patient_pk))
        .where(unreconciled())
    )


def patient_ordering(named: ColumnElement[bool]) -> ScalarSelect[Any]:
    """The Patient ID of the latest order of another patient that names the study (NULL if none)."""
    ordering = patient.alias("ordering_patient")
    return (
        select(ordering.c.patient_id)
        .select_from(scheduled_step.join(ordering, ordering.c.id == scheduled_step.c.patient_pk))
        .where(named, scheduled_step.c.patient_pk != study.c.patient_pk)
        .order_by(scheduled_step.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def unreconciled_reason(row: dict[str, Any]) -> str:
    if row["uid_ordered_for"] is not None:
        return f"its Study Instance UID is ordered for patient {row['uid_ordered_for']}"
    if row["accession_ordered_for"] is not None:
        return f"its accession number is ordered for patient {row['accession_ordered_for']}"
    return "no order"


def attach_study(engine: Engine, study_instance_uid: str, patient_id: str, issuer: str, who: str) -> AttachOutcome:
    """Re-point a study to the patient with this IPP; the change goes to the identity audit trail."""
    with engine.begin() as connection:
        current = connection.execute(
            select(study.c.id, study.c.patient_pk).where(study.c.study_instance_uid == study_instance_uid)
        ).first()
        if current is None:
            return AttachOutcome.UNKNOWN_STUDY
        target = connection.execute(
            select(patient.c.id).where(patient.c.patient_id == patient_id, patient.c.issuer_of_patient_id == issuer)
        ).scalar()
        if target is None:
            return AttachOutcome.UNKNOWN_PATIENT
        if target == current.patient_pk:
            return AttachOutcome.ALREADY
        move = Move(
            study_pk=current.id,
            study_instance_uid=study_instance_uid,
            from_patient_pk=current.patient_pk,
            to_patient_pk=target,
            action=ATTACHED,
            source_application=who,
            source_event="reconciliation",
        )
        move_study(connection, move, datetime.now(UTC))
    return AttachOutcome.ATTACHED


def link_to_order(connection: Connection, order: OrderedStudy, moment: datetime) -> list[str]:
    """Images before their order (P2): the archived studies the order names (`named_by`) that
    belong to another patient created from the images (one without identity from the RIS) move to
    the order's patient, each move audited. Runs in the caller's transaction (the one scheduling
    the order); returns the Study Instance UIDs moved."""
    moved = []
    for row in linkable_studies(connection, order):
        move = Move(
            study_pk=row.id,
            study_instance_uid=row.study_instance_uid,
            from_patient_pk=row.patient_pk,
            to_patient_pk=order.patient_pk,
            action="study-linked-to-order",
            source_application="worklist",
            source_event="order",
            source_control_id=order.placer_order_number,
            reason=f"its order (accession number {order.accession_number or 'none'}) came after the images",
        )
        move_study(connection, move, moment)
        LOGGER.info("study %s joined the patient of its order %s", row.study_instance_uid, order.accession_number)
        moved.append(row.study_instance_uid)
    return moved


def linkable_studies(connection: Connection, order: OrderedStudy) -> list[Row[Any]]:
    """The studies an order names (the one with its Study Instance UID when archived, else those
    with its accession number) that belong to another patient created from images."""
    values = {"uid": order.study_instance_uid, "accession": order.accession_number}
    found = connection.execute(NAMED_STUDIES, values).all()
    by_uid = [row for row in found if row.study_instance_uid == order.study_instance_uid]
    named = by_uid or [
        row for row in found if order.accession_number and row.accession_number == order.accession_number
    ]
    return [row for row in named if row.patient_pk != order.patient_pk and not row.identified]


# Built once, one query per order scheduled (an HL7 message): the studies with the order's Study
# Instance UID or accession number, and whether their patient has an identity from the RIS.
NAMED_STUDIES = select(
    study.c.id,
    study.c.study_instance_uid,
    study.c.accession_number,
    study.c.patient_pk,
    exists().where(patient_identity.c.patient_pk == study.c.patient_pk).label("identified"),
).where(
    or_(
        study.c.study_instance_uid == bindparam("uid"),
        and_(bindparam("accession") != "", study.c.accession_number == bindparam("accession")),
    )
)


def move_study(connection: Connection, move: Move, moment: datetime) -> None:
    """Re-point the study and record the change in the identity audit trail (of the new patient);
    the detail starts `study <UID> moved` (`unreconciled` finds the studies attached by hand so)."""
    connection.execute(
        update(study).where(study.c.id == move.study_pk).values(patient_pk=move.to_patient_pk, updated_at=moment)
    )
    detail = f"study {move.study_instance_uid} moved from patient #{move.from_patient_pk} to #{move.to_patient_pk}"
    connection.execute(
        insert(identity_change).values(
            patient_pk=move.to_patient_pk,
            action=move.action,
            detail=f"{detail}: {move.reason}" if move.reason else detail,
            source_application=move.source_application,
            source_facility="",
            source_event=move.source_event,
            source_control_id=move.source_control_id,
            changed_at=moment,
        )
    )
