"""Acknowledgements: original mode with ERR as each version defines it, enhanced mode commit codes;
and hl7apy (the reference parser) reads what we write."""

from __future__ import annotations

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from appliance.hl7 import er7
from appliance.hl7.acks import ErrorCode, RequestHeader, Verdict, acknowledgement


def request(version: str = "2.5", **fields: str) -> RequestHeader:
    return RequestHeader(
        sending_application="RIS",
        sending_facility="CAB-X",
        receiving_application="PACS",
        receiving_facility="CAB-X",
        trigger_event="A28",
        control_id="MSG|1",
        version=version,
        charset_label="8859/15",
        codec="iso-8859-15",
        **fields,  # type: ignore[arg-type]
    )


def test_ae_in_v25_has_an_err_segment_that_hl7apy_reads() -> None:
    verdict = Verdict.error_in(ErrorCode.REQUIRED_FIELD_MISSING, "PID-3 holds no IPP", "PID^1^3")
    answer = acknowledgement(request(), verdict, "PACS", "")
    text = answer.decode("iso-8859-15")
    parsed = parse_message(text.replace("\r", "\r"), find_groups=False, validation_level=VALIDATION_LEVEL.TOLERANT)
    assert parsed.msh.msh_9.to_er7() == "ACK^A28^ACK"
    assert parsed.msa.msa_1.to_er7() == "AE"
    assert parsed.msa.msa_2.to_er7() == "MSG\\F\\1"
    assert parsed.err.err_3.to_er7() == "101^Required field missing^HL70357"
    assert parsed.err.err_2.to_er7() == "PID^1^3"
    assert parsed.msh.msh_18.to_er7() == "8859/15"
    assert er7.parse(answer).segment("MSA") is not None


def test_v231_ack_uses_err_1_and_msa_3() -> None:
    verdict = Verdict.error_in(ErrorCode.UNKNOWN_KEY_IDENTIFIER, "no such patient", "MRG^1^1")
    message = er7.parse(acknowledgement(request("2.3.1"), verdict, "PACS", ""))
    assert message.header.raw(9) == "ACK^A28"
    msa, err = message.segment("MSA"), message.segment("ERR")
    assert msa is not None and msa.get(3) == "no such patient"
    assert err is not None and err.get(1, 1) == "MRG" and err.get(1, 4, 1) == "204"


def test_enhanced_mode_answers_commit_codes() -> None:
    answer = acknowledgement(request(enhanced_mode=True), Verdict.accepted(), "PACS", "")
    message = er7.parse(answer)
    msa = message.segment("MSA")
    assert msa is not None and msa.get(1) == "CA"
    assert message.segment("ERR") is None


def test_v24_ack_uses_err_1_and_msa_3_as_that_version_defines_them() -> None:
    verdict = Verdict.error_in(ErrorCode.REQUIRED_FIELD_MISSING, "PID-3 holds no IPP", "PID^1^3")
    message = er7.parse(acknowledgement(request("2.4"), verdict, "PACS", ""))
    assert message.header.raw(9) == "ACK^A28" and message.version == "2.4"
    msa, err = message.segment("MSA"), message.segment("ERR")
    assert msa is not None and msa.get(3) == "PID-3 holds no IPP"
    assert err is not None and err.raw(1) == "PID^1^3^101&Required field missing&HL70357" and err.raw(2) == ""


def test_an_unreadable_request_still_gets_an_ack_that_hl7apy_reads() -> None:
    answer = acknowledgement(RequestHeader(), Verdict.rejected(ErrorCode.SEGMENT_SEQUENCE_ERROR, "no MSH"), "PACS", "")
    parsed = parse_message(answer.decode("ascii"), find_groups=False, validation_level=VALIDATION_LEVEL.TOLERANT)
    assert parsed.msa.msa_1.to_er7() == "AR"
    assert parsed.err.err_3.to_er7() == "100^Segment sequence error^HL70357"
