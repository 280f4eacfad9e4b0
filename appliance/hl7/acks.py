"""Acknowledgements we write: original mode (AA/AE/AR, HL7 v2.5 §2.9.2) and enhanced mode commit
ACKs (CA/CE/CR) when the sender asked for them in MSH-15/MSH-16.

Described like every message we write (`writer`), but rendered by hand rather than by hl7apy: that
keeps the listener above 200 messages/s (INTERFACE.md has the figures), and an ACK built from a
`RequestHeader` alone goes out even when the request could not be parsed (`router.fallback_header`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from appliance.hl7.er7 import Message, encode_text
from appliance.hl7.writer import Header, SegmentValues, new_control_id, render_by_hand, text

ACCEPT = "AA"  # HL7 table 0008: application accept
ERROR = "AE"  # application error: the content is wrong, resending it unchanged will not help
REJECT = "AR"  # application reject: unsupported message type, event, version, structure
COMMIT = {ACCEPT: "CA", ERROR: "CE", REJECT: "CR"}  # enhanced mode accept acknowledgements
# Versions whose ERR has ERR-1 (ELD) only and whose MSA-3 carries the error text (ERR-2 to ERR-12 came in v2.5).
LEGACY_VERSIONS = frozenset({"2.3", "2.3.1", "2.4"})
ERROR_TABLE = "HL70357"  # ERR-3 (v2.5) / ELD-4 coding system: message error condition codes
ERROR_SEVERITY = "E"  # ERR-4, HL7 table 0516: error


class ErrorCode(enum.Enum):
    """HL7 table 0357 (message error condition codes), cited in ERR-3."""

    SEGMENT_SEQUENCE_ERROR = ("100", "Segment sequence error")
    REQUIRED_FIELD_MISSING = ("101", "Required field missing")
    DATA_TYPE_ERROR = ("102", "Data type error")
    TABLE_VALUE_NOT_FOUND = ("103", "Table value not found")
    UNSUPPORTED_MESSAGE_TYPE = ("200", "Unsupported message type")
    UNSUPPORTED_EVENT_CODE = ("201", "Unsupported event code")
    UNSUPPORTED_PROCESSING_ID = ("202", "Unsupported processing id")
    UNSUPPORTED_VERSION_ID = ("203", "Unsupported version id")
    UNKNOWN_KEY_IDENTIFIER = ("204", "Unknown key identifier")
    DUPLICATE_KEY_IDENTIFIER = ("205", "Duplicate key identifier")
    APPLICATION_RECORD_LOCKED = ("206", "Application record locked")
    APPLICATION_INTERNAL_ERROR = ("207", "Application internal error")

    @property
    def code(self) -> str:
        return self.value[0]

    @property
    def text(self) -> str:
        return self.value[1]


@dataclass(frozen=True)
class Verdict:
    """What the edge answers: the acknowledgement code and, unless AA, why and where."""

    code: str
    error: ErrorCode | None = None
    text: str = ""
    location: str = ""  # ERR-2 location as SEG^sequence^field, e.g. PID^1^3

    @classmethod
    def accepted(cls) -> Verdict:
        return cls(ACCEPT)

    @classmethod
    def error_in(cls, error: ErrorCode, text: str, location: str = "") -> Verdict:
        return cls(ERROR, error, text, location)

    @classmethod
    def rejected(cls, error: ErrorCode, text: str) -> Verdict:
        return cls(REJECT, error, text)


@dataclass(frozen=True)
class RequestHeader:
    """What an ACK copies from the request's MSH (defaults when the request could not be read)."""

    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    trigger_event: str = ""
    control_id: str = ""
    processing_id: str = "P"
    version: str = "2.5"
    charset_label: str = ""
    codec: str = "ascii"
    enhanced_mode: bool = False

    @classmethod
    def of(cls, message: Message) -> RequestHeader:
        header = message.header
        return cls(
            sending_application=header.value(3).raw,
            sending_facility=header.value(4).raw,
            receiving_application=header.value(5).raw,
            receiving_facility=header.value(6).raw,
            trigger_event=message.trigger_event,
            control_id=message.control_id,
            processing_id=header.get(11) or "P",
            version=message.version or "2.5",
            charset_label=message.charset_label,
            codec=message.codec,
            enhanced_mode=bool(header.raw(15) or header.raw(16)),
        )


def acknowledgement(request: RequestHeader, verdict: Verdict, application: str, facility: str) -> bytes:
    """The ACK of `request` in its version and character set (ERR as the version defines it)."""
    header, segments = acknowledgement_values(request, verdict, application, facility)
    return encode_text(render_by_hand(header, segments), request.codec)


def acknowledgement_values(
    request: RequestHeader, verdict: Verdict, application: str, facility: str
) -> tuple[Header, list[SegmentValues]]:
    """What the ACK of `request` holds: MSH (our names when the request does not give them), MSA, ERR."""
    event = text(request.trigger_event)
    legacy = request.version in LEGACY_VERSIONS
    message_type = f"ACK^{event}".rstrip("^") if legacy else f"ACK^{event}^ACK"
    header = answer_header(request, message_type, application, facility)
    code = COMMIT[verdict.code] if request.enhanced_mode else verdict.code
    return header, acknowledgement_segments(request, code, verdict)


def answer_header(request: RequestHeader, message_type: str, application: str, facility: str) -> Header:
    """The MSH of an answer: back to the sender, in its version and character set."""
    return Header(
        sending_application=request.receiving_application or text(application),
        sending_facility=request.receiving_facility or text(facility),
        receiving_application=request.sending_application,
        receiving_facility=request.sending_facility,
        message_type=message_type,
        control_id=new_control_id(),
        processing_id=text(request.processing_id),
        version=text(request.version),
        charset_label=text(request.charset_label),
    )


def acknowledgement_segments(request: RequestHeader, code: str, verdict: Verdict) -> list[SegmentValues]:
    """MSA (MSA-3 holds the text before v2.5), then ERR unless the verdict has no error."""
    legacy = request.version in LEGACY_VERSIONS
    msa = SegmentValues("MSA", {1: code, 2: text(request.control_id), 3: text(verdict.text) if legacy else ""})
    return [msa] if verdict.error is None else [msa, error_segment(verdict, legacy)]


def error_segment(verdict: Verdict, legacy: bool) -> SegmentValues:
    """ERR: before v2.5, ERR-1 (ELD) `segment^sequence^field^code&text&table`; from v2.5, ERR-2
    location, ERR-3 condition (table 0357), ERR-4 severity and ERR-8 the text."""
    assert verdict.error is not None
    condition = [verdict.error.code, text(verdict.error.text), ERROR_TABLE]
    location = [text(part) for part in verdict.location.split("^")] if verdict.location else []
    if legacy:
        position = [*location, "", "", ""][:3]
        return SegmentValues("ERR", {1: "^".join([*position, "&".join(condition)])})
    return SegmentValues(
        "ERR", {2: "^".join(location), 3: "^".join(condition), 4: ERROR_SEVERITY, 8: text(verdict.text)}
    )
