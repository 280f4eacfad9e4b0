"""Tell the RIS (W5): workflow changes (MPPS states, images available) become HL7 messages in the
outbox, on the channel `hl7-ris`, and are sent in order, one at a time, over MLLP. A message leaves
the queue on AA (or CA); no answer is retried with exponential backoff for as long as it takes; an
AE or AR is retried a few times, then the message is parked so that it does not block the others.

Messages: ORM^O01 (ORC-1 SC, status in ORC-5), OMG^O19 (same content), or ORU^R01 (OBR-25 status,
an OBX with the Study Instance UID), in the RIS's version and character set.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, select

from appliance.archive import changes
from appliance.config import Config, Settings
from appliance.db.schema import patient, scheduled_step
from appliance.hl7 import er7, mllp
from appliance.hl7.acks import new_control_id, timestamp
from appliance.hl7.er7 import escape
from appliance.outbox import Attempt, Message, Outcome, enqueue

LOGGER = logging.getLogger(__name__)

CONSUMER = "hl7-outbound"
CHANNEL = "hl7-ris"
SUCCESS_CODES = {"AA", "CA"}
# The workflow change to ORC-5 (HL7 table 0038) and OBR-25 (table 0123).
ORDER_STATUS = {
    changes.PROCEDURE_IN_PROGRESS: "IP",
    changes.PROCEDURE_COMPLETED: "CM",
    changes.PROCEDURE_DISCONTINUED: "DC",
    changes.IMAGES_AVAILABLE: "A",
}
RESULT_STATUS = {
    changes.PROCEDURE_IN_PROGRESS: "I",
    changes.PROCEDURE_COMPLETED: "P",
    changes.PROCEDURE_DISCONTINUED: "X",
    changes.IMAGES_AVAILABLE: "I",
}
MESSAGE_TYPES = {"orm": "ORM^O01", "omg": "OMG^O19^OMG_O19", "oru": "ORU^R01^ORU_R01"}


@dataclass(frozen=True)
class Event:
    """A workflow change with the scheduled step and patient it is about (empty when unknown)."""

    id: int
    kind: str
    study_instance_uid: str
    accession_number: str
    step: dict[str, Any]
    patient: dict[str, Any]


def enqueue_events(engine: Engine, config: Config, batch: int = 100) -> int:
    """Turn the workflow changes after our cursor into outbox messages, in one transaction with the
    cursor's advance (a change makes exactly one message)."""
    with engine.begin() as connection:
        cursor = changes.cursor_of(connection, CONSUMER)
        found = changes.read_after(connection, cursor, changes.WORKFLOW_KINDS, batch)
        for change in found:
            event = event_of(connection, change)
            control_id = new_control_id()
            message_type = MESSAGE_TYPES[config.hl7.ris.message]
            text = build_message(event, config, control_id)
            payload = er7.encode_text(text, er7.CHARSETS[config.hl7.ris.charset])
            summary = f"{message_type} {control_id} ({event.kind})"
            enqueue(connection, CHANNEL, f"change:{change.id}", message_type[:40], payload, summary)
        if found:
            changes.advance(connection, CONSUMER, found[-1].id)
    return len(found)


def event_of(connection: Connection, change: changes.Change) -> Event:
    step = connection.execute(select(scheduled_step).where(scheduled_step.c.id == change.scheduled_step_pk)).first()
    step_values = dict(step._mapping) if step else {}
    person = connection.execute(select(patient).where(patient.c.id == step_values.get("patient_pk"))).first()
    return Event(
        change.id,
        change.kind,
        change.study_instance_uid,
        change.accession_number,
        step_values,
        dict(person._mapping) if person else {},
    )


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


@dataclass
class RisSender:
    """The outbox sender of the `hl7-ris` channel: one message over MLLP, judged by its ACK."""

    settings: Settings

    def send(self, message: Message) -> Attempt:
        ris = self.settings.current.hl7.ris
        if not ris.enabled:
            return Attempt(Outcome.NO_ANSWER, "no RIS configured (hl7.ris.host)")
        try:
            answer = mllp.send_and_receive(ris.host, ris.port, message.payload, timeout=30)
            acknowledgement = er7.parse(answer).segment("MSA")
        except (OSError, mllp.ConnectionClosed) as failure:
            return Attempt(Outcome.NO_ANSWER, f"{ris.host}:{ris.port}: {failure or type(failure).__name__}")
        except er7.MessageError as failure:
            return Attempt(Outcome.REFUSED, f"unreadable answer: {failure}")
        code = acknowledgement.get(1) if acknowledgement is not None else ""
        if code in SUCCESS_CODES:
            return Attempt(Outcome.DELIVERED)
        reason = acknowledgement.get(3) if acknowledgement is not None else ""
        return Attempt(Outcome.REFUSED, f"the RIS answered {code or 'without MSA'} {reason}".strip())
