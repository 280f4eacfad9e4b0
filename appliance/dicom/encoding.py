"""A small, fast writer for the identifiers the archive answers with (C-FIND, worklist).

pydicom's generic writer takes about 1 ms per answer, most of a C-FIND's cost per match. The
identifiers built by this package are simple: text values, a few integers, sequences of the same.
`encode_identifier` writes those (implicit or explicit VR little endian, PS3.5 7.1) and hands anything
else to pydicom, so what it cannot write exactly it never writes. Tests compare both writers.
It also writes answers built without a Dataset (`written` takes anything shaped like data
elements: `tag`, `VR`, `value`), and passes on identifiers already written (`PreEncoded`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pynetdicom import dsutils

PYDICOM_ENCODE = dsutils.encode
TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
INTEGER_FORMATS = {"US": "<H", "UL": "<I", "SS": "<h", "SL": "<i"}
LONG_LENGTH_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
CODECS = {"": "ascii", "ISO_IR 6": "ascii", "ISO_IR 100": "latin_1", "ISO_IR 192": "utf_8"}


class Unsupported(Exception):
    """Something this writer does not handle: pydicom writes the dataset instead."""


class PreEncoded(Dataset):
    """An identifier already written in the negotiated syntax (worklist answers, cached): handed to
    pynetdicom where it expects a Dataset, and passed on as is by `encode_identifier`. Empty as a
    Dataset, so a writer that does not know it would send nothing rather than something wrong."""

    def __init__(self, encoded: bytes, implicit: bool) -> None:
        super().__init__()
        self.encoded_identifier = encoded
        self.implicit_vr = implicit


def encode_identifier(
    dataset: Dataset, is_implicit_vr: bool, is_little_endian: bool, deflated: bool = False
) -> bytes | None:
    """The dataset encoded in the given syntax; pydicom's writer for anything unusual. A
    `PreEncoded` identifier is passed on when written in that syntax; otherwise nothing is written
    (pynetdicom then answers Unable to Process)."""
    if isinstance(dataset, PreEncoded):
        written_as_asked = dataset.implicit_vr == is_implicit_vr and is_little_endian and not deflated
        return bytes(dataset.encoded_identifier) if written_as_asked else b""
    if not is_little_endian or deflated:
        return PYDICOM_ENCODE(dataset, is_implicit_vr, is_little_endian, deflated)
    try:
        codec = CODECS[str(dataset.get("SpecificCharacterSet", "") or "")]
        return written(dataset, is_implicit_vr, codec)
    except (Unsupported, KeyError, UnicodeEncodeError, struct.error, TypeError):
        return PYDICOM_ENCODE(dataset, is_implicit_vr, is_little_endian, deflated)


def written(dataset: Iterable[Any], implicit: bool, codec: str) -> bytes:
    """Data elements (a Dataset, or anything with `tag`, `VR` and `value` in tag order) written in
    implicit or explicit VR little endian, text in `codec`; raises Unsupported for what it cannot write."""
    return b"".join(element_bytes(element.tag, element.VR, element.value, implicit, codec) for element in dataset)


def element_bytes(tag: Any, vr: str, value: Any, implicit: bool, codec: str) -> bytes:
    if vr == "SQ":  # defined lengths, as pydicom writes sequences built in memory
        items = b"".join(item_bytes(written(item, implicit, codec)) for item in value or [])
        return header(tag, vr, len(items), implicit) + items
    encoded = value_bytes(vr, value, codec)
    return header(tag, vr, len(encoded), implicit) + encoded


def item_bytes(content: bytes) -> bytes:
    return struct.pack("<HHI", 0xFFFE, 0xE000, len(content)) + content


def header(tag: Any, vr: str, length: int, implicit: bool) -> bytes:
    if implicit:
        return struct.pack("<HHI", tag.group, tag.element, length)
    if vr in LONG_LENGTH_VRS:
        return struct.pack("<HH2s2xI", tag.group, tag.element, vr.encode("ascii"), length)
    if length > 0xFFFF:
        raise Unsupported(f"{vr} value too long")
    return struct.pack("<HH2sH", tag.group, tag.element, vr.encode("ascii"), length)


def value_bytes(vr: str, value: Any, codec: str) -> bytes:
    if value is None or value == "":
        return b""
    if vr in INTEGER_FORMATS and isinstance(value, int):
        return struct.pack(INTEGER_FORMATS[vr], value)
    if vr not in TEXT_VRS:
        raise Unsupported(vr)
    parts = list(value) if isinstance(value, (MultiValue, list, tuple)) else [value]
    if vr == "IS":
        parts = [str(int(part)) if isinstance(part, int) else part for part in parts]
    elif vr == "PN":
        parts = [part if isinstance(part, str) else str(part) for part in parts]
    if any(not isinstance(part, str) for part in parts):
        raise Unsupported(f"{vr} value of type {type(parts[0]).__name__}")
    text = "\\".join(str(part) for part in parts)
    encoded = text.encode("ascii" if vr == "UI" else codec)
    if len(encoded) % 2:
        encoded += b"\0" if vr == "UI" else b" "
    return encoded
