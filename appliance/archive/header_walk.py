"""A received object's header read in the walk that checks its structure (issue 14).

The ingest used to go over every header three times before taking a value from it: pydicom's
dataset reader (`read_dataset`), the structure walk (`structure.check_dataset`), and the search for
elements cut short (`attributes.check_complete`). For a little-endian object (explicit or implicit
VR, the syntaxes modalities send), `read_in_one_walk` does all three at once: it follows the
elements with `structure`'s own steps and makes each one the element pydicom's reader makes of it
(the same `RawDataElement`, the same empty values, the same character set). An element of undefined
length (a sequence, mostly) is checked by `structure` and then read by pydicom's own element
reader, so that its items are exactly pydicom's. Past the header, the pixel data and whatever
follows are walked by `structure` as before.

An object that is not little endian, that would make pydicom's reader switch between explicit and
implicit VR, or that breaks the structure anywhere is not read here: the caller reads it the usual
way, which says what is wrong in the usual words.
"""

from __future__ import annotations

import functools
import io
import struct
from collections.abc import MutableSequence
from typing import cast

from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element, empty_value_for_VR
from pydicom.dataset import Dataset
from pydicom.filereader import data_element_generator
from pydicom.tag import BaseTag
from pydicom.values import convert_string

from appliance.archive.structure import (
    LONG_LENGTH,
    UNDEFINED_LENGTH,
    VALUE_REPRESENTATIONS,
    Encoding,
    EncodingMismatch,
    undefined_length_value,
    walk,
)

# Float, Double Float and Pixel Data: where dcmread(stop_before_pixels=True) stops.
PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
CHARACTER_SET = 0x00080005
CHARACTER_SET_TAG = BaseTag(CHARACTER_SET)
IMPLICIT_HEADER = struct.Struct("<HHI").unpack_from
EXPLICIT_HEADER = struct.Struct("<HH2sH").unpack_from
LONG_LENGTH_FIELD = struct.Struct("<I").unpack_from
VR_NAMES = {
    value_representation: value_representation.decode("ascii") for value_representation in VALUE_REPRESENTATIONS
}
Elements = dict[int, RawDataElement | DataElement]  # by BaseTag, or by plain int (`walk_header`'s `keep`)
CharacterSet = str | MutableSequence[str]


def read_in_one_walk(encoded: bytes, start: int, encoding: Encoding) -> tuple[Dataset, int] | None:
    """The dataset starting at `start`, read up to its pixel data as pydicom's `read_dataset`
    reads it (stopping where `dcmread(stop_before_pixels=True)` stops), and where the pixel data
    starts (the end when there is none), the whole object's structure checked as
    `structure.check_dataset` checks it. None when the object is to be read the usual way; what
    pydicom raises on a value it must decode here (a character set) is raised as its reader raises it."""
    walked = walk_in_one(encoded, start, encoding)
    if walked is None:
        return None
    elements, position = walked
    return dataset_of(elements, encoding.implicit), position


def walk_in_one(
    encoded: bytes, start: int, encoding: Encoding, keep: frozenset[int] | None = None
) -> tuple[Elements, int] | None:
    """`read_in_one_walk`'s elements, as pydicom's reader makes them, before they are put in a
    dataset (`dataset_of`), and where the pixel data starts; None as there. With `keep`, only the
    elements of those tags are made, under their tags as plain integers (`walk_header`)."""
    if encoding.order != "<" or not begins_as_announced(encoded, start, encoding.implicit):
        return None
    try:
        elements, position = walk_header(encoded, start, encoding, keep)
        walk(encoded, position, len(encoded), encoding, 0, until_item_end=False)  # pixel data and after
    except EncodingMismatch:
        return None
    return elements, position


def begins_as_announced(encoded: bytes, start: int, implicit: bool) -> bool:
    """Whether the first element looks encoded as announced to pydicom's reader, which looks at
    its VR bytes and reads the whole dataset the other way when they say otherwise."""
    value_representation = encoded[start + 4 : start + 6]
    if len(value_representation) < 2:
        return False
    looks_explicit = all(0x40 < byte < 0x5B for byte in value_representation)
    return looks_explicit != implicit


