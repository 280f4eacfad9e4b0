"""Messages for the RIS: each kind in the configured version and character set, readable by hl7apy;
delivery needs AA (or CA) and backs off exponentially otherwise."""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message
from sqlalchemy import Engine, select

sys.path.insert(0, str(Path(__file__).parents[2]))

from hl7_client import FakeRis
from servers import free_port

from appliance.config import Config, Settings, development_config
from appliance.db.schema import outbox
from appliance.hl7 import er7
from appliance.hl7.outbound import CHANNEL, Event, RisSender, build_message
from appliance.outbox import PARKED, RetryPolicy, enqueue, messages, retry
from appliance.outbox.courier import Courier

STEP = {
    "placer_order_number": "PLC0001",
    "filler_order_number": "ACC0001",
    "accession_number": "ACC0001",
    "requested_procedure_id": "RP0001",
    "scheduled_procedure_step_id": "SPS0001",
    "procedure_code_value": "MAMMO",
    "procedure_code_meaning": "Mammographie bilatérale Œ",
    "procedure_code_scheme": "LOCAL",
    "modality": "MG",
}
PERSON = {
    "patient_id": "IPP123",
    "issuer_of_patient_id": "RIS-CAB-X",
    "patient_name": "ŒUVRARD^Chloé",
    "patient_birth_date": "19800115",
    "patient_sex": "F",
}


def config_for(tmp_path: Path, **ris: object) -> Config:
    config = development_config(tmp_path)
    link = replace(config.hl7.ris, **ris)  # type: ignore[arg-type]
    return replace(config, hl7=replace(config.hl7, ris=link))


@pytest.mark.parametrize(
    ("kind", "message", "charset", "status_field", "status"),
    [
        ("procedure-in-progress", "orm", "8859/15", ("ORC", 5), "IP"),
        ("procedure-completed", "omg", "UNICODE UTF-8", ("ORC", 5), "CM"),
        ("images-available", "oru", "8859/1", ("OBR", 25), "I"),
    ],
)
def test_messages_in_the_ris_version_and_charset(
    tmp_path: Path, kind: str, message: str, charset: str, status_field: tuple[str, int], status: str
) -> None:
    config = config_for(tmp_path, message=message, charset=charset, version="2.5")
    event = Event(1, kind, "1.2.250.999.1", "ACC0001", STEP, PERSON)
    text = build_message(event, config, "CTRL1")
    data = er7.encode_text(text, er7.CHARSETS[charset])
    parsed = er7.parse(data)
    segment = parsed.segment(status_field[0])
    assert segment is not None and segment.get(status_field[1]) == status
    assert parsed.header.get(18) == charset and parsed.version == "2.5" and parsed.control_id == "CTRL1"
    pid = parsed.segment("PID")
    assert pid is not None and pid.get(5, 1) == ("OEUVRARD" if charset == "8859/1" else "ŒUVRARD")
    obr = parsed.segment("OBR")
    assert obr is not None and obr.get(18) == "ACC0001" and obr.get(24) == "MG"
    reference = parse_message(text, find_groups=False, validation_level=VALIDATION_LEVEL.TOLERANT)
    assert reference.msh.msh_10.to_er7() == "CTRL1"


@pytest.mark.parametrize("version", ["2.3.1", "2.4", "2.5.1"])
def test_msh_12_is_the_ris_version(tmp_path: Path, version: str) -> None:
    config = config_for(tmp_path, message="orm", charset="8859/15", version=version)
    text = build_message(Event(1, "procedure-completed", "1.2.250.999.1", "ACC0001", STEP, PERSON), config, "CTRL2")
    parsed = er7.parse(er7.encode_text(text, "iso-8859-15"))
    assert parsed.version == version and parsed.header.raw(9) == "ORM^O01"
    assert [segment.name for segment in parsed.segments] == ["MSH", "PID", "ORC", "OBR", "ZDS"]
    zds = parsed.segment("ZDS")
    assert zds is not None and zds.raw(1) == "1.2.250.999.1^^Application^DICOM"
    obr = parsed.segment("OBR")
    assert obr is not None and obr.get(4, 2) == "Mammographie bilatérale Œ"


def queue(engine: Engine, control_id: str) -> None:
    message = f"MSH|^~\\&|PACS||RIS||20250101||ORM^O01|{control_id}|P|2.5\r".encode()
    with engine.begin() as connection:
        enqueue(connection, CHANNEL, f"test:{control_id}", "ORM^O01", message, f"ORM^O01 {control_id}")


def statuses(engine: Engine) -> list[tuple[str, str, int]]:
    with engine.connect() as connection:
        rows = connection.execute(select(outbox).order_by(outbox.c.id))
        return [(row.summary, row.status, row.attempts) for row in rows]


def courier(tmp_path: Path, engine: Engine, port: int) -> Courier:
    settings = Settings(lambda: config_for(tmp_path, host="127.0.0.1", port=port, retry_initial_seconds=10))
    policy = RetryPolicy(10, 60, refusals_before_parking=2)
    return Courier(engine, {CHANNEL: RisSender(settings).send}, lambda _channel: policy)


def test_no_answer_backs_off_and_an_aa_dequeues(tmp_path: Path, engine: Engine) -> None:
    port = free_port()
    sender = courier(tmp_path, engine, port)
    queue(engine, "C1")
    assert sender.deliver_next() == 1  # nobody listening: attempted, kept
    assert statuses(engine) == [("ORM^O01 C1", "pending", 1)]
    assert sender.deliver_next() == 0  # not due yet: nothing attempted
    with engine.begin() as connection:
        connection.execute(outbox.update().values(next_attempt_at=datetime.now(UTC)))
    ris = FakeRis(port).start()
    try:
        assert sender.deliver_next() == 1
    finally:
        ris.stop()
    assert statuses(engine) == [("ORM^O01 C1", "delivered", 2)]
    assert len(ris.received) == 1


def test_a_message_refused_twice_is_parked_and_the_next_goes_out(tmp_path: Path, engine: Engine) -> None:
    port = free_port()
    sender = courier(tmp_path, engine, port)
    queue(engine, "BAD")
    queue(engine, "GOOD")
    ris = FakeRis(port, refuse=frozenset({"BAD"})).start()
    try:
        assert sender.deliver_next() == 1  # BAD refused once: retried later, GOOD waits behind it
        assert statuses(engine) == [("ORM^O01 BAD", "pending", 1), ("ORM^O01 GOOD", "pending", 0)]
        with engine.begin() as connection:
            connection.execute(outbox.update().values(next_attempt_at=datetime.now(UTC)))
        assert sender.deliver_next() == 1  # refused again: parked
        assert sender.deliver_next() == 1  # GOOD delivered
    finally:
        ris.stop()
    assert statuses(engine) == [("ORM^O01 BAD", "parked", 2), ("ORM^O01 GOOD", "delivered", 1)]
    parked = messages(engine, PARKED)
    assert [message.summary for message in parked] == ["ORM^O01 BAD"] and "AE" in parked[0].last_error
    assert retry(engine, parked[0].id) and statuses(engine)[0][1] == "pending"
