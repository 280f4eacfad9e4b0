"""Orders applied to the worklist (W3): new, change, cancel, discontinue and status change.

`apply_order` runs inside the caller's transaction (the HL7 edge applies the message and records it
as applied in one commit). The step is found by placer order number (then filler order number, then
accession number). A Study Instance UID is generated when the RIS sends none; the station AE title
comes from the configured mapping when the order lacks it. Images archived before their order join
the order's patient when it is scheduled (`archive.reconciliation.link_to_order`). A new step is
published on the change feed (`order-scheduled`): the worker fetches the patient's priors from the
remote archives (`forward.prefetch`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydicom.uid import generate_uid
from sqlalchemy import Connection, bindparam, insert, select, update

from appliance.archive import changes
from appliance.archive.reconciliation import OrderedStudy, link_to_order
from appliance.config import Config
from appliance.db.schema import scheduled_step
from appliance.worklist.orders import Order, OrderControl, OrderOutcome, OrderResult

SCHEDULED = "SCHEDULED"
IN_PROGRESS = "IN PROGRESS"
COMPLETED = "COMPLETED"
DISCONTINUED = "DISCONTINUED"
CANCELLED = "CANCELLED"
FINISHED = {COMPLETED, DISCONTINUED, CANCELLED}

# ORC-5 order status (HL7 table 0038) to the step's status.
ORDER_STATUS = {"SC": SCHEDULED, "IP": IN_PROGRESS, "CM": COMPLETED, "DC": DISCONTINUED, "CA": CANCELLED}


def apply_order(connection: Connection, order: Order, patient_pk: int, config: Config) -> OrderResult:
    """Create, change, cancel or discontinue the scheduled step of `order`; say what happened."""
    existing = find_step(connection, order)
    if order.control is OrderControl.NEW and existing is None:
        return schedule(connection, order, patient_pk, config)
    if existing is None:
        return OrderResult(
            OrderOutcome.UNKNOWN_ORDER, f"no order {order.placer_order_number or order.accession_number}"
        )
    if order.control in (OrderControl.NEW, OrderControl.CHANGE):
        return change(connection, existing, order, patient_pk, config)
    if order.control is OrderControl.CANCEL:
        return cancel(connection, existing)
    if order.control is OrderControl.DISCONTINUE:
        set_status(connection, existing["id"], DISCONTINUED)
        return OrderResult(OrderOutcome.DISCONTINUED, study_instance_uid=existing["study_instance_uid"])
    return status_change(connection, existing, order)


def find_step(connection: Connection, order: Order) -> dict[str, Any] | None:
    """The step of the order: by placer order number, else filler order number, else accession."""
    for statement, value in (
        (STEP_BY_PLACER, order.placer_order_number),
        (STEP_BY_FILLER, order.filler_order_number),
        (STEP_BY_ACCESSION, order.accession_number),
    ):
        if value:
            row = connection.execute(statement, {"value": value}).first()
            if row is not None:
                return dict(row._mapping)
    return None


def latest_step_where(column: Any) -> Any:
    """A prepared statement: the newest step whose `column` equals the bound value."""
    return select(scheduled_step).where(column == bindparam("value")).order_by(scheduled_step.c.id.desc()).limit(1)


INSERT_STEP = insert(scheduled_step)
STEP_BY_PLACER = latest_step_where(scheduled_step.c.placer_order_number)
STEP_BY_FILLER = latest_step_where(scheduled_step.c.filler_order_number)
STEP_BY_ACCESSION = latest_step_where(scheduled_step.c.accession_number)


def schedule(connection: Connection, order: Order, patient_pk: int, config: Config) -> OrderResult:
    """A new step; studies archived before the order came (its Study Instance UID, else its
    accession number, on a patient created from the images) join the order's patient (P2)."""
    moment = datetime.now(UTC)
    values = step_values(order, patient_pk, config)
    values["study_instance_uid"] = order.study_instance_uid or generate_uid(prefix=None)
    values["scheduled_procedure_step_id"] = (
        order.scheduled_procedure_step_id or order.requested_procedure_id or order.accession_number
    )[:16]
    inserted = connection.execute(
        INSERT_STEP, {**values, "status": SCHEDULED, "created_at": moment, "updated_at": moment}
    ).inserted_primary_key
    step_pk = int(inserted[0]) if inserted else None
    changes.publish(
        connection, changes.ORDER_SCHEDULED, values["study_instance_uid"], moment,
        accession_number=values["accession_number"], scheduled_step_pk=step_pk,
    )  # fmt: skip
    ordered = OrderedStudy(
        patient_pk, values["study_instance_uid"], values["accession_number"], order.placer_order_number
    )
    linked = link_to_order(connection, ordered, moment)
    detail = f"{len(linked)} archived study(ies) joined the order's patient" if linked else ""
    return OrderResult(OrderOutcome.SCHEDULED, detail, study_instance_uid=values["study_instance_uid"])


