"""Do a dataset's bytes follow its transfer syntax? A walk of the element structure, not a decode.

pydicom reads leniently: implicit VR bytes under a file meta saying Explicit VR are read as implicit
(and the other way round), so an object the archive could never serve back as it says it is would
be acknowledged. This walk follows the tags, VRs and lengths of every element in the encoding the
file meta announces, without looking at values: a VR that is not one (PS3.5 6.2), a length running
past the end, tags out of order, an item or delimiter where none can be, are refused. Sequences and
items of undefined length are followed to their delimiters (PS3.5 7.5); encapsulated pixel data to
its sequence delimiter (PS3.5 A.4). Deflated datasets are not walked (pydicom inflates them whole).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

UNDEFINED_LENGTH = 0xFFFFFFFF
ITEM = (0xFFFE, 0xE000)
ITEM_END = (0xFFFE, 0xE00D)
SEQUENCE_END = (0xFFFE, 0xE0DD)
VALUE_REPRESENTATIONS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV".split()
)
LONG_LENGTH = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())  # PS3.5 7.1.2
MAXIMUM_DEPTH = 16
IMPLICIT_LITTLE = "1.2.840.10008.1.2"
EXPLICIT_BIG = "1.2.840.10008.1.2.2"
DEFLATED = frozenset({"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1"})
TRANSFER_SYNTAX_TAG = 0x00020010


class EncodingMismatch(Exception):
    """The bytes do not follow the transfer syntax; the message says where (no values)."""


@dataclass(frozen=True)
class Encoding:
    implicit: bool
    order: str  # struct byte order: "<" little endian, ">" big endian


def encoding_of(transfer_syntax: str) -> Encoding | None:
    """How a transfer syntax encodes the dataset; None for a deflated one (not walked)."""
    if transfer_syntax in DEFLATED:
        return None
    return Encoding(transfer_syntax == IMPLICIT_LITTLE, ">" if transfer_syntax == EXPLICIT_BIG else "<")


def check_dataset(data: bytes, start: int, transfer_syntax: str) -> None:
    """Walk the dataset from `start` to the end of `data`; raise EncodingMismatch where it breaks."""
    encoding = encoding_of(transfer_syntax)
    if encoding is not None:
        walk(data, start, len(data), encoding, 0, until_item_end=False)


def dataset_start(encoded: bytes) -> int:
    """Where the dataset of a DICOM file starts: after the preamble, `DICM` and the file meta
    information (group 0002, explicit VR little endian, PS3.10 7.1)."""
    return file_meta(encoded)[1]


def file_meta(encoded: bytes) -> tuple[str | None, int]:
    """The Transfer Syntax UID the file meta information of a DICOM file names (None when it names
    none) and where the dataset starts, after it."""
    if encoded[128:132] != b"DICM":
        raise EncodingMismatch("no DICM prefix")
    position, meta, transfer_syntax = 132, Encoding(False, "<"), None
    while position + 8 <= len(encoded) and struct.unpack_from("<H", encoded, position)[0] == 0x0002:
        tag, _, length, value_start = element_header(encoded, position, len(encoded), meta)
        if tag == TRANSFER_SYNTAX_TAG:
            transfer_syntax = encoded[value_start : value_start + length].rstrip(b"\x00 ").decode("ascii")
        position = value_start + length
    return transfer_syntax, position


def walk(data: bytes, position: int, end: int, encoding: Encoding, depth: int, until_item_end: bool) -> int:
    """Walk the elements in [position, end); return where the walk stopped (after an item
    delimiter when `until_item_end`)."""
    if depth > MAXIMUM_DEPTH:
        raise EncodingMismatch("sequences nested too deep")
    previous = -1
    while position < end:
        tag, value_representation, length, value_start = element_header(data, position, end, encoding)
        if (tag >> 16, tag & 0xFFFF) == ITEM_END and until_item_end:
            return value_start
        if tag >> 16 == 0xFFFE:
            raise EncodingMismatch(f"unexpected delimiter ({tag >> 16:04X},{tag & 0xFFFF:04X})")
        if tag <= previous:
            raise EncodingMismatch(f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) out of order")
        previous = tag
        if length == UNDEFINED_LENGTH:
            position = undefined_length_value(data, value_start, end, encoding, depth, tag, value_representation)
        elif value_start + length > end:
            raise EncodingMismatch(f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) runs past the end")
        else:
            position = value_start + length
    if until_item_end:
        raise EncodingMismatch("item without its delimiter")
    return position


def element_header(data: bytes, position: int, end: int, encoding: Encoding) -> tuple[int, bytes, int, int]:
    """(tag, VR or b'', length, where the value starts) of the element at `position`."""
    if position + 8 > end:
        raise EncodingMismatch("element header cut short")
    group, element = struct.unpack_from(f"{encoding.order}HH", data, position)
    tag = group << 16 | element
    if encoding.implicit or group == 0xFFFE:
        (length,) = struct.unpack_from(f"{encoding.order}I", data, position + 4)
        return tag, b"", length, position + 8
    value_representation = bytes(data[position + 4 : position + 6])
    if value_representation not in VALUE_REPRESENTATIONS:
        raise EncodingMismatch(f"element ({group:04X},{element:04X}) has no valid VR: not explicit VR")
    if value_representation in LONG_LENGTH:
        if position + 12 > end:
            raise EncodingMismatch("element header cut short")
        (length,) = struct.unpack_from(f"{encoding.order}I", data, position + 8)
        return tag, value_representation, length, position + 12
    (length,) = struct.unpack_from(f"{encoding.order}H", data, position + 6)
    return tag, value_representation, length, position + 8


def undefined_length_value(
    data: bytes, position: int, end: int, encoding: Encoding, depth: int, tag: int, value_representation: bytes
) -> int:
    """Follow a value of undefined length: a sequence (SQ, UN, or any VR in implicit VR), or
    encapsulated pixel data; return where it ends (after its sequence delimiter)."""
    if tag == 0x7FE00010 and value_representation in (b"OB", b"OW", b""):
        return fragments(data, position, end, encoding)
    if value_representation not in (b"SQ", b"UN", b""):
        raise EncodingMismatch(f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) of undefined length is no sequence")
    inner = Encoding(True, "<") if value_representation == b"UN" else encoding  # PS3.5 6.2.2
    while True:
        item_tag, _, length, value_start = element_header(data, position, end, inner)
        if (item_tag >> 16, item_tag & 0xFFFF) == SEQUENCE_END:
            return value_start
        if (item_tag >> 16, item_tag & 0xFFFF) != ITEM:
            raise EncodingMismatch(f"sequence ({tag >> 16:04X},{tag & 0xFFFF:04X}) holds something else than items")
        if length == UNDEFINED_LENGTH:
            position = walk(data, value_start, end, inner, depth + 1, until_item_end=True)
        elif value_start + length > end:
            raise EncodingMismatch("item runs past the end")
        else:
            walk(data, value_start, value_start + length, inner, depth + 1, until_item_end=False)
            position = value_start + length


def fragments(data: bytes, position: int, end: int, encoding: Encoding) -> int:
    """Encapsulated pixel data: items of defined length up to the sequence delimiter."""
    little = Encoding(True, encoding.order)
    while True:
        tag, _, length, value_start = element_header(data, position, end, little)
        if (tag >> 16, tag & 0xFFFF) == SEQUENCE_END:
            return value_start
        if (tag >> 16, tag & 0xFFFF) != ITEM or length == UNDEFINED_LENGTH or value_start + length > end:
            raise EncodingMismatch("encapsulated pixel data is malformed")
        position = value_start + length
