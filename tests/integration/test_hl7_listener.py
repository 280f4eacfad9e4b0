"""The real `appliance-hl7` daemon on a free 127.0.0.1 port, driven over MLLP by a raw-socket client
and an hl7apy-built client: the French example messages in four character sets, the patient feed's
admissions (A01, A04, A05, A08, and A11 that cancels one), malformed frames and messages,
duplicates, merges re-pointing archived studies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hl7_client import MllpClient, ack_code, golden, replaced, segment_field
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message
from servers import Daemon, archive_config, free_port, write_config
from sqlalchemy import Engine, create_engine, func, select

from appliance.archive.attributes import InstanceAttributes
from appliance.archive.index import Index
from appliance.archive.storage import WrittenFile
from appliance.db.schema import (
    identity_change,
    patient,
    patient_identifier,
    patient_identity,
    scheduled_step,
    study,
)


def hl7_daemon_config(data: Path, **hl7: object) -> dict[str, object]:
    return archive_config(data, free_port(), hl7={"bind_address": "127.0.0.1", "port": 0, **hl7})


@pytest.fixture()
def hl7_daemon(tmp_path: Path) -> Iterator[Daemon]:
    config_path = write_config(tmp_path / "appliance.yaml", hl7_daemon_config(tmp_path / "data"))
    daemon = Daemon("appliance.daemons.hl7", config_path, tmp_path / "hl7.log").start()
    yield daemon
    daemon.stop()


@pytest.fixture()
def index(tmp_path: Path, hl7_daemon: Daemon) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'data' / 'index' / 'appliance.sqlite'}")
    yield engine
    engine.dispose()


def rows(engine: Engine, query: object) -> list[object]:
    with engine.connect() as connection:
        return list(connection.execute(query))  # type: ignore[call-overload]


def count(engine: Engine, table: object) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(table)) or 0)  # type: ignore[arg-type]


def test_french_examples_in_four_character_sets_on_one_connection(hl7_daemon: Daemon, index: Engine) -> None:
    names = ["a28_utf8.hl7", "a28_8859-1.hl7", "a28_unlabelled_latin1.hl7", "a31_nia_to_nir.hl7"]
    with MllpClient(hl7_daemon.port) as client:
        for name in names:
            answer = client.send(golden(name))
            assert ack_code(answer) == "AA", (name, answer)
            assert segment_field(answer, "MSH", 18) == segment_field(golden(name), "MSH", 18)
        ins = rows(index, select(patient_identifier.c.identifier, patient_identifier.c.universal_id))
        assert ("260058815400233", "1.2.250.1.213.1.4.8") in ins  # A31 NIA and NIR: the NIR is kept
        assert ("260058815400244", "1.2.250.1.213.1.4.9") not in ins
        assert ack_code(client.send(golden("a47_ins_deletion.hl7"))) == "AA"
        for name in ["orm_zds_8859-15.hl7", "orm_no_zds_unlabelled.hl7", "omi_ipc_8859-1.hl7"]:
            assert ack_code(client.send(golden(name))) == "AA", name
    names_stored = {row[0] for row in rows(index, select(patient.c.patient_name))}
    assert {"ŒUVRARD^Chloé", "LEFÈVRE^Hélène", "GARÇON^François", "DARK^JEANNE", "MÉNARD^Zoé"} <= names_stored
    assert ("260058815400233", "1.2.250.1.213.1.4.8") not in rows(
        index, select(patient_identifier.c.identifier, patient_identifier.c.universal_id)
    )
    steps = dict(rows(index, select(scheduled_step.c.accession_number, scheduled_step.c.study_instance_uid)))
    assert steps["ACC0001"] == "1.2.250.999.1.20250601.1"
    assert steps["ACC0002"]  # generated: the order had no ZDS
    assert steps["ACC0003"] == "1.2.250.999.1.20250603.3"


PATIENT_FEED = {
    "a01_admission_8859-15.hl7": "A01",
    "a04_outpatient_utf8.hl7": "A04",
    "a05_preadmission_8859-1.hl7": "A05",
    "a08_update_8859-15.hl7": "A08",
    "a11_cancel_admission_utf8.hl7": "A11",
}
A11 = "a11_cancel_admission_utf8.hl7"


def identities(engine: Engine) -> dict[str, tuple[object, ...]]:
    """IPP to (DICOM name, birth date, sex, given names, used name, birth place, identity status)."""
    query = select(
        patient.c.patient_id,
        patient.c.patient_name,
        patient.c.patient_birth_date,
        patient.c.patient_sex,
        patient_identity.c.given_names,
        patient_identity.c.used_name,
        patient_identity.c.birth_place,
        patient_identity.c.identity_status,
    ).join_from(patient, patient_identity, patient_identity.c.patient_pk == patient.c.id)
    with engine.connect() as connection:
        return {str(row[0]): tuple(row[1:]) for row in connection.execute(query)}


def national_identifiers(engine: Engine) -> dict[str, str]:
    """IPP to the INS kept for the patient."""
    query = select(patient.c.patient_id, patient_identifier.c.identifier).join_from(patient, patient_identifier)
    with engine.connect() as connection:
        return {str(row[0]): str(row[1]) for row in connection.execute(query)}


def test_patient_feed_admissions_and_the_cancellation_of_one(hl7_daemon: Daemon, index: Engine) -> None:
    with MllpClient(hl7_daemon.port) as client:
        for name, event in PATIENT_FEED.items():
            answer = client.send(golden(name))
            assert ack_code(answer) == "AA", (name, answer)
            assert segment_field(answer, "MSH", 9) == f"ACK^{event}^ACK"
            assert segment_field(answer, "MSA", 2) == segment_field(golden(name), "MSH", 10)
            assert segment_field(answer, "MSH", 18) == segment_field(golden(name), "MSH", 18)
        # An A11 whose PID says something else entirely, and one for a patient never admitted.
        other = golden(A11).replace("LEFRANÇOIS^Benoît".encode(), b"DURAND^Paul").replace(b"A11-0001", b"A11-0002")
        unknown = replaced(golden(A11), IPP1101="IPP1199", **{"A11-0001": "A11-0003"})
        assert ack_code(client.send(other)) == "AA" and ack_code(client.send(unknown)) == "AA"
    assert identities(index) == {
        "IPP1101": ("LEFRANÇOIS^Benoît", "19900214", "M", "Benoît Étienne", "", "69123", "VALI"),  # as A01 left it
        "IPP1102": ("ROUSSEAU^Anaïs", "19880709", "F", "Anaïs Léa", "MARTIN", "33063", "VALI"),  # A04 then A08
        "IPP1103": ("FAUCHÉ^Jérôme", "19551122", "M", "Jérôme", "", "44109", "VALI"),
    }
    assert national_identifiers(index) == {
        "IPP1101": "190026912300010",
        "IPP1102": "288073306300097",
        "IPP1103": "155114410900054",
    }
    audit = rows(index, select(identity_change.c.source_event, identity_change.c.action, identity_change.c.patient_pk))
    actions = [(event, action, patient_pk is not None) for event, action, patient_pk in audit]  # type: ignore[misc]
    assert actions == [
        ("ADT^A01", "created", True),
        ("ADT^A04", "created", True),
        ("ADT^A05", "created", True),
        ("ADT^A08", "updated", True),
        ("ADT^A11", "admission-cancelled", True),
        ("ADT^A11", "admission-cancelled", True),
        ("ADT^A11", "admission-cancelled", False),  # unknown IPP: recorded, nobody created
    ]
    cancelled = rows(index, select(identity_change.c.detail).where(identity_change.c.source_control_id == "A11-0001"))
    assert "visit V250605001" in str(cancelled[0]) and "movement MVT-250605-001 CANCEL" in str(cancelled[0])


def test_pdq_answers_with_the_archive_patients(hl7_daemon: Daemon) -> None:
    with MllpClient(hl7_daemon.port) as client:
        assert ack_code(client.send(golden("a31_nia_to_nir.hl7"))) == "AA"
        found = client.send(golden("qbp_q22.hl7"))
        missing = client.send(golden("qbp_q22.hl7").replace(b"@PID.5.1.1^DARK", b"@PID.5.1.1^NOBODY"))
        wrong = client.send(golden("qbp_q22.hl7").replace(b"@PID.8^F", b"@PID.99^F"))
    assert segment_field(found, "MSH", 9) == "RSP^K22^RSP_K21"
    assert segment_field(found, "QAK", 2) == "OK"
    assert "260058815400233^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS" in segment_field(found, "PID", 3)
    assert segment_field(missing, "QAK", 2) == "NF"
    assert segment_field(wrong, "QAK", 2) == "AE"


def test_hl7apy_built_client(hl7_daemon: Daemon, index: Engine) -> None:
    message = Message("ADT_A05", version="2.5", validation_level=VALIDATION_LEVEL.TOLERANT)
    message.msh.msh_3 = "RIS"
    message.msh.msh_4 = "CAB-X"
    message.msh.msh_9 = "ADT^A28^ADT_A05"
    message.msh.msh_10 = "HL7APY-1"
    message.msh.msh_11 = "P"
    message.msh.msh_12 = "2.5"
    message.msh.msh_18 = "UNICODE UTF-8"
    message.evn.evn_2 = "20250601080000"
    message.pid.pid_3 = "IPP7001^^^RIS-CAB-X^PI"
    message.pid.pid_5 = "HÉBERT^Noël^^^M.^^L"
    message.pid.pid_7 = "19700704"
    message.pid.pid_8 = "M"
    with MllpClient(hl7_daemon.port) as client:
        answer = client.send(message.to_er7().encode("utf-8"))
    assert ack_code(answer) == "AA"
    assert segment_field(answer, "MSA", 2) == "HL7APY-1"
    assert ("IPP7001", "HÉBERT^Noël", "M") in rows(
        index, select(patient.c.patient_id, patient.c.patient_name, patient.c.patient_sex)
    )


def test_malformed_frames_and_messages_are_answered_and_the_daemon_keeps_serving(
    hl7_daemon: Daemon, index: Engine
) -> None:
    a28 = golden("a28_utf8.hl7")
    with MllpClient(hl7_daemon.port) as client:
        assert ack_code(client.send(b"PID|1||IPP1\r")) == "AR"  # no MSH
        assert ack_code(client.send(a28.replace(b"MSH|^~\\&|", b"MSH|^~|"))) == "AR"  # wrong separators
        assert ack_code(client.send(replaced(a28, **{"ADT^A28^ADT_A05": "ADT^Z42", "A28-0001": "Z1"}))) == "AR"
        assert ack_code(client.send(replaced(a28, **{"ADT^A28^ADT_A05": "ADT^A28", "A28-0001": "Z2"}))) == "AA"
        assert ack_code(client.send(a28.replace(b"IPP1001^^^RIS-CAB-X^PI~", b""))) == "AE"  # no IPP
        client.send_raw(b"noise outside any frame\r\n")
        assert ack_code(client.send(replaced(a28, **{"A28-0001": "Z3", "IPP1001": "IPP1004"}))) == "AA"
    with MllpClient(hl7_daemon.port) as client:
        client.send_raw(b"\x0b" + a28[:60])  # truncated frame, then the peer goes away
    with MllpClient(hl7_daemon.port) as client:
        client.send_raw(b"\x0b" + b"\xff" * (1024 * 1024 + 10))
        assert ack_code(client.read()) == "AR"
        client.connection.settimeout(30)
        assert client.connection.recv(10) == b""  # closed after the answer
    with MllpClient(hl7_daemon.port) as client:
        assert ack_code(client.send(replaced(a28, **{"A28-0001": "Z4", "IPP1001": "IPP1005"}))) == "AA"
    assert sorted(row[0] for row in rows(index, select(patient.c.patient_id))) == ["IPP1001", "IPP1004", "IPP1005"]
    log = hl7_daemon.log()
    assert "closed inside a frame" in log
    assert "frame larger than" in log
    assert "ŒUVRARD" not in log and "19800115" not in log  # never patient data in the log


def test_duplicates_are_idempotent(hl7_daemon: Daemon, index: Engine) -> None:
    with MllpClient(hl7_daemon.port) as client:
        first = client.send(golden("orm_zds_8859-15.hl7"))
        second = client.send(golden("orm_zds_8859-15.hl7"))
    assert ack_code(first) == "AA" and first == second
    assert count(index, scheduled_step) == 1
    assert count(index, identity_change) == 1


def instance_for(patient_id: str, study_uid: str) -> InstanceAttributes:
    return InstanceAttributes(
        patient_id=patient_id,
        issuer_of_patient_id="",
        patient_name="OEUVRARD^CHLOE",
        patient_name_key="OEUVRARD^CHLOE",
        patient_birth_date="19800115",
        patient_sex="F",
        other_patient_ids=(),
        study_instance_uid=study_uid,
        study_date="20250602",
        study_time="",
        accession_number="ACC9",
        study_id="",
        study_description="",
        referring_physician_name="",
        referring_physician_name_key="",
        series_instance_uid=study_uid + ".1",
        modality="MG",
        series_number=1,
        series_date="",
        series_time="",
        series_description="",
        body_part_examined="",
        sop_instance_uid=study_uid + ".1.1",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.1.2",
        instance_number=1,
        rows=None,
        columns=None,
        number_of_frames=None,
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        lossy=False,
        header=b"",
    )


def test_a40_merge_repoints_archived_studies(hl7_daemon: Daemon, index: Engine) -> None:
    # Images of IPP1009 arrive before the RIS says anything about that patient.
    Index(index).add_instance(instance_for("IPP1009", "1.2.250.999.9"), WrittenFile("x/1.dcm", 10, "0" * 64), "MG1")
    with MllpClient(hl7_daemon.port) as client:
        assert ack_code(client.send(golden("a28_utf8.hl7"))) == "AA"
        assert ack_code(client.send(golden("a40_merge.hl7"))) == "AA"
        itself = client.send(replaced(golden("a40_merge.hl7"), IPP1009="IPP1001", **{"A40-0001": "A40-0002"}))
    assert ack_code(itself) == "AE"
    survivor = rows(index, select(patient.c.id).where(patient.c.patient_id == "IPP1001"))[0][0]  # type: ignore[index]
    assert rows(index, select(study.c.patient_pk)) == [(survivor,)]


def test_refused_connection_data_never_half_applied(hl7_daemon: Daemon, index: Engine) -> None:
    # An order whose patient carries a test INS in production: AE, and neither patient nor step.
    message = golden("orm_zds_8859-15.hl7").replace(b"1.2.250.1.213.1.4.8", b"1.2.250.1.213.1.4.10")
    with MllpClient(hl7_daemon.port) as client:
        answer = client.send(message)
    assert ack_code(answer) == "AE"
    assert count(index, patient) == 0 and count(index, scheduled_step) == 0


def test_enhanced_mode_and_v231_orders(hl7_daemon: Daemon, index: Engine) -> None:
    enhanced = golden("a28_8859-1.hl7").replace(b"|P|2.5^FRA^2.11||||||8859/1", b"|P|2.5^FRA^2.11|||AL|NE||8859/1")
    with MllpClient(hl7_daemon.port) as client:
        assert ack_code(client.send(enhanced)) == "CA"
        answer = client.send(golden("orm_no_zds_unlabelled.hl7"))
    assert ack_code(answer) == "AA" and segment_field(answer, "MSH", 12) == "2.3.1"
    assert rows(index, select(scheduled_step.c.accession_number)) == [("ACC0002",)]


def test_sigterm_with_an_open_connection_stops_cleanly(tmp_path: Path) -> None:
    config_path = write_config(tmp_path / "appliance.yaml", hl7_daemon_config(tmp_path / "data"))
    daemon = Daemon("appliance.daemons.hl7", config_path, tmp_path / "hl7.log").start()
    with MllpClient(daemon.port) as client:
        assert ack_code(client.send(golden("a28_utf8.hl7"))) == "AA"
        assert daemon.stop() == 0
    assert "HL7 listener stopped" in daemon.log()
