"""AuditMessage XML against the structure of research §1.3/§1.4 (parsed back with xml.etree), the
codes checked against pydicom's DCM dictionary; the CSV and XML exports and their own record."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree

import pytest
from pydicom.sr._concepts_dict import concepts

from appliance.audit.events import (
    Action,
    AuditEvent,
    EventId,
    EventType,
    ObjectKind,
    Outcome,
    ParticipantObject,
    ParticipantRole,
    ae,
    application,
    patient,
    person,
    study,
)
from appliance.audit.export import export_event, write_csv, write_xml
from appliance.audit.message import USER_ID_TYPES, AuditSource, render
from appliance.audit.trail import AuditFilter, AuditTrail

SOURCE = AuditSource("pacs-box-0001", "Cabinet Imagerie Exemple")
MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
DCM_CODES = {code: meaning for codes in concepts["DCM"].values() for code, (meaning, _cids) in codes.items()}


def viewed() -> AuditEvent:
    """Research §1.3: Dr Martin viewed a study in the console."""
    return AuditEvent(
        EventId.INSTANCES_ACCESSED,
        Action.READ,
        Outcome.SUCCESS,
        (person("dmartin", "192.168.1.23", "MARTIN^Paul"), application("pacs-console", "pacs.cabinet.lan")),
        (
            study("1.2.250.1.59.3.1.2026.412", "A2026-0412", ((MR_STORAGE, 212),)),
            patient("P000123^^^&1.2.250.1.999.1.1&ISO", "DUPONT^MARIE"),
        ),
        at=datetime(2026, 3, 2, 9, 15, 4, 120000, tzinfo=UTC),
    )


def moved() -> AuditEvent:
    """Research §1.4: a C-MOVE from the RIS sent a study to WS_SALLE2, two of 212 failed."""
    return AuditEvent(
        EventId.INSTANCES_TRANSFERRED,
        Action.READ,
        Outcome.MINOR_FAILURE,
        (
            ae("PACSCAB", "192.168.1.10", False, ParticipantRole.SOURCE),
            ae("WS_SALLE2", "192.168.1.40", False, ParticipantRole.DESTINATION),
            ae("RIS_CAB", "192.168.1.5", True),
        ),
        (study("1.2.3", "A1", ((MR_STORAGE, 210),)),),
        outcome_description="2 instance(s) failed",
    )


def parsed(event: AuditEvent) -> ElementTree.Element:
    return ElementTree.fromstring(render(event, SOURCE))


def code_of(element: ElementTree.Element | None) -> tuple[str, str, str]:
    if element is None:
        return "", "", ""
    return element.get("csd-code", ""), element.get("codeSystemName", ""), element.get("originalText", "")


def test_every_dcm_code_we_write_is_in_the_dictionary_with_its_meaning() -> None:
    coded = [*EventId, *EventType, *ParticipantRole]
    assert {member.code: member.meaning for member in coded if DCM_CODES.get(member.code) != member.meaning} == {}
    assert all(DCM_CODES[code] == text for code, system, text in USER_ID_TYPES.values() if system == "DCM")


def test_a_view_renders_as_in_the_research_example() -> None:
    message = parsed(viewed())
    assert [child.tag for child in message] == [
        "EventIdentification", "ActiveParticipant", "ActiveParticipant", "AuditSourceIdentification",
        "ParticipantObjectIdentification", "ParticipantObjectIdentification",
    ]  # fmt: skip
    event = message.find("EventIdentification")
    assert event is not None
    assert (event.get("EventActionCode"), event.get("EventOutcomeIndicator")) == ("R", "0")
    assert event.get("EventDateTime") == "2026-03-02T09:15:04.120000Z"
    assert code_of(event.find("EventID")) == ("110103", "DCM", "DICOM Instances Accessed")
    user, console = message.findall("ActiveParticipant")
    assert user.attrib == {
        "UserID": "dmartin", "UserName": "MARTIN^Paul", "UserIsRequestor": "true",
        "NetworkAccessPointID": "192.168.1.23", "NetworkAccessPointTypeCode": "2",
    }  # fmt: skip
    assert code_of(user.find("UserIDTypeCode")) == ("113871", "DCM", "Person ID")
    assert (console.get("UserIsRequestor"), console.get("NetworkAccessPointTypeCode")) == ("false", "1")
    assert code_of(console.find("RoleIDCode")) == ("110150", "DCM", "Application")
    source = message.find("AuditSourceIdentification")
    assert source is not None and source.get("AuditSourceID") == "pacs-box-0001"
    assert source.get("AuditEnterpriseSiteID") == "Cabinet Imagerie Exemple"
    assert code_of(source.find("AuditSourceTypeCode"))[0] == "4"


def test_study_and_patient_objects() -> None:
    studied, person_object = parsed(viewed()).findall("ParticipantObjectIdentification")
    assert (studied.get("ParticipantObjectTypeCode"), studied.get("ParticipantObjectTypeCodeRole")) == ("2", "3")
    assert code_of(studied.find("ParticipantObjectIDTypeCode")) == ("110180", "DCM", "Study Instance UID")
    assert studied.findtext("ParticipantObjectName") == "A2026-0412"
    accession = studied.find("ParticipantObjectDescription/Accession")
    sop_class = studied.find("ParticipantObjectDescription/SOPClass")
    assert accession is not None and accession.get("Number") == "A2026-0412"
    assert sop_class is not None and sop_class.attrib == {"UID": MR_STORAGE, "NumberOfInstances": "212"}
    assert person_object.get("ParticipantObjectID") == "P000123^^^&1.2.250.1.999.1.1&ISO"
    assert (person_object.get("ParticipantObjectTypeCode"), person_object.get("ParticipantObjectTypeCodeRole")) == (
        "1", "1",
    )  # fmt: skip
    assert code_of(person_object.find("ParticipantObjectIDTypeCode")) == ("2", "RFC-3881", "Patient Number")
    assert person_object.findtext("ParticipantObjectName") == "DUPONT^MARIE"


def test_a_move_has_source_destination_and_requestor() -> None:
    message = parsed(moved())
    participants = {
        element.get("UserID"): (element.get("UserIsRequestor"), code_of(element.find("RoleIDCode"))[0])
        for element in message.findall("ActiveParticipant")
    }
    assert participants == {"PACSCAB": ("false", "110153"), "WS_SALLE2": ("false", "110152"), "RIS_CAB": ("true", "")}
    assert all(
        code_of(element.find("UserIDTypeCode"))[0] == "110119" for element in message.findall("ActiveParticipant")
    )
    assert message.findtext("EventIdentification/EventOutcomeDescription") == "2 instance(s) failed"
    assert message.find("EventIdentification").get("EventOutcomeIndicator") == "4"  # type: ignore[union-attr]


def test_a_query_carries_its_keys_in_base64() -> None:
    keys = ParticipantObject(ObjectKind.QUERY, "1.2.840.10008.5.1.4.1.2.2.1", query=b"\x08\x00\x52\x00",
                             details=(("TransferSyntax", "1.2.840.10008.1.2"),))  # fmt: skip
    event = AuditEvent(EventId.QUERY, Action.EXECUTE, Outcome.SUCCESS, (ae("FINDSCU", "10.0.0.2", True),), (keys,))
    found = parsed(event).find("ParticipantObjectIdentification")
    assert found is not None
    assert (found.get("ParticipantObjectTypeCode"), found.get("ParticipantObjectTypeCodeRole")) == ("2", "24")
    assert code_of(found.find("ParticipantObjectIDTypeCode"))[0] == "110181"
    assert found.findtext("ParticipantObjectQuery") == "CABSAA=="
    detail = found.find("ParticipantObjectDetail")
    assert detail is not None and detail.attrib == {"type": "TransferSyntax", "value": "MS4yLjg0MC4xMDAwOC4xLjI="}


@pytest.fixture()
def trail(tmp_path: Path) -> AuditTrail:
    opened = AuditTrail(tmp_path / "audit.sqlite")
    opened.record(viewed())
    opened.record(moved())
    return opened


def test_csv_export(trail: AuditTrail) -> None:
    output = io.StringIO()
    assert write_csv(trail.records(), output) == 2
    rows = list(csv.DictReader(io.StringIO(output.getvalue())))
    assert [row["event_id"] for row in rows] == ["110103", "110104"]
    assert rows[0]["requestor"] == "dmartin" and rows[0]["requestor_address"] == "192.168.1.23"
    assert rows[0]["patients"] == "P000123^^^&1.2.250.1.999.1.1&ISO DUPONT^MARIE"
    assert rows[1]["outcome"] == "4" and rows[1]["description"] == "2 instance(s) failed"
    assert rows[1]["hash"] == trail.tail()[1]


def test_xml_export_is_one_document(trail: AuditTrail) -> None:
    output = io.BytesIO()
    assert write_xml(trail.records(AuditFilter(patient="P000123")), output, SOURCE) == 1
    root = ElementTree.fromstring(output.getvalue())
    (record,) = root.findall("Record")
    assert record.get("seq") == "1"
    assert record.find("AuditMessage/EventIdentification/EventID").get("csd-code") == "110103"  # type: ignore[union-attr]


def test_the_export_record_names_the_log_and_the_patient() -> None:
    event = export_event(AuditFilter(patient="P000123"), "csv", person("root", "pacs"), application("cli"), 3)
    assert (event.event, event.action, event.outcome) == (EventId.AUDIT_LOG_USED, Action.READ, Outcome.SUCCESS)
    log, subject = event.objects
    assert (log.kind, log.object_id) == (ObjectKind.SECURITY_RESOURCE, "Security Audit Log")
    assert dict(log.details) == {"format": "csv", "records": "3", "patient": "P000123"}
    assert subject.kind is ObjectKind.PATIENT and subject.object_id == "P000123"
    found = parsed(event).findall("ParticipantObjectIdentification")[0]
    assert (found.get("ParticipantObjectTypeCodeRole"), code_of(found.find("ParticipantObjectIDTypeCode"))) == (
        "13", ("12", "RFC-3881", "URI"),
    )  # fmt: skip
