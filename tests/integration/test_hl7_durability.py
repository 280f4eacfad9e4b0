"""Crash safety of `appliance-hl7` (kill -9 after an AA; messages stored but not applied) and the
outbound queue to a test MLLP server playing the RIS (queued while it is down, delivered in order)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from hl7_client import FakeRis, MllpClient, ack_code, golden, segment_field
from servers import Daemon, archive_config, free_port, wait_for, write_config
from sqlalchemy import Engine, create_engine, insert, select

from appliance.archive import changes
from appliance.db.schema import hl7_inbox, outbox, patient, scheduled_step


def start(tmp_path: Path, **hl7: object) -> Daemon:
    config = archive_config(tmp_path / "data", free_port(), hl7={"bind_address": "127.0.0.1", "port": 0, **hl7})
    config_path = write_config(tmp_path / "appliance.yaml", config)
    return Daemon("appliance.daemons.hl7", config_path, tmp_path / "hl7.log").start()


def index_of(tmp_path: Path) -> Engine:
    return create_engine(f"sqlite:///{tmp_path / 'data' / 'index' / 'appliance.sqlite'}")


def patient_ids(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return sorted(connection.scalars(select(patient.c.patient_id)))


def test_kill_9_after_aa_loses_nothing_and_stored_messages_are_applied_at_restart(tmp_path: Path) -> None:
    daemon = start(tmp_path)
    with MllpClient(daemon.port) as client:
        assert ack_code(client.send(golden("a28_utf8.hl7"))) == "AA"
    daemon.kill()
    engine = index_of(tmp_path)
    # A message stored but not applied when the process died (as an older version could leave it).
    with engine.begin() as connection:
        connection.execute(
            insert(hl7_inbox).values(
                sender="RIS|CAB-X",
                control_id="A28-0002",
                message_type="ADT^A28^ADT_A05",
                message=golden("a28_8859-1.hl7"),
                status="received",
                received_at=datetime.now(UTC),
            )
        )
    daemon = start(tmp_path)
    try:
        assert patient_ids(engine) == ["IPP1001", "IPP1002"]
        with MllpClient(daemon.port) as client:
            assert ack_code(client.send(golden("a28_utf8.hl7"))) == "AA"  # the RIS resends: same answer
            assert ack_code(client.send(golden("a28_8859-1.hl7"))) == "AA"
        assert patient_ids(engine) == ["IPP1001", "IPP1002"]
    finally:
        daemon.stop()
        engine.dispose()


def test_outbound_messages_wait_for_the_ris_and_arrive_in_order(tmp_path: Path) -> None:
    ris_port = free_port()
    ris = {"host": "127.0.0.1", "port": ris_port, "retry_initial_seconds": 1, "retry_maximum_seconds": 2}
    daemon = start(tmp_path, ris=ris)
    engine = index_of(tmp_path)
    fake_ris = FakeRis(ris_port)
    try:
        with MllpClient(daemon.port) as client:
            assert ack_code(client.send(golden("orm_zds_8859-15.hl7"))) == "AA"
        with engine.begin() as connection:
            step = connection.execute(select(scheduled_step.c.id, scheduled_step.c.study_instance_uid)).one()
            for kind in ["procedure-in-progress", "procedure-completed", "images-available"]:
                changes.publish(
                    connection,
                    kind,
                    step.study_instance_uid,
                    datetime.now(UTC),
                    accession_number="ACC0001",
                    scheduled_step_pk=step.id,
                )

        def attempted() -> bool:
            with engine.connect() as connection:
                return bool(connection.scalar(select(outbox.c.attempts).order_by(outbox.c.id).limit(1)))

        wait_for(attempted, "a first failed delivery while the RIS is down")
        fake_ris.start()
        wait_for(lambda: len(fake_ris.received) >= 3, "three messages at the RIS")
        statuses = [segment_field(message, "ORC", 5) for message in fake_ris.received]
        assert statuses == ["IP", "CM", "A"]
        assert all(segment_field(message, "MSH", 18) == "8859/15" for message in fake_ris.received)
        assert all(segment_field(message, "OBR", 18) == "ACC0001" for message in fake_ris.received)

        def statuses_in_outbox() -> set[str]:
            with engine.connect() as connection:
                return set(connection.scalars(select(outbox.c.status)))

        # The RIS has the third message before its acknowledgement reaches the daemon and is recorded.
        wait_for(lambda: statuses_in_outbox() == {"delivered"}, "every message recorded as delivered")
    finally:
        fake_ris.stop()
        daemon.stop()
        engine.dispose()
