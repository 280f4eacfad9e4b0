"""Reading a message's bytes for people, without the HL7 edge (the web edge never imports it): the
segments one per line, decoded in the character set MSH-18 names, and the patients its PID and MRG
segments name (for the audit record of the page that shows them). A storage commitment report
(JSON) is shown indented.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

# MSH-18 (HL7 table 0211) to Python codecs: the labels the appliance reads and writes.
CHARSETS = {"8859/1": "iso-8859-1", "8859/15": "iso-8859-15", "UNICODE UTF-8": "utf-8"}
SEGMENT_END = re.compile(r"\r\n|\r|\n")
CHARSET_FIELD = 18  # MSH-18
PATIENT_FIELDS = {"PID": (3, 5), "MRG": (1, 7)}  # segment: (identifier list, name) fields


@dataclass(frozen=True)
class NamedPatient:
    """A patient a message names: its identifiers (CX, first the one to name it by) and its name."""

    identifiers: tuple[str, ...]
    name: str


@dataclass(frozen=True)
class Er7:
    """A message's segments (text) and its separators: field, component, repetition."""

    segments: tuple[str, ...]
    field: str
    component: str
    repetition: str

    def fields(self, segment: str) -> list[str]:
        """The fields of a segment, numbered as in the standard (MSH-1 is the field separator)."""
        parts = segment.split(self.field)
        return [parts[0], self.field, *parts[1:]] if parts[0] == "MSH" else parts


def readable_lines(payload: bytes) -> list[str]:
    """The message as lines to show: HL7 segments, indented JSON, or the text as it is."""
    if not payload:
        return []
    message = er7_of(payload)
    if message is not None:
        return list(message.segments)
    try:
        return json.dumps(json.loads(payload), indent=2, ensure_ascii=False).splitlines()
    except ValueError:
        return payload.decode("utf-8", errors="replace").splitlines()


def patients_named(payload: bytes) -> list[NamedPatient]:
    """The patients of the PID and MRG segments (MRG: the one merged away), in message order."""
    message = er7_of(payload)
    if message is None:
        return []
    found = []
    for segment in message.segments:
        fields = message.fields(segment)
        if fields[0] in PATIENT_FIELDS:
            identifiers_at, name_at = PATIENT_FIELDS[fields[0]]
            named = patient_of(message, field(fields, identifiers_at), field(fields, name_at))
            if named is not None:
                found.append(named)
    return found


def er7_of(payload: bytes) -> Er7 | None:
    """The segments of an HL7 v2 message, or None when the bytes are not one."""
    if not payload.startswith(b"MSH") or len(payload) < 8:
        return None
    text = payload.decode(codec_of(payload), errors="replace")
    separator, encoding = text[3], text[4:8]
    segments = tuple(line for line in SEGMENT_END.split(text.strip("\r\n\x00 \t")) if line.strip())
    return Er7(segments, separator, encoding[0], encoding[1])


def codec_of(payload: bytes) -> str:
    """The codec MSH-18 names; unlabelled: UTF-8 when the bytes are, else Windows-1252 (as the edge reads)."""
    first = SEGMENT_END.split(payload.decode("ascii", errors="replace"), maxsplit=1)[0]
    fields = first.split(first[3]) if len(first) > 3 else []
    label = fields[CHARSET_FIELD - 1].split(first[4])[0] if len(fields) >= CHARSET_FIELD else ""
    if label in CHARSETS:
        return CHARSETS[label]
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


def field(fields: list[str], number: int) -> str:
    return fields[number] if number < len(fields) else ""


def patient_of(message: Er7, identifiers: str, names: str) -> NamedPatient | None:
    """CX repetitions as `ID^^^AUTHORITY` (type code left out) and the first XPN as `FAMILY^Given`."""
    found = []
    for repetition in identifiers.split(message.repetition):
        components = repetition.split(message.component)
        if components[0]:
            authority = components[3] if len(components) > 3 else ""
            found.append(f"{components[0]}^^^{authority}" if authority else components[0])
    if not found:
        return None
    name = names.split(message.repetition)[0].split(message.component)[:2]
    return NamedPatient(tuple(found), "^".join(part for part in name if part))
