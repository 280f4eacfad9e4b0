"""The writer: hl7apy's v2.5 model and the hand renderer write the same bytes from one description
(every ACK shape), escapes and line breaks survive hl7apy, received values are echoed in our
separators, and hl7apy reads back what we write."""

from __future__ import annotations

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from appliance.hl7 import er7
from appliance.hl7.acks import ErrorCode, RequestHeader, Verdict, acknowledgement_values
from appliance.hl7.writer import Header, SegmentValues, components, echoed, render, render_by_hand, text

AWKWARD = "Œuvre | d'art ^ A&B ~ C\\D\nligne 2"
VERDICTS = [
    Verdict.accepted(),
    Verdict.error_in(ErrorCode.UNKNOWN_KEY_IDENTIFIER, AWKWARD, "MRG^1^1"),
    Verdict.error_in(ErrorCode.REQUIRED_FIELD_MISSING, "PID-3 holds no IPP", "PID^1^3"),
    Verdict.rejected(ErrorCode.UNSUPPORTED_VERSION_ID, "version '2.7' not supported"),
]


def request(version: str, enhanced_mode: bool = False) -> RequestHeader:
    return RequestHeader(
        sending_application="RIS^1.2.250.99^ISO",
        sending_facility="CAB-X",
        trigger_event="A28",
        control_id="MSG|1",
        version=version,
        charset_label="8859/15",
        codec="iso-8859-15",
        enhanced_mode=enhanced_mode,
    )


@pytest.mark.parametrize("version", ["2.3", "2.3.1", "2.4", "2.5", "2.5.1"])
@pytest.mark.parametrize("verdict", VERDICTS, ids=["AA", "AE-escapes", "AE", "AR"])
@pytest.mark.parametrize("enhanced_mode", [False, True], ids=["original", "enhanced"])
def test_hl7apy_and_the_hand_renderer_write_the_same_acknowledgements(
    version: str, verdict: Verdict, enhanced_mode: bool
) -> None:
    header, segments = acknowledgement_values(request(version, enhanced_mode), verdict, "PACS", "CAB&X")
    assert render_by_hand(header, segments) == render("ACK", header, segments)


def test_hl7apy_and_the_hand_renderer_agree_on_repetitions_and_components() -> None:
    header = Header("PACS", "", "RIS", "", "ORM^O01", "C1", "P", "2.5", "UNICODE UTF-8", time="20250601090000")
    pid = SegmentValues("PID", {1: "1", 3: ["IPP1^^^RIS^PI", "", "INS1^^^&1.2.250.1.213.1.4.8&ISO^INS"], 5: "A^B"})
    segments = [pid, SegmentValues("ZDS", {1: "1.2.3^^Application^DICOM"})]
    written = render("ORM_O01", header, segments)
    assert written == render_by_hand(header, segments)
    assert written.startswith("MSH|^~\\&|PACS||RIS||20250601090000||ORM^O01|C1|P|2.5||||||UNICODE UTF-8\r")


def test_escapes_and_line_breaks_survive_hl7apy() -> None:
    header = Header("PACS", "", "RIS", "", "ORM^O01", "C1", "P", "2.5", "UNICODE UTF-8")
    obr = SegmentValues("OBR", {1: "1", 4: components("MAMMO", AWKWARD, "LOCAL")})
    written = render("ORM_O01", header, [obr])
    assert "\\F\\" in written and "\\.br\\" in written and "\\E\\.br" not in written
    segment = er7.parse(written.encode("utf-8")).segment("OBR")
    assert segment is not None and segment.get(4, 2) == AWKWARD and segment.get(4, 3) == "LOCAL"


def test_text_escapes_every_separator() -> None:
    assert text("A|B^C&D~E\\F") == "A\\F\\B\\S\\C\\T\\D\\R\\E\\E\\F"
    assert components("DUPONT", "", "", "") == "DUPONT"


def test_received_values_are_echoed_in_our_separators() -> None:
    header = b"MSH|$%\\*|VIEWER|CAB-X|PACS|CAB-X|20250604||QBP$Q22|Q1|P|2.5\r"
    data = header + b"QPD|IHE PDQ Query|Q1|@PID.5.1.1$A^B%@PID.3.4$X*1.2.3\r"
    qpd = er7.parse(data).segment("QPD")
    assert qpd is not None
    assert [echoed(value) for value in qpd.repetitions(3)] == ["@PID.5.1.1^A\\S\\B", "@PID.3.4^X&1.2.3"]


def test_hl7apy_reads_an_rsp_we_write() -> None:
    header = Header("PACS", "CAB-X", "VIEWER", "CAB-X", "RSP^K22^RSP_K21", "C2", "P", "2.5", "UNICODE UTF-8")
    segments = [
        SegmentValues("MSA", {1: "AA", 2: "Q0001"}),
        SegmentValues("QAK", {1: "Q0001", 2: "OK"}),
        SegmentValues("QPD", {1: "IHE PDQ Query", 2: "Q0001", 3: ["@PID.5.1.1^DARK", "@PID.8^F"]}),
        SegmentValues("PID", {1: "1", 3: "1900068^^^RIS^PI", 5: "DARK^JEANNE^^^^^L", 32: ["VALI"]}),
    ]
    written = render("RSP_K21", header, segments)
    parsed = parse_message(written, find_groups=False, validation_level=VALIDATION_LEVEL.TOLERANT)
    assert parsed.msh.msh_9.to_er7() == "RSP^K22^RSP_K21"
    assert parsed.qak.qak_2.to_er7() == "OK"
    assert [field.to_er7() for field in parsed.qpd.qpd_3] == ["@PID.5.1.1^DARK", "@PID.8^F"]
    assert parsed.pid.pid_32.to_er7() == "VALI"
