"""Acknowledgements we write: original mode (AA/AE/AR, HL7 v2.5 §2.9.2) and enhanced mode commit
ACKs (CA/CE/CR) when the sender asked for them in MSH-15/MSH-16.

Built by hand rather than with hl7apy: an ACK must go out even when the request could not be
parsed, and hl7apy takes about 7 ms to build one (see INTERFACE.md).
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass
from datetime import datetime

from appliance.hl7.er7 import Message, Separators, encode_text, escape

ACCEPT = "AA"  # HL7 table 0008: application accept
ERROR = "AE"  # application error: the content is wrong, resending it unchanged will not help
REJECT = "AR"  # application reject: unsupported message type, event, version, structure
COMMIT = {ACCEPT: "CA", ERROR: "CE", REJECT: "CR"}  # enhanced mode accept acknowledgements

_counter = itertools.count(1)


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


def timestamp(moment: datetime | None = None) -> str:
    return (moment or datetime.now()).strftime("%Y%m%d%H%M%S")


def new_control_id(moment: datetime | None = None) -> str:
    """A control ID for a message we originate: time plus a counter (unique within this process)."""
    return f"{timestamp(moment)}{next(_counter) % 1_000_000:06d}"


def acknowledgement(request: RequestHeader, verdict: Verdict, application: str, facility: str) -> bytes:
    """The ACK of `request` in its version and character set (ERR as the version defines it)."""
    separators = Separators()
    modern = not request.version.startswith("2.3")
    message_type = f"ACK^{request.trigger_event}^ACK" if modern else f"ACK^{request.trigger_event}"
    code = COMMIT[verdict.code] if request.enhanced_mode else verdict.code
    msh = [
        "MSH",
        separators.encoding_characters,
        request.receiving_application or escape(application),
        request.receiving_facility or escape(facility),
        request.sending_application,
        request.sending_facility,
        timestamp(),
        "",
        message_type,
        new_control_id(),
        escape(request.processing_id),
        escape(request.version),
        *[""] * 5,
        escape(request.charset_label),
    ]
    text = escape(verdict.text)
    msa = ["MSA", code, escape(request.control_id)] + ([] if modern or not text else [text])
    segments = ["|".join(msh), "|".join(msa).rstrip("|")]
    if verdict.error is not None:
        segments.append(error_segment(verdict, modern))
    return encode_text("\r".join(segments) + "\r", request.codec)


def error_segment(verdict: Verdict, modern: bool) -> str:
    assert verdict.error is not None
    condition = f"{verdict.error.code}^{verdict.error.text}^HL70357"
    if not modern:  # v2.3.1: ERR-1 ELD = segment^sequence^field^code&text&table
        location = [*verdict.location.split("^"), "", "", ""]
        return f"ERR|{location[0]}^{location[1]}^{location[2]}^{condition.replace('^', '&')}"
    severity = "E"
    return f"ERR||{escape_location(verdict.location)}|{condition}|{severity}||||{escape(verdict.text)}"


def escape_location(location: str) -> str:
    return "^".join(escape(part) for part in location.split("^")) if location else ""
