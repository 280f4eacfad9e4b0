"""HL7 v2 ER7 text: bytes to a read-only message (character set from MSH-18, escapes decoded), and
escaping for the messages we write.

Reading is hand-written on purpose: hl7apy parses at about 100 messages/s on the test machine and
does not decode character sets or escapes (see INTERFACE.md); this reader does both, at thousands
of messages/s. Fields are numbered as in the standard: `segment.field(3)` is PID-3, and for MSH
`field(1)` is the field separator, `field(2)` the encoding characters, `field(9)` the message type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# MSH-18 (HL7 table 0211) to Python codecs. Empty or ASCII: UTF-8 when it decodes, else Windows-1252
# (what French RIS send unlabelled; a superset of Latin-1 for printable text).
CHARSETS = {
    "8859/1": "iso-8859-1",
    "8859/15": "iso-8859-15",
    "UNICODE UTF-8": "utf-8",
}
UNLABELLED = {"", "ASCII"}
SEGMENT_NAME = re.compile(r"^[A-Z][A-Z0-9]{2}$")
LATIN_FALLBACKS = {"Œ": "OE", "œ": "oe", "€": "EUR", "Š": "S", "š": "s", "Ž": "Z", "ž": "z", "Ÿ": "Y"}


class MessageError(Exception):
    """The bytes are not an HL7 v2 message we can read (no MSH, wrong separators, bad segment)."""


@dataclass(frozen=True)
class Separators:
    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @property
    def encoding_characters(self) -> str:
        return f"{self.component}{self.repetition}{self.escape}{self.subcomponent}"


@dataclass(frozen=True)
class Value:
    """One repetition of a field, still with its component separators and escapes."""

    raw: str
    separators: Separators
    codec: str

    def get(self, component: int = 1, subcomponent: int = 1) -> str:
        """Component `component` (1-based), subcomponent `subcomponent`, unescaped; "" when absent."""
        components = self.raw.split(self.separators.component)
        if component > len(components):
            return ""
        subcomponents = components[component - 1].split(self.separators.subcomponent)
        if subcomponent > len(subcomponents):
            return ""
        return unescape(subcomponents[subcomponent - 1], self.separators, self.codec)

    def __bool__(self) -> bool:
        return bool(self.raw)


@dataclass(frozen=True)
class Segment:
    name: str
    fields: tuple[str, ...]  # fields[n] is SEG-n; fields[0] is the name
    separators: Separators
    codec: str

    def raw(self, number: int) -> str:
        return self.fields[number] if number < len(self.fields) else ""

    def repetitions(self, number: int) -> list[Value]:
        """Every repetition of field `number` (none when the field is empty)."""
        raw = self.raw(number)
        if not raw:
            return []
        if self.name == "MSH" and number <= 2:
            return [Value(raw, self.separators, self.codec)]
        return [Value(part, self.separators, self.codec) for part in raw.split(self.separators.repetition)]

    def value(self, number: int) -> Value:
        """The first repetition of field `number` (an empty Value when absent)."""
        found = self.repetitions(number)
        return found[0] if found else Value("", self.separators, self.codec)

    def get(self, number: int, component: int = 1, subcomponent: int = 1) -> str:
        return self.value(number).get(component, subcomponent)


@dataclass(frozen=True)
class Message:
    segments: tuple[Segment, ...]
    separators: Separators
    codec: str
    charset_label: str  # MSH-18 as sent

    @property
    def header(self) -> Segment:
        return self.segments[0]

    @property
    def message_code(self) -> str:
        return self.header.get(9, 1)

    @property
    def trigger_event(self) -> str:
        return self.header.get(9, 2)

    @property
    def control_id(self) -> str:
        return self.header.get(10)

    @property
    def version(self) -> str:
        return self.header.get(12, 1)

    def segment(self, name: str) -> Segment | None:
        for segment in self.segments:
            if segment.name == name:
                return segment
        return None

    def all(self, name: str) -> list[Segment]:
        return [segment for segment in self.segments if segment.name == name]


def charset_label(data: bytes) -> str:
    """MSH-18 read from the raw bytes (MSH is ASCII); raises MessageError when there is no MSH."""
    start = data.find(b"MSH")
    if start < 0 or len(data) < start + 8:
        raise MessageError("no MSH segment")
    separator = data[start + 3 : start + 4]
    header = re.split(rb"[\r\n]", data[start:], maxsplit=1)[0]
    fields = header.split(separator)
    return fields[17].decode("ascii", "replace").strip() if len(fields) > 17 else ""


def codec_for(label: str, data: bytes) -> str:
    """The Python codec of MSH-18 `label`; raises MessageError for a character set we do not support."""
    if label in CHARSETS:
        return CHARSETS[label]
    if label not in UNLABELLED:
        raise MessageError(f"unsupported character set {label!r}")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


def decode_text(data: bytes, codec: str) -> str:
    """Bytes to text; undecodable bytes become U+FFFD (cp1252 leaves five bytes undefined)."""
    return data.decode(codec, errors="replace")


def parse(data: bytes) -> Message:
    """Read one message from the bytes of an MLLP frame. Raises MessageError when it is not HL7 v2."""
    label = charset_label(data)
    codec = codec_for(label, data)
    text = decode_text(data, codec).strip("\r\n\x00 \t")
    if not text.startswith("MSH"):
        raise MessageError("the message does not start with MSH")
    separators = separators_of(text)
    lines = [line for line in re.split(r"\r\n|\r|\n", text) if line.strip()]
    segments = tuple(segment_of(line, separators, codec) for line in lines)
    return Message(segments, separators, codec, label)


def separators_of(text: str) -> Separators:
    field = text[3:4]
    encoding = text[4:].split(field, 1)[0] if field else ""
    if not field or field.isalnum() or len(encoding) not in (4, 5) or len(set(field + encoding)) != len(encoding) + 1:
        raise MessageError("wrong separators in MSH-1/MSH-2")
    return Separators(field, encoding[0], encoding[1], encoding[2], encoding[3])


def segment_of(line: str, separators: Separators, codec: str) -> Segment:
    name = line[:3]
    if not SEGMENT_NAME.match(name) or (len(line) > 3 and line[3] != separators.field):
        raise MessageError("malformed segment")
    parts = line.split(separators.field)
    fields = ("MSH", separators.field, *parts[1:]) if name == "MSH" else tuple(parts)
    return Segment(name, fields, separators, codec)


def unescape(text: str, separators: Separators, codec: str) -> str:
    """Decode HL7 escape sequences (\\F\\ \\S\\ \\T\\ \\R\\ \\E\\, \\X..\\ in the message charset, \\.br\\)."""
    if separators.escape not in text:
        return text
    escape = re.escape(separators.escape)
    pattern = re.compile(f"{escape}([^{escape}]*){escape}")
    return pattern.sub(lambda match: escape_value(match.group(1), separators, codec, match.group(0)), text)


def escape_value(sequence: str, separators: Separators, codec: str, original: str) -> str:
    simple = {
        "F": separators.field,
        "S": separators.component,
        "T": separators.subcomponent,
        "R": separators.repetition,
        "E": separators.escape,
        ".br": "\n",
        "H": "",
        "N": "",
    }
    if sequence in simple:
        return simple[sequence]
    if sequence.startswith("X") and len(sequence) % 2 == 1:
        try:
            return bytes.fromhex(sequence[1:]).decode(codec, errors="replace")
        except ValueError:
            return original
    return original


def escape(text: str, separators: Separators = Separators()) -> str:
    """Escape a text value for ER7 (the inverse of `unescape`; line breaks become \\.br\\)."""
    mark = separators.escape
    replacements = [
        (separators.escape, f"{mark}E{mark}"),
        (separators.field, f"{mark}F{mark}"),
        (separators.component, f"{mark}S{mark}"),
        (separators.subcomponent, f"{mark}T{mark}"),
        (separators.repetition, f"{mark}R{mark}"),
    ]
    escaped = "".join(next((new for old, new in replacements if old == character), character) for character in text)
    return escaped.replace("\r\n", "\n").replace("\r", "\n").replace("\n", f"{mark}.br{mark}")


def encode_text(text: str, codec: str) -> bytes:
    """Text to bytes in `codec`; characters it lacks are spelled out (Œ → OE, € → EUR) or become `?`."""
    try:
        return text.encode(codec)
    except UnicodeEncodeError:
        folded = "".join(LATIN_FALLBACKS.get(character, character) for character in text)
        return folded.encode(codec, errors="replace")
