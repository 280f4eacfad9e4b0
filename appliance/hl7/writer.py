"""The messages we write, described once (a `Header` for MSH, `SegmentValues` for the rest) and
rendered to ER7 by hl7apy's HL7 v2.5 model (`render`: RSP^K22, ORM^O01, OMG^O19, ORU^R01) or, for
acknowledgements, by joining the same description by hand (`render_by_hand`).

Why two renderers: hl7apy needs about 3.5 ms to build an ACK, which kept the listener under 200
messages/s applied and acknowledged (INTERFACE.md has the figures), and an ACK must go out even
when nothing else works. The unit tests check that both renderers write the same bytes.

Whatever version the peer speaks (2.3 to 2.5.1), the message is built on the 2.5 model (TOLERANT)
and MSH-12 says the peer's version; the callers leave out what that version does not define (ERR-2
and after before 2.5). Segments are added in wire order at the message level: hl7apy's groups do
not show in ER7, and its validator is wrong on ORM_O01 (crs4/hl7apy #151).

Values are given as ER7, already escaped with `text` or `components`: hl7apy reads `^` and `&` in
an assigned value as separators and does not escape them itself. It would turn the `\\.br\\` of a
line break into `\\E\\.br\\E\\`, so `text` writes a placeholder, put back after serialization.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hl7apy.consts import VALIDATION_LEVEL  # type: ignore[import-untyped]
from hl7apy.core import Message  # type: ignore[import-untyped]

from appliance import practice_time
from appliance.hl7.er7 import Separators, Value, escape

MODEL_VERSION = "2.5"
SEPARATORS = Separators()
LINE_BREAK = "\\.br\\"
# A Unicode noncharacter (reserved for a program's internal use) stands for a line break until the end.
LINE_BREAK_PLACEHOLDER = "\ufdd0"
SEGMENT_END = "\r"

# A field's value: its ER7 text, or the ER7 text of each repetition.
FieldValue = str | Sequence[str]

_counter = itertools.count(1)


def timestamp(moment: datetime | None = None) -> str:
    """HL7 DTM to the second, the practice's local time (MSH-7)."""
    return (moment or practice_time.local(datetime.now(UTC))).strftime("%Y%m%d%H%M%S")


def new_control_id(moment: datetime | None = None) -> str:
    """A control ID for a message we originate: time plus a counter (unique within this process)."""
    return f"{timestamp(moment)}{next(_counter) % 1_000_000:06d}"


@dataclass(frozen=True)
class Header:
    """The MSH of a message we write. Values are ER7 (escaped); empty ones are left out."""

    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    message_type: str  # MSH-9, e.g. ACK^A28^ACK
    control_id: str
    processing_id: str
    version: str  # MSH-12: the peer's version, whatever the model's
    charset_label: str  # MSH-18 (HL7 table 0211)
    time: str = field(default_factory=timestamp)  # MSH-7

    def fields(self) -> dict[int, FieldValue]:
        """MSH-3 to MSH-18 by number (MSH-1 and MSH-2, the separators, come first in any case)."""
        return {
            3: self.sending_application,
            4: self.sending_facility,
            5: self.receiving_application,
            6: self.receiving_facility,
            7: self.time,
            9: self.message_type,
            10: self.control_id,
            11: self.processing_id,
            12: self.version,
            18: self.charset_label,
        }


@dataclass(frozen=True)
class SegmentValues:
    """One segment to write: its name and its fields by number (SEG-n), each ER7 or repetitions."""

    name: str
    fields: Mapping[int, FieldValue]


def text(value: str) -> str:
    """A text value escaped for ER7 (`|^~\\&` and line breaks), ready for either renderer."""
    return escape(value, SEPARATORS).replace(LINE_BREAK, LINE_BREAK_PLACEHOLDER)


def components(*values: str) -> str:
    """Text values as the components of one field (`A^B^C`), escaped, trailing empty ones dropped."""
    return SEPARATORS.component.join(text(value) for value in values).rstrip(SEPARATORS.component)


def render(structure: str, header: Header, segments: Sequence[SegmentValues]) -> str:
    """The ER7 text (each segment ended by CR) of a `structure` message (RSP_K21, ORM_O01, ...) by hl7apy."""
    message = Message(structure, version=MODEL_VERSION, validation_level=VALIDATION_LEVEL.TOLERANT)
    fill(message.msh, header.fields())
    for segment in segments:
        fill(message.add_segment(segment.name), segment.fields)
    written: str = message.to_er7()
    return finished(written.split(SEGMENT_END))


def fill(segment: Any, fields: Mapping[int, FieldValue]) -> None:
    """Set the fields of an hl7apy segment; an empty value is left out (the field stays empty)."""
    prefix = segment.name.lower()
    for number, value in fields.items():
        repetitions = repetitions_of(value)
        if not any(repetitions):
            continue
        setattr(segment, f"{prefix}_{number}", repetitions[0])
        for repetition in repetitions[1:]:
            segment.add_field(f"{prefix}_{number}").value = repetition


def render_by_hand(header: Header, segments: Sequence[SegmentValues]) -> str:
    """The same ER7 as `render`, joined by hand (for acknowledgements: fast, and it cannot fail)."""
    msh = joined(SegmentValues("MSH", {2: SEPARATORS.encoding_characters, **header.fields()}))
    return finished([msh, *(joined(segment) for segment in segments)])


def joined(segment: SegmentValues) -> str:
    """`NAME|field 1|field 2|...`, repetitions joined by `~`, trailing empty fields dropped. In MSH the
    first separator is MSH-1 itself, so the fields joined start at MSH-2 (`MSH|^~\\&|...`)."""
    first = 2 if segment.name == "MSH" else 1
    present = [number for number, value in segment.fields.items() if any(repetitions_of(value))]
    numbers = range(first, max(present, default=first - 1) + 1)
    values = [SEPARATORS.repetition.join(repetitions_of(segment.fields.get(number, ""))) for number in numbers]
    return SEPARATORS.field.join([segment.name, *values])


def repetitions_of(value: FieldValue) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def finished(lines: Sequence[str]) -> str:
    """Segments ended by CR, the line breaks' placeholder turned back into `\\.br\\`."""
    written = "".join(line + SEGMENT_END for line in lines if line)
    return written.replace(LINE_BREAK_PLACEHOLDER, LINE_BREAK)


def echoed(value: Value) -> str:
    """A received value written back in our separators: each subcomponent decoded, then escaped again."""
    written = []
    for number, component in enumerate(value.raw.split(value.separators.component), start=1):
        count = len(component.split(value.separators.subcomponent))
        written.append(SEPARATORS.subcomponent.join(text(value.get(number, part)) for part in range(1, count + 1)))
    return SEPARATORS.component.join(written)
