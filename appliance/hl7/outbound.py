"""Tell the RIS (W5): workflow events (from MPPS and the archive) become HL7 messages in a durable
outbox, sent in order, one at a time, over MLLP; a message leaves the queue only on AA (or CA),
otherwise it is retried with exponential backoff.

Messages: ORM^O01 (ORC-1 SC, status in ORC-5), OMG^O19 (same content), or ORU^R01 (OBR-25 status,
an OBX with the Study Instance UID), in the RIS's version and character set.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from appliance.archive.tables import change_cursor, patient
from appliance.config import Config
from appliance.config.loader import RisLinkConfig
from appliance.hl7 import er7, mllp
from appliance.hl7.acks import new_control_id, timestamp
from appliance.hl7.er7 import escape
from appliance.hl7.tables import hl7_outbox
from appliance.worklist.tables import scheduled_step, workflow_event

LOGGER = logging.getLogger(__name__)

CONSUMER = "hl7-outbound"
PENDING = "pending"
SENT = "sent"
POLL_SECONDS = 1.0
SUCCESS_CODES = {"AA", "CA"}
# workflow_event.kind to ORC-5 (HL7 table 0038) and OBR-25 (table 0123).
ORDER_STATUS = {
    "procedure-in-progress": "IP",
    "procedure-completed": "CM",
    "procedure-discontinued": "DC",
    "images-available": "A",
}
RESULT_STATUS = {
    "procedure-in-progress": "I",
    "procedure-completed": "P",
    "procedure-discontinued": "X",
    "images-available": "I",
}
MESSAGE_TYPES = {"orm": "ORM^O01", "omg": "OMG^O19^OMG_O19", "oru": "ORU^R01^ORU_R01"}


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Event:
    id: int
    kind: str
    study_instance_uid: str
    accession_number: str
    step: dict[str, Any]
    patient: dict[str, Any]


class OutboundSender:
    """The background thread: enqueue new workflow events, deliver the oldest pending message."""

    def __init__(self, engine: Engine, config: Config) -> None:
        self.engine = engine
        self.config = config
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name="hl7-outbound", daemon=True)

    def start(self) -> None:
        if self.config.hl7.ris.enabled:
            self.thread.start()
        else:
            LOGGER.info("no RIS configured (hl7.ris.host): nothing is sent")

    def stop(self) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(timeout=60)

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                enqueue_events(self.engine, self.config)
                while not self.stopping.is_set() and deliver_next(self.engine, self.config.hl7.ris):
                    pass
            except Exception:  # outermost loop of the thread: log and keep going
                LOGGER.exception("outbound queue")
            self.stopping.wait(POLL_SECONDS)


def enqueue_events(engine: Engine, config: Config, batch: int = 100) -> int:
    """Turn the workflow events after our cursor into outbox messages, in the same transaction."""
    with engine.begin() as connection:
        cursor = connection.execute(
            select(change_cursor.c.last_change_id).where(change_cursor.c.consumer == CONSUMER)
        ).scalar()
        events = new_events(connection, int(cursor or 0), batch)
        for event in events:
            control_id = new_control_id()
            text = build_message(event, config, control_id)
            connection.execute(
                insert(hl7_outbox).values(
                    workflow_event_id=event.id,
                    control_id=control_id,
                    message_type=MESSAGE_TYPES[config.hl7.ris.message][:32],
                    message=er7.encode_text(text, er7.CHARSETS[config.hl7.ris.charset]),
                    status=PENDING,
                    attempts=0,
                    next_attempt_at=now(),
                    created_at=now(),
                )
            )
        if events:
            save_cursor(connection, cursor is not None, events[-1].id)
    return len(events)


def new_events(connection: Connection, cursor: int, batch: int) -> list[Event]:
    rows = connection.execute(
        select(workflow_event).where(workflow_event.c.id > cursor).order_by(workflow_event.c.id).limit(batch)
    ).all()
    events = []
    for row in rows:
        step = connection.execute(select(scheduled_step).where(scheduled_step.c.id == row.scheduled_step_pk)).first()
        step_values = dict(step._mapping) if step else {}
        person = connection.execute(select(patient).where(patient.c.id == step_values.get("patient_pk"))).first()
        events.append(
            Event(
                row.id,
                row.kind,
                row.study_instance_uid,
                row.accession_number,
                step_values,
                dict(person._mapping) if person else {},
            )
        )
    return events


def save_cursor(connection: Connection, exists: bool, last_id: int) -> None:
    if exists:
        connection.execute(
            update(change_cursor)
            .where(change_cursor.c.consumer == CONSUMER)
            .values(last_change_id=last_id, updated_at=now())
        )
    else:
        connection.execute(insert(change_cursor).values(consumer=CONSUMER, last_change_id=last_id, updated_at=now()))


def build_message(event: Event, config: Config, control_id: str) -> str:
    """The message for one event, in the RIS's version and character set (MSH-18)."""
    ris = config.hl7.ris
    msh = ["MSH", "^~\\&", escape(config.hl7.application), escape(config.hl7.facility), escape(ris.application)]
    msh += [escape(ris.facility), timestamp(), "", MESSAGE_TYPES[ris.message], control_id, "P", ris.version]
    msh += ["", "", "", "", "", ris.charset]
    step = event.step
    accession = escape(event.accession_number or str(step.get("accession_number", "")))
    placer, filler = escape(str(step.get("placer_order_number", ""))), escape(str(step.get("filler_order_number", "")))
    procedure = "^".join(
        escape(str(step.get(key, "")))
        for key in ("procedure_code_value", "procedure_code_meaning", "procedure_code_scheme")
    )
    segments = ["|".join(msh), pid_segment(event.patient)]
    obr = ["OBR", "1", placer, filler, procedure.rstrip("^")] + [""] * 13 + [accession]
    obr += [
        escape(str(step.get("requested_procedure_id", ""))),
        escape(str(step.get("scheduled_procedure_step_id", ""))),
    ]
    obr += ["", "", "", escape(str(step.get("modality", "")))]
    if ris.message == "oru":
        obr += [RESULT_STATUS.get(event.kind, "I")]
        segments.append("|".join(obr))
        segments.append(
            f"OBX|1|ST|113014^Study^DCM||{escape(event.study_instance_uid)}||||||{RESULT_STATUS.get(event.kind, 'I')}"
        )
    else:
        segments.append(f"ORC|SC|{placer}|{filler}||{ORDER_STATUS.get(event.kind, 'IP')}")
        segments.append("|".join(obr))
        segments.append(f"ZDS|{escape(event.study_instance_uid)}^^Application^DICOM")
    return "\r".join(segments) + "\r"


