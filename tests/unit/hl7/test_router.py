"""The receiver on a real SQLite index, with a stand-in for the worklist's apply_order: ACK codes,
durable inbox, duplicates, nothing half-applied, recovery of stored messages, A11 (cancel admit)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, func, insert, select

sys.path.insert(0, str(Path(__file__).parents[2]))

from hl7_client import DATA, ack_code, golden, replaced, segment_field

from appliance.config import Config, development_config
from appliance.daemons.hl7 import build_receiver
from appliance.db.schema import hl7_inbox, identity_change, patient, patient_identifier, patient_identity
from appliance.hl7.router import Receiver
from appliance.monitor.dicom import probe_message
from appliance.worklist.orders import Order, OrderOutcome, OrderResult


class StandInWorklist:
    """Records the orders it is given; refuses the order numbers listed in `refuse`."""

    def __init__(self) -> None:
        self.orders: list[tuple[Order, int]] = []
        self.refuse: set[str] = set()

    def apply_order(self, _connection: Connection, order: Order, patient_pk: int, _config: Config) -> OrderResult:
        if order.placer_order_number in self.refuse:
            return OrderResult(OrderOutcome.UNKNOWN_ORDER, "no such order")
        self.orders.append((order, patient_pk))
        return OrderResult(OrderOutcome.SCHEDULED)


@pytest.fixture()
def worklist() -> StandInWorklist:
    return StandInWorklist()


@pytest.fixture()
def receiver(tmp_path: Path, engine: Engine, worklist: StandInWorklist) -> Receiver:
    config = development_config(tmp_path)
    return build_receiver(engine, config, worklist.apply_order)


def count(engine: Engine, table: object) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(table)) or 0)  # type: ignore[arg-type]


def test_every_golden_message_is_accepted(receiver: Receiver, worklist: StandInWorklist) -> None:
    for name in sorted(DATA.glob("*.hl7")):
        answer = receiver.receive(name.read_bytes(), "test")
        assert ack_code(answer) == "AA", (name.name, answer)
    assert len(worklist.orders) == 3


def test_duplicate_gets_the_same_ack_and_is_applied_once(
    receiver: Receiver, engine: Engine, worklist: StandInWorklist
) -> None:
    message = golden("orm_zds_8859-15.hl7")
    first, second = receiver.receive(message, "test"), receiver.receive(message, "test")
    assert first == second and ack_code(first) == "AA"
    assert len(worklist.orders) == 1
    assert count(engine, hl7_inbox) == 1


def test_refused_order_leaves_no_patient_behind(receiver: Receiver, engine: Engine, worklist: StandInWorklist) -> None:
    worklist.refuse.add("PLC0001")
    answer = receiver.receive(golden("orm_zds_8859-15.hl7"), "test")
    assert ack_code(answer) == "AE"
    assert segment_field(answer, "ERR", 3).startswith("204^")
    assert count(engine, patient) == 0
    with engine.connect() as connection:
        assert connection.execute(select(hl7_inbox.c.status)).scalar() == "refused"


@pytest.mark.parametrize(
    ("message", "code", "error"),
    [
        (replaced(golden("a28_utf8.hl7"), **{"ADT^A28^ADT_A05": "ADT^Z99"}), "AR", "201"),
        (replaced(golden("a28_utf8.hl7"), **{"ADT^A28^ADT_A05": "XYZ^A01"}), "AR", "200"),
        (replaced(golden("a28_utf8.hl7"), **{"2.5^FRA^2.11": "2.7"}), "AR", "203"),
        (golden("a28_utf8.hl7").replace(b"IPP1001^^^RIS-CAB-X^PI~", b""), "AE", "101"),
        (b"PID|1||X\r", "AR", "100"),
    ],
)
def test_wrong_messages_are_answered(receiver: Receiver, message: bytes, code: str, error: str) -> None:
    answer = receiver.receive(message, "test")
    assert ack_code(answer) == code
    assert segment_field(answer, "ERR", 3).split("^")[0] == error


def test_test_ins_is_refused_in_production(tmp_path: Path, engine: Engine, worklist: StandInWorklist) -> None:
    document_config = development_config(tmp_path)
    production = type(document_config.hl7)(**{**document_config.hl7.__dict__, "refuse_test_ins": True})
    config = type(document_config)(**{**document_config.__dict__, "hl7": production})
    receiver = build_receiver(engine, config, worklist.apply_order)
    message = golden("a28_utf8.hl7").replace(b"1.2.250.1.213.1.4.8", b"1.2.250.1.213.1.4.10")
    answer = receiver.receive(message, "test")
    assert ack_code(answer) == "AE"
    assert count(engine, patient) == 0


def test_stored_but_unapplied_messages_are_applied_on_recovery(receiver: Receiver, engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(hl7_inbox).values(
                sender="RIS|CAB-X",
                control_id="A28-0001",
                message_type="ADT^A28^ADT_A05",
                message=golden("a28_utf8.hl7"),
                status="received",
                received_at=datetime.now(UTC),
            )
        )
    assert receiver.recover() == 1
    assert count(engine, patient) == 1
    answer = receiver.receive(golden("a28_utf8.hl7"), "test")
    assert ack_code(answer) == "AA"
    assert count(engine, hl7_inbox) == 1


A11 = "a11_cancel_admission_utf8.hl7"


def test_a11_records_the_cancellation_and_leaves_the_identity_as_it_is(receiver: Receiver, engine: Engine) -> None:
    assert ack_code(receiver.receive(golden("a01_admission_8859-15.hl7"), "test")) == "AA"
    with engine.connect() as connection:
        before = connection.execute(select(patient)).one()
    answer = receiver.receive(golden(A11), "test")
    assert ack_code(answer) == "AA" and segment_field(answer, "MSH", 9) == "ACK^A11^ACK"
    with engine.connect() as connection:
        assert connection.execute(select(patient)).one() == before  # updated_at included
        action, patient_pk, event = connection.execute(
            select(identity_change.c.action, identity_change.c.patient_pk, identity_change.c.source_event).where(
                identity_change.c.source_control_id == "A11-0001"
            )
        ).one()
    assert (action, patient_pk, event) == ("admission-cancelled", before.id, "ADT^A11")


def test_a11_does_not_adopt_a_patient_created_from_images(receiver: Receiver, engine: Engine) -> None:
    moment = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(insert(patient).values(patient_id="IPP1101", created_at=moment, updated_at=moment))
    assert ack_code(receiver.receive(golden(A11), "test")) == "AA"
    with engine.connect() as connection:
        assert connection.execute(select(patient.c.issuer_of_patient_id)).scalar() == ""
        assert connection.execute(select(identity_change.c.patient_pk)).scalar() is not None


def test_a11_without_an_ipp_is_refused(receiver: Receiver, engine: Engine) -> None:
    answer = receiver.receive(golden(A11).replace(b"IPP1101^^^RIS-CAB-X^PI", b""), "test")
    assert ack_code(answer) == "AE"
    assert segment_field(answer, "ERR", 3).startswith("101^") and segment_field(answer, "ERR", 2) == "PID^1^3"
    assert count(engine, identity_change) == 0


def test_a11_reads_only_the_ipp_so_a_test_ins_is_not_refused(
    tmp_path: Path, engine: Engine, worklist: StandInWorklist
) -> None:
    document_config = development_config(tmp_path)
    production = type(document_config.hl7)(**{**document_config.hl7.__dict__, "refuse_test_ins": True})
    config = type(document_config)(**{**document_config.__dict__, "hl7": production})
    receiver = build_receiver(engine, config, worklist.apply_order)
    test_ins = b"IPP1101^^^RIS-CAB-X^PI~190026912300010^^^ASIP-SANTE-INS-NIR-TEST&1.2.250.1.213.1.4.10&ISO^INS"
    answer = receiver.receive(golden(A11).replace(b"IPP1101^^^RIS-CAB-X^PI", test_ins), "test")
    assert ack_code(answer) == "AA"
    assert count(engine, patient) == 0 and count(engine, identity_change) == 1


def test_an_order_without_identity_status_keeps_a_qualified_identity(receiver: Receiver, engine: Engine) -> None:
    """The RIS's order repeats the patient without PID-32: the identity feed's qualified identity and
    its INS stay (an order is not an identity update, IHE PAM)."""
    assert ack_code(receiver.receive(golden("a28_utf8.hl7"), "test")) == "AA"  # VALI, INS, IPP1001
    order = replaced(golden("orm_no_zds_unlabelled.hl7"), IPP124="IPP1001", MSG0002="ORM-IPP1001")
    assert ack_code(receiver.receive(order, "test")) == "AA"
    with engine.connect() as connection:
        status = connection.scalar(select(patient_identity.c.identity_status))
        identifiers = connection.scalars(select(patient_identifier.c.identifier)).all()
    assert status == "VALI"
    assert "180017512345678" in identifiers


def test_the_monitor_s_network_management_query_gets_an_nmr_and_leaves_nothing(
    tmp_path: Path, engine: Engine, worklist: StandInWorklist, caplog: pytest.LogCaptureFixture
) -> None:
    document_config = development_config(tmp_path)
    only_the_ris = type(document_config.hl7)(
        **{**document_config.hl7.__dict__, "accepted_sending_facilities": frozenset({"RIS-CAB-X"})}
    )
    config = type(document_config)(**{**document_config.__dict__, "hl7": only_the_ris})
    receiver = build_receiver(engine, config, worklist.apply_order)
    query = probe_message(config, "MON20261205120000", datetime(2026, 12, 5, 12, tzinfo=UTC))
    caplog.set_level("DEBUG", logger="appliance.hl7.router")
    answer = receiver.receive(query, "127.0.0.1:40000")
    assert segment_field(answer, "MSH", 9) == "NMR^N01^NMR_N01"
    assert (ack_code(answer), segment_field(answer, "MSA", 2)) == ("AA", "MON20261205120000")
    clock = datetime.strptime(segment_field(answer, "NCK", 1), "%Y%m%d%H%M%S%z")
    assert abs((clock - datetime.now(UTC)).total_seconds()) < 60
    assert count(engine, hl7_inbox) == 0
    assert [record.levelname for record in caplog.records] == ["DEBUG"]
    legacy = receiver.receive(query.replace(b"|P|2.5", b"|P|2.3.1"), "127.0.0.1:40000")
    assert (segment_field(legacy, "MSH", 9), ack_code(legacy)) == ("NMR^N01", "AA")


def test_other_network_management_events_are_refused(receiver: Receiver) -> None:
    query = replaced(golden("a28_utf8.hl7"), **{"ADT^A28^ADT_A05": "NMQ^N02"})
    answer = receiver.receive(query, "test")
    assert (ack_code(answer), segment_field(answer, "ERR", 3).split("^")[0]) == ("AR", "201")
