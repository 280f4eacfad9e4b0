"""The receiver on a real SQLite index with the real worklist: values that cannot become DICOM are
answered AE with the field in ERR and nothing is stored; frames with a malformed MSH (`MSH` alone)
are answered AR; an index that cannot grow (disk full, database locked) is answered AR."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select

sys.path.insert(0, str(Path(__file__).parents[2]))

from hl7_client import ack_code, golden, segment_field

from appliance.config import development_config
from appliance.daemons.hl7 import build_receiver
from appliance.db.schema import hl7_inbox, patient, scheduled_step
from appliance.hl7.router import Receiver

ORM, OMI, A28 = golden("orm_zds_8859-15.hl7"), golden("omi_ipc_8859-1.hl7"), golden("a28_utf8.hl7")


@pytest.fixture()
def receiver(tmp_path: Path, engine: Engine) -> Receiver:
    return build_receiver(engine, development_config(tmp_path))


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(table)) or 0)


BAD_VALUES = [
    (ORM.replace(b"1.2.250.999.1.20250601.1", b"1.2.abc'x"), "ZDS^1^1^1^1"),  # UI
    (ORM.replace(b"|19790328|", b"|notadate|"), "PID^1^7"),  # DA
    (A28.replace(b"|19800115|", b"|19800230|"), "PID^1^7"),  # a day that does not exist
    (ORM.replace(b"||||MG\r", b"||||mg\r"), "OBR^1^24^1^1"),  # CS
    (ORM.replace(b"|ACC0001|RP0001", b"|ACC0001-LONGER-THAN-SH|RP0001"), "OBR^1^18^1^1"),  # SH
    (ORM.replace(b"^^^20250601093000", b"^^^20251301093000"), "ORC^1^7^1^4"),  # TM/DA of the start
    (ORM.replace(b"12345678901^MARTIN^JEAN\rORC", b"1^" + b"M" * 70 + b"^JEAN\rORC"), "PV1^1^8^1"),  # PN
    (ORM.replace(b"PAT-TROIS", b"P" * 70), "PID^1^5^1"),  # PN of the patient
    (A28.replace(b"IPP1001^", b"IPP\\E\\1001^"), "PID^1^3^1^1"),  # LO with a backslash
    (A28.replace(b"IPP1001^", b"IPP" + b"1" * 70 + b"^"), "PID^1^3^1^1"),  # LO length
    (OMI.replace(b"|CT_SALLE2", b"|CT_SALLE2_TOO_LONG"), "IPC^1^9^1^1"),  # AE
    (OMI.replace(b"1.2.250.999.1.20250603.3", b"1.2.250.999.1.20250603.03"), "IPC^1^3^1^1"),  # UI leading zero
    (OMI.replace(b"|20250603103000", b"|2025060310300"), "TQ1^1^7^1^1"),  # DTM
]


@pytest.mark.parametrize(("message", "location"), BAD_VALUES)
def test_a_value_that_cannot_become_dicom_is_answered_ae_with_its_field(
    receiver: Receiver, engine: Engine, message: bytes, location: str
) -> None:
    answer = receiver.receive(message, "test")
    assert ack_code(answer) == "AE", answer
    assert segment_field(answer, "ERR", 2) == location
    assert segment_field(answer, "ERR", 3).startswith("102^Data type error^HL70357")
    assert " / " in segment_field(answer, "ERR", 8)  # French / English
    assert count(engine, patient) == 0 and count(engine, scheduled_step) == 0
    with engine.connect() as connection:
        assert connection.scalar(select(hl7_inbox.c.status)) == "refused"


def test_before_v25_the_field_is_in_err_1_and_the_text_in_msa_3(receiver: Receiver, engine: Engine) -> None:
    message = golden("orm_no_zds_unlabelled.hl7").replace(b"|19850412|", b"|1985041|")
    answer = receiver.receive(message, "test")
    assert ack_code(answer) == "AE"
    assert segment_field(answer, "ERR", 1).startswith("PID^1^7^102&")
    assert "PID-7" in segment_field(answer, "MSA", 3)
    assert count(engine, patient) == 0


def test_the_golden_messages_still_pass(receiver: Receiver, engine: Engine) -> None:
    for message in (ORM, OMI, A28, golden("orm_no_zds_unlabelled.hl7")):
        assert ack_code(receiver.receive(message, "test")) == "AA"
    assert count(engine, scheduled_step) == 3


@pytest.mark.parametrize(
    "frame", [b"MSH", b"MSH\r", b"MSH\rPID|1||X\r", b"MSH\nPID|1", b"MSH|", b"MSH1|^~\\&|", b"MSH \rEVN|", b"\x00MSH\r"]
)
def test_a_malformed_msh_is_answered_ar(receiver: Receiver, frame: bytes, caplog: pytest.LogCaptureFixture) -> None:
    answer = receiver.receive(frame, "test")
    assert ack_code(answer) == "AR"
    assert segment_field(answer, "ERR", 3).startswith("100^")
    assert "Traceback" not in caplog.text and "internal error" not in caplog.text
    assert "answered AR" in caplog.text


def limit_pages_to_what_is_there(engine: Engine) -> None:
    """Every new connection may not grow the file: SQLite's own "database or disk is full"."""
    with engine.connect() as connection:
        pages = int(connection.exec_driver_sql("PRAGMA page_count").scalar() or 0)
    engine.dispose()

    def limit(connection: sqlite3.Connection, _record: object) -> None:
        connection.execute(f"PRAGMA max_page_count={pages}")

    event.listen(engine, "connect", limit)


def test_a_full_index_is_answered_ar_so_that_the_ris_sends_again(receiver: Receiver, engine: Engine) -> None:
    big = A28.replace(b"EVN||", b"NTE|1||" + b"x" * 200_000 + b"\rEVN||")  # more than the free pages hold
    limit_pages_to_what_is_there(engine)
    answer = receiver.receive(big, "test")
    assert ack_code(answer) == "AR"
    assert segment_field(answer, "ERR", 3).startswith("207^")
    assert "send again later" in segment_field(answer, "ERR", 8)
    assert count(engine, patient) == 0 and count(engine, hl7_inbox) == 0


def test_a_locked_index_is_answered_ar_206(receiver: Receiver, engine: Engine, tmp_path: Path) -> None:
    engine.dispose()
    event.listen(engine, "connect", lambda connection, _record: connection.execute("PRAGMA busy_timeout=200"))
    holder = sqlite3.connect(tmp_path / "index.sqlite", isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        answer = receiver.receive(A28, "test")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert ack_code(answer) == "AR"
    assert segment_field(answer, "ERR", 3).startswith("206^Application record locked")
    assert ack_code(receiver.receive(A28, "test")) == "AA"  # sent again once the lock is gone
