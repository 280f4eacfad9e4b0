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
from sqlalchemy import Engine, insert, select

sys.path.insert(0, str(Path(__file__).parents[2]))

from hl7_client import FakeRis
from servers import free_port

from appliance.config import Config, development_config
from appliance.db import create_index_engine, upgrade_schema
from appliance.hl7 import er7
from appliance.hl7.outbound import Event, build_message, deliver_next
from appliance.hl7.tables import hl7_outbox

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


@pytest.fixture()
def engine(tmp_path: Path) -> Engine:
    engine = create_index_engine(f"sqlite:///{tmp_path / 'index.sqlite'}")
    upgrade_schema(engine)
    return engine


def queue(engine: Engine, control_id: str) -> None:
    moment = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            insert(hl7_outbox).values(
                control_id=control_id,
                message_type="ORM^O01",
                message=f"MSH|^~\\&|PACS||RIS||20250101||ORM^O01|{control_id}|P|2.5\r".encode(),
                status="pending",
                next_attempt_at=moment,
                created_at=moment,
            )
        )


def test_failed_delivery_backs_off_and_success_dequeues(tmp_path: Path, engine: Engine) -> None:
    port = free_port()
    link = config_for(tmp_path, host="127.0.0.1", port=port, retry_initial_seconds=10).hl7.ris
    queue(engine, "C1")
    assert deliver_next(engine, link) is False  # nobody listening
    with engine.connect() as connection:
        row = connection.execute(select(hl7_outbox)).one()
    assert row.status == "pending" and row.attempts == 1 and row.last_error
    assert deliver_next(engine, link) is False  # not due yet: nothing attempted
    with engine.begin() as connection:
        connection.execute(hl7_outbox.update().values(next_attempt_at=datetime.now(UTC)))
    ris = FakeRis(port).start()
    try:
        assert deliver_next(engine, link) is True
    finally:
        ris.stop()
    with engine.connect() as connection:
        row = connection.execute(select(hl7_outbox)).one()
    assert row.status == "sent" and row.attempts == 2
    assert len(ris.received) == 1