def walk_header(
    encoded: bytes, start: int, encoding: Encoding, keep: frozenset[int] | None = None
) -> tuple[Elements, int]:
    """The elements before the pixel data and where the walk stopped; raises EncodingMismatch where
    the structure breaks (or runs past the end). With `keep`, only the elements of those tags are
    made (every element is walked and checked all the same), under their tags as plain integers:
    looking up an integer among `BaseTag` keys runs `BaseTag.__eq__`, in Python, and a sequence
    not kept (the functional groups of an enhanced object, a report's content) is not parsed."""
    elements: Elements = {}
    position, end, previous = start, len(encoded), -1
    character_set: bytes | None = None  # the Specific Character Set as received, for the sequences pydicom reads
    implicit, by_number = encoding.implicit, keep is not None
    while position < end:
        tag, vr, length, value_start = element_start(encoded, position, end, implicit)
        if tag <= previous:
            raise EncodingMismatch("an element out of order")
        if tag in PIXEL_TAGS:
            return elements, position
        previous = tag
        kept = keep is None or tag in keep
        if length == UNDEFINED_LENGTH:
            value_representation = vr.encode("ascii") if vr else b""
            after = undefined_length_value(encoded, value_start, end, encoding, 0, tag, value_representation)
            if kept:
                encodings = sequence_encodings(character_set)
                elements[tag if by_number else BaseTag(tag)] = element_read_by_pydicom(
                    encoded, position, implicit, encodings
                )
            position = after
            continue
        position = value_start + length
        if position > end:
            raise EncodingMismatch("an element runs past the end")
        if tag == CHARACTER_SET:
            character_set = encoded[value_start:position]
        if kept:
            value = encoded[value_start:position] if length else empty_value_for_VR(vr, raw=True)
            key = BaseTag(tag)
            element = RawDataElement(key, vr, length, value, value_start, implicit, True)  # type: ignore[arg-type]
            elements[tag if by_number else key] = element
    return elements, position


def sequence_encodings(character_set: bytes | None) -> CharacterSet:
    """The encodings pydicom's element reader is given for a sequence after a Specific Character
    Set received as `character_set` (None: none received, pydicom's default)."""
    return default_encoding if character_set is None else list(received_encodings(character_set))


@functools.lru_cache(maxsize=64)
def received_encodings(character_set: bytes) -> tuple[str, ...]:
    """The encodings pydicom's reader takes from a Specific Character Set's bytes for what follows
    it, remembered (`character_set_of` gives the dataset's own, converted as its element)."""
    return tuple(convert_encodings(convert_string(character_set, True)))


def element_start(encoded: bytes, position: int, end: int, implicit: bool) -> tuple[int, str | None, int, int]:
    """(tag, VR as pydicom names it, length, where the value starts) of a little-endian element
    that is no item or delimiter: `structure.element_header`'s reading, with its refusals."""
    if position + 8 > end:
        raise EncodingMismatch("element header cut short")
    if implicit:
        group, element, length = IMPLICIT_HEADER(encoded, position)
        vr = None
    else:
        group, element, value_representation, length = EXPLICIT_HEADER(encoded, position)
        vr = VR_NAMES.get(value_representation)
        if vr is None:
            raise EncodingMismatch("no valid VR")
        if value_representation in LONG_LENGTH:
            if position + 12 > end:
                raise EncodingMismatch("element header cut short")
            return group << 16 | element, vr, LONG_LENGTH_FIELD(encoded, position + 8)[0], position + 12
    if group == 0xFFFE:
        raise EncodingMismatch("an item or delimiter outside a sequence")
    return group << 16 | element, vr, length, position + 8


def element_read_by_pydicom(
    encoded: bytes, position: int, implicit: bool, character_set: CharacterSet
) -> RawDataElement | DataElement:
    """The element at `position` read by pydicom's own element reader (a sequence with its items)."""
    stream = io.BytesIO(encoded)
    stream.seek(position)
    return next(data_element_generator(stream, implicit, True, encoding=character_set))


def dataset_of(elements: Elements, implicit: bool) -> Dataset:
    """The dataset of `elements` (walked without `keep`: by BaseTag), its encoding recorded as
    pydicom's `read_dataset` records it."""
    dataset = Dataset(cast("dict[BaseTag, RawDataElement | DataElement]", elements), parent_encoding=default_encoding)
    dataset.set_original_encoding(implicit, True, character_set_of(elements))
    return dataset


def character_set_of(elements: Elements) -> CharacterSet:
    """The character set pydicom's reader records for a dataset of `elements` (its
    `original_character_set`): the Python encodings of its Specific Character Set."""
    raw = elements.get(CHARACTER_SET)  # an int finds a BaseTag key too
    if not isinstance(raw, RawDataElement):
        return default_encoding
    if not isinstance(raw.value, bytes):
        return convert_encodings(convert_raw_data_element(raw).value)
    return list(encodings_of(raw.value, raw.VR, raw.is_implicit_VR))


@functools.lru_cache(maxsize=64)
def encodings_of(value: bytes, value_representation: str | None, implicit: bool) -> tuple[str, ...]:
    """The Python encodings of a Specific Character Set as received, remembered (a modality sends
    the same one in every object: its conversion was a tenth of the header's reading)."""
    raw = RawDataElement(CHARACTER_SET_TAG, value_representation, len(value), value, 0, implicit, True)
    return tuple(convert_encodings(convert_raw_data_element(raw).value))
