"""The inbox as people read it, filled by the real HL7 receiver: pages newest first, filters, the
ACK code, and one message with its bytes."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

sys.path.insert(0, str(Path(__file__).parents[2]))

from hl7_client import golden, replaced

from appliance import inbox
from appliance.config import development_config
from appliance.daemons.hl7 import build_receiver


def receive_all(engine: Engine, tmp_path: Path) -> None:
    receiver = build_receiver(engine, development_config(tmp_path))
    receiver.receive(golden("a28_utf8.hl7"), "test")
    receiver.receive(golden("a40_merge.hl7"), "test")
    receiver.receive(replaced(golden("a28_utf8.hl7"), **{"A28-0001": "A28-0002", "2.5^FRA": "9.9^FRA"}), "test")
    receiver.receive(golden("a08_update_8859-15.hl7"), "test")


def test_pages_filters_and_acknowledgement_codes(engine: Engine, tmp_path: Path) -> None:
    receive_all(engine, tmp_path)
    everything = inbox.listing(engine, inbox.Selection())
    assert [row.message_type for row in everything] == ["ADT^A08^ADT_A01", "ADT^A40^ADT_A39", "ADT^A28^ADT_A05"]
    assert [row.acknowledgement_code for row in everything] == ["AA", "AA", "AA"]
    assert all(row.message == b"" and row.acknowledgement == b"" for row in everything)
    first = inbox.listing(engine, inbox.Selection(), limit=2)
    rest = inbox.listing(engine, inbox.Selection(), before_id=first[-1].id, limit=2)
    assert [row.id for row in first + rest] == [row.id for row in everything]
    assert [row.control_id for row in inbox.listing(engine, inbox.Selection(message_type="ADT^A4"))] == ["A40-0001"]
    assert inbox.listing(engine, inbox.Selection(status=inbox.REFUSED)) == []
    now = datetime.now(UTC)
    assert len(inbox.listing(engine, inbox.Selection(since=now - timedelta(minutes=5), until=now + timedelta(1)))) == 3
    assert inbox.listing(engine, inbox.Selection(until=now - timedelta(minutes=5))) == []


def test_one_message_with_its_bytes_and_ack(engine: Engine, tmp_path: Path) -> None:
    receive_all(engine, tmp_path)
    (row,) = inbox.listing(engine, inbox.Selection(message_type="ADT^A28"))
    found = inbox.message(engine, row.id)
    assert found is not None and found.message == golden("a28_utf8.hl7")
    assert found.acknowledgement.startswith(b"MSH|") and found.acknowledgement_code == "AA"
    assert inbox.message(engine, 999) is None


def test_acknowledgement_code_reads_msa_1_with_any_field_separator() -> None:
    assert inbox.acknowledgement_code(b"MSH#^~\\&#PACS\rMSA#AE#X1\r") == "AE"
    assert inbox.acknowledgement_code(b"") == "" and inbox.acknowledgement_code(b"garbage") == ""
