"""Audit completeness on the HL7 edge (S2): the real `appliance-hl7` daemon over MLLP records one
110112 per PDQ query with the patients given out, one 110110 per patient message (merge: both
patients), one 110111 per order message, and none for a duplicate."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hl7_client import MllpClient, ack_code, golden, replaced
from servers import Daemon, archive_config, free_port, wait_for, write_config

from appliance.audit.events import Action, AuditEvent, EventId, ObjectKind, Outcome, ParticipantKind
from appliance.audit.trail import AuditFilter, AuditTrail
from appliance.config import load_config


@pytest.fixture()
def hl7_daemon(tmp_path: Path) -> Iterator[Daemon]:
    config = archive_config(tmp_path / "data", free_port(), hl7={"bind_address": "127.0.0.1", "port": 0})
    config_path = write_config(tmp_path / "appliance.yaml", config)
    daemon = Daemon("appliance.daemons.hl7", config_path, tmp_path / "hl7.log").start()
    yield daemon
    daemon.stop()


def records(daemon: Daemon, event_id: EventId, count: int) -> list[AuditEvent]:
    """The `event_id` records once there are `count` (the daemon's writer thread appends them)."""
    trail = AuditTrail(load_config(daemon.config_path).audit.database)
    try:
        wait_for(lambda: trail.count(AuditFilter(event=event_id)) >= count, f"{count} {event_id.meaning} record(s)")
        return [record.event for record in trail.records(AuditFilter(event=event_id))]
    finally:
        trail.close()


def patient_ids(event: AuditEvent) -> list[str]:
    return [found.object_id for found in event.objects if found.kind is ObjectKind.PATIENT]


def test_pdq_is_one_query_record_naming_the_patients_given_out(hl7_daemon: Daemon) -> None:
    with MllpClient(hl7_daemon.port) as client:
        assert ack_code(client.send(golden("a31_nia_to_nir.hl7"))) == "AA"
        client.send(golden("qbp_q22.hl7"))
        client.send(golden("qbp_q22.hl7").replace(b"@PID.8^F", b"@PID.99^F"))
    found, wrong = records(hl7_daemon, EventId.QUERY, 2)
    assert (found.action, found.outcome) == (Action.EXECUTE, Outcome.SUCCESS)
    requestor = found.requestor
    assert requestor is not None
    assert (requestor.user_id, requestor.address, requestor.kind) == ("VIEWER|CAB-X", "127.0.0.1", ParticipantKind.NODE)
    (query,) = [item for item in found.objects if item.kind is ObjectKind.QUERY]
    assert query.object_id == "ITI-21" and b"@PID.5.1.1^DARK" in query.query
    assert [identifier.split("^")[0] for identifier in patient_ids(found)] == ["1900068"]
    assert wrong.outcome is Outcome.MINOR_FAILURE and patient_ids(wrong) == []


def test_identity_messages_and_orders_are_recorded_once_each(hl7_daemon: Daemon) -> None:
    with MllpClient(hl7_daemon.port) as client:
        for name in ("a28_utf8.hl7", "a08_update_8859-15.hl7", "a40_merge.hl7", "orm_zds_8859-15.hl7"):
            assert ack_code(client.send(golden(name))) == "AA", name
        assert ack_code(client.send(golden("a08_update_8859-15.hl7"))) == "AA"  # a duplicate: not again
        refused = replaced(golden("a47_ins_deletion.hl7"), **{"MRG|": "MRG|NOBODY"})
        client.send(refused)
    patients = records(hl7_daemon, EventId.PATIENT_RECORD, 4)
    assert [event.action for event in patients][:3] == [Action.CREATE, Action.UPDATE, Action.UPDATE]
    merge = patients[2]
    assert [identifier.split("^")[0] for identifier in patient_ids(merge)] == ["IPP1001", "IPP1009"]
    assert len(patients) == 4 and patients[3].outcome is Outcome.MINOR_FAILURE
    (order,) = records(hl7_daemon, EventId.PROCEDURE_RECORD, 1)
    assert order.action is Action.CREATE
    assert patient_ids(order)[0].split("^")[0] == "IPP123"
    (planned,) = [item for item in order.objects if item.kind is ObjectKind.STUDY]
    assert (planned.object_id, planned.name) == ("1.2.250.999.1.20250601.1", "ACC0001")