def pid_segment(person: dict[str, Any]) -> str:
    family, _, given = str(person.get("patient_name", "")).partition("^")
    name = f"{escape(family)}^{escape(given.split('^')[0])}"
    identifier = (
        f"{escape(str(person.get('patient_id', '')))}^^^{escape(str(person.get('issuer_of_patient_id', '')))}^PI"
    )
    sex = {"M": "M", "F": "F", "O": "U"}.get(str(person.get("patient_sex", "")), "")
    return f"PID|1||{identifier}||{name}||{person.get('patient_birth_date', '')}|{sex}"


def deliver_next(engine: Engine, ris: RisLinkConfig) -> bool:
    """Send the oldest pending message if it is due; True when it was delivered (try the next one)."""
    with engine.connect() as connection:
        row = connection.execute(
            select(hl7_outbox).where(hl7_outbox.c.status == PENDING).order_by(hl7_outbox.c.id).limit(1)
        ).first()
    if row is None or as_utc(row.next_attempt_at) > now():
        return False
    try:
        answer = mllp.send_and_receive(ris.host, ris.port, row.message, timeout=30)
        code = er7.parse(answer).segment("MSA")
        accepted = code is not None and code.get(1) in SUCCESS_CODES
        error = "" if accepted else f"answered {code.get(1) if code else 'without MSA'}"
    except (OSError, mllp.ConnectionClosed, er7.MessageError) as failure:
        accepted, error = False, str(failure) or type(failure).__name__
    record_attempt(engine, row.id, int(row.attempts), accepted, error, ris)
    if accepted:
        LOGGER.info("sent %s %s to the RIS", row.message_type, row.control_id)
    else:
        LOGGER.warning("could not send %s %s to the RIS: %s", row.message_type, row.control_id, error)
    return accepted


def record_attempt(engine: Engine, row_id: int, attempts: int, accepted: bool, error: str, ris: RisLinkConfig) -> None:
    delay = min(ris.retry_initial_seconds * 2**attempts, ris.retry_maximum_seconds)
    values: dict[str, Any] = {"attempts": attempts + 1, "last_error": error[:2000]}
    if accepted:
        values |= {"status": SENT, "sent_at": now()}
    else:
        values |= {"next_attempt_at": now() + timedelta(seconds=delay)}
    with engine.begin() as connection:
        connection.execute(update(hl7_outbox).where(hl7_outbox.c.id == row_id).values(values))


def as_utc(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back: they were stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
