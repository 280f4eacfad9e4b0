"""Tell the RIS (W5): workflow changes (MPPS states, images available) become HL7 messages in the
outbox, on the channel `hl7-ris`, and are sent in order, one at a time, over MLLP. A message leaves
the queue on AA (or CA); no answer is retried with exponential backoff for as long as it takes; an
AE or AR is retried a few times, then the message is parked so that it does not block the others.

Messages: ORM^O01 (ORC-1 SC, status in ORC-5), OMG^O19 (same content), or ORU^R01 (OBR-25 status,
an OBX with the Study Instance UID), in the RIS's version and character set, built on hl7apy's v2.5
model (`writer`).
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
from appliance.hl7.writer import Header, SegmentValues, components, new_control_id, render, text
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
STRUCTURES = {"orm": "ORM_O01", "omg": "OMG_O19", "oru": "ORU_R01"}  # hl7apy v2.5 message structures
PRODUCTION = "P"  # MSH-11, HL7 table 0103
STATUS_CHANGED = "SC"  # ORC-1, HL7 table 0119: status changed
PROCEDURE_CODE = ("procedure_code_value", "procedure_code_meaning", "procedure_code_scheme")
STUDY_OBSERVATION = "113014^Study^DCM"  # OBX-3: DICOM code 113014 "Study"
SEX = {"M": "M", "F": "F", "O": "U"}  # DICOM (0010,0040) to HL7 table 0001


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
    """The message for one event (ER7 text), in the RIS's version; MSH-18 names its character set."""
    ris = config.hl7.ris
    header = Header(
        sending_application=text(config.hl7.application),
        sending_facility=text(config.hl7.facility),
        receiving_application=text(ris.application),
        receiving_facility=text(ris.facility),
        message_type=MESSAGE_TYPES[ris.message],
        control_id=text(control_id),
        processing_id=PRODUCTION,
        version=text(ris.version),
        charset_label=text(ris.charset),
    )
    return render(STRUCTURES[ris.message], header, [pid_segment(event.patient), *order_segments(event, ris.message)])


def order_segments(event: Event, kind: str) -> list[SegmentValues]:
    """ORM/OMG: ORC (status in ORC-5), OBR, ZDS (Study Instance UID); ORU: OBR (OBR-25) and an OBX."""
    step = event.step
    placer, filler = text(str(step.get("placer_order_number", ""))), text(str(step.get("filler_order_number", "")))
    obr = {
        1: "1",
        2: placer,
        3: filler,
        4: components(*(str(step.get(key, "")) for key in PROCEDURE_CODE)),
        18: text(event.accession_number or str(step.get("accession_number", ""))),
        19: text(str(step.get("requested_procedure_id", ""))),
        20: text(str(step.get("scheduled_procedure_step_id", ""))),
        24: text(str(step.get("modality", ""))),
    }
    study = text(event.study_instance_uid)
    if kind == "oru":
        status = RESULT_STATUS.get(event.kind, "I")
        observation = {1: "1", 2: "ST", 3: STUDY_OBSERVATION, 5: study, 11: status}
        return [SegmentValues("OBR", {**obr, 25: status}), SegmentValues("OBX", observation)]
    order = {1: STATUS_CHANGED, 2: placer, 3: filler, 5: ORDER_STATUS.get(event.kind, "IP")}
    study_reference = f"{study}^^Application^DICOM"  # ZDS-1 (IHE SWF): RP type, Study Instance UID
    return [SegmentValues("ORC", order), SegmentValues("OBR", obr), SegmentValues("ZDS", {1: study_reference})]


def pid_segment(person: dict[str, Any]) -> SegmentValues:
    """PID: the IPP (CX-5 `PI`), name `FAMILY^GIVEN`, birth date and sex of the step's patient."""
    family, _, given = str(person.get("patient_name", "")).partition("^")
    patient_id, issuer = str(person.get("patient_id", "")), str(person.get("issuer_of_patient_id", ""))
    fields = {
        1: "1",
        3: components(patient_id, "", "", issuer, "PI"),
        5: components(family, given.split("^")[0]),
        7: text(str(person.get("patient_birth_date", ""))),
        8: SEX.get(str(person.get("patient_sex", "")), ""),
    }
    return SegmentValues("PID", fields)


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