def change(
    connection: Connection, existing: dict[str, Any], order: Order, patient_pk: int, config: Config
) -> OrderResult:
    if existing["status"] in FINISHED:
        return OrderResult(OrderOutcome.REFUSED, f"the procedure is already {existing['status'].lower()}")
    values = {key: value for key, value in step_values(order, patient_pk, config).items() if value not in ("", None)}
    if order.study_instance_uid:
        values["study_instance_uid"] = order.study_instance_uid
    connection.execute(
        update(scheduled_step)
        .where(scheduled_step.c.id == existing["id"])
        .values(**values, updated_at=datetime.now(UTC))
    )
    study_uid = values.get("study_instance_uid", existing["study_instance_uid"])
    return OrderResult(OrderOutcome.UPDATED, study_instance_uid=study_uid)


def cancel(connection: Connection, existing: dict[str, Any]) -> OrderResult:
    """A cancel request withdraws a step that has not started (HL7 CA); a started one is refused."""
    if existing["status"] != SCHEDULED:
        return OrderResult(OrderOutcome.REFUSED, f"the procedure is {existing['status'].lower()}: cannot cancel")
    set_status(connection, existing["id"], CANCELLED)
    return OrderResult(OrderOutcome.CANCELLED, study_instance_uid=existing["study_instance_uid"])


def status_change(connection: Connection, existing: dict[str, Any], order: Order) -> OrderResult:
    status = ORDER_STATUS.get(order.order_status)
    if status is None:
        return OrderResult(OrderOutcome.REFUSED, f"order status {order.order_status!r} is not handled")
    set_status(connection, existing["id"], status)
    outcome = {CANCELLED: OrderOutcome.CANCELLED, DISCONTINUED: OrderOutcome.DISCONTINUED}.get(
        status, OrderOutcome.UPDATED
    )
    return OrderResult(outcome, study_instance_uid=existing["study_instance_uid"])


def set_status(connection: Connection, step_id: int, status: str) -> None:
    connection.execute(
        update(scheduled_step).where(scheduled_step.c.id == step_id).values(status=status, updated_at=datetime.now(UTC))
    )


def step_values(order: Order, patient_pk: int, config: Config) -> dict[str, Any]:
    """The columns an order sets (empty strings where the order says nothing)."""
    start = order.scheduled_start
    station = order.station_ae_title or config.worklist.station_for(order.modality, order.station_name)
    return {
        "patient_pk": patient_pk,
        "placer_order_number": order.placer_order_number,
        "filler_order_number": order.filler_order_number,
        "accession_number": order.accession_number[:16],
        "requested_procedure_id": (order.requested_procedure_id or order.accession_number)[:16],
        "requested_procedure_description": (order.procedure_description or order.procedure.meaning)[:64],
        "procedure_code_value": order.procedure.value,
        "procedure_code_scheme": order.procedure.scheme,
        "procedure_code_meaning": order.procedure.meaning[:64],
        "scheduled_procedure_step_description": (order.step_description or order.procedure_description)[:64],
        "modality": order.modality,
        "scheduled_station_ae_title": station[:16],
        "scheduled_station_name": order.station_name[:16],
        "scheduled_start_date": start.strftime("%Y%m%d") if start else "",
        "scheduled_start_time": start.strftime("%H%M%S") if start else "",
        "scheduled_performing_physician_name": order.performing_physician_name,
        "referring_physician_name": order.referring_physician_name,
        "requesting_physician_name": order.requesting_physician_name,
        "priority": order.priority,
        "reason": order.reason[:64],
    }
