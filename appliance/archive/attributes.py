"""What the index keeps of a received object, read from its header (never its pixels)."""

from __future__ import annotations

import functools
import io
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydicom import dcmread
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import read_dataset
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, PrivateTransferSyntaxes

from appliance.archive.header_walk import (
    CHARACTER_SET,
    PIXEL_TAGS,
    CharacterSet,
    Elements,
    character_set_of,
    read_in_one_walk,
    walk_in_one,
)
from appliance.archive.metadata import InstanceDocument, dataset_encoding, instance_document, member_key
from appliance.archive.structure import Encoding, EncodingMismatch, check_dataset, dataset_start, encoding_of, file_meta
from appliance.patients.names import person_name_key
from appliance.patients.national import Identifier

# PS3.5 A.4 / PS3.6: transfer syntaxes whose encoding loses information.
LOSSY_TRANSFER_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2.4.50",  # JPEG Baseline
        "1.2.840.10008.1.2.4.51",  # JPEG Extended
        "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
        "1.2.840.10008.1.2.4.91",  # JPEG 2000 (lossy allowed)
        "1.2.840.10008.1.2.4.203",  # HTJ2K (lossy allowed)
        "1.2.840.10008.1.2.4.94",  # JPIP
        "1.2.840.10008.1.2.4.95",  # JPIP deflate
        "1.2.840.10008.1.2.4.112",  # JPEG XL (lossy allowed)
        "1.2.840.10008.1.2.4.100",  # MPEG2
        "1.2.840.10008.1.2.4.101",
        "1.2.840.10008.1.2.4.102",  # MPEG-4
        "1.2.840.10008.1.2.4.103",
        "1.2.840.10008.1.2.4.104",
        "1.2.840.10008.1.2.4.105",
        "1.2.840.10008.1.2.4.106",
        "1.2.840.10008.1.2.4.107",  # HEVC
        "1.2.840.10008.1.2.4.108",
    }
)


UNDEFINED_LENGTH = 0xFFFFFFFF
# PS3.5 7.1.2: VRs with a 4-byte length in explicit VR encodings.
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


# What `attributes_from` reads of an object (a test checks it against what it asks).
INDEX_KEYWORDS = (
    "SOPInstanceUID",
    "SOPClassUID",
    "PatientID",
    "IssuerOfPatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "OtherPatientIDsSequence",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "StudyID",
    "StudyDescription",
    "ReferringPhysicianName",
    "SeriesInstanceUID",
    "Modality",
    "SeriesNumber",
    "SeriesDate",
    "SeriesTime",
    "SeriesDescription",
    "BodyPartExamined",
    "InstanceNumber",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "LossyImageCompression",
)
# The elements the C-STORE path makes of a walked header: those, and the character set.
INDEX_TAGS = frozenset({int(Tag(keyword)) for keyword in INDEX_KEYWORDS} | {CHARACTER_SET})
# The UIDs the index reads (UI in the dictionary: implicit VR elements are read as UI).
UID_KEYWORDS = frozenset({"SOPInstanceUID", "SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID"})
VALUES_KEPT = 4096
VALUES: dict[tuple[object, ...], Any] = {}  # element as received -> pydicom's value of it
ABSENT = object()


class InvalidObject(Exception):
    """The received bytes are not a usable DICOM object; the message says why (no patient data)."""


@dataclass(frozen=True)
class InstanceAttributes:
    """The index fields of one instance, decoded to Unicode whatever its character set."""

    patient_id: str
    issuer_of_patient_id: str
    patient_name: str
    patient_name_key: str
    patient_birth_date: str
    patient_sex: str
    other_patient_ids: tuple[Identifier, ...]
    study_instance_uid: str
    study_date: str
    study_time: str
    accession_number: str
    study_id: str
    study_description: str
    referring_physician_name: str
    referring_physician_name_key: str
    series_instance_uid: str
    modality: str
    series_number: int | None
    series_date: str
    series_time: str
    series_description: str
    body_part_examined: str
    sop_instance_uid: str
    sop_class_uid: str
    instance_number: int | None
    rows: int | None
    columns: int | None
    number_of_frames: int | None
    transfer_syntax_uid: str
    lossy: bool
    header: bytes
    # The instance's DICOM JSON for DICOMweb (archive.metadata); None when not made here.
    document: InstanceDocument | None = None


def read_attributes(encoded: bytes, with_document: bool = True) -> InstanceAttributes:
    """Parse the header of a DICOM file held in `encoded` (preamble, file meta, dataset), with its
    DICOM JSON unless `with_document` is False (`instance_document` never raises, so leaving it out
    changes no answer; the C-STORE path leaves it to the worker, `archive.documents`). Without
    it, an object the one walk reads gives its fields without a pydicom Dataset (`walked_attributes`).

    Raises InvalidObject when it cannot be parsed or lacks a UID the archive needs.
    """
    try:
        walked = None if with_document else walked_attributes(encoded)
        if walked is not None:
            return walked
        dataset, position = checked_header(encoded)
        attributes = attributes_of(dataset, header_of(encoded, dataset, position))
        if not with_document:
            return attributes
        return replace(attributes, document=instance_document(dataset, has_pixels(dataset, encoded, position)))
    except InvalidObject:
        raise
    except Exception as error:  # pydicom raises many kinds of errors on hostile input
        raise InvalidObject(f"cannot parse the dataset: {type(error).__name__}") from error


def checked_header(encoded: bytes) -> tuple[Dataset, int]:
    """The dataset of a DICOM file up to its pixel data and where the pixel data starts, the
    whole object checked (its encoding, no element cut short; InvalidObject when it fails): in one
    walk (`header_walk`) when the object allows it, else read (`read_header`) and then checked."""
    found = fast_meta(encoded)
    walked = read_in_one_walk(encoded, found[2], found[1]) if found is not None else None
    if found is None or walked is None:
        dataset, start, position = read_header(encoded)
        check_encoding(encoded, str(dataset.file_meta.get("TransferSyntaxUID", "")), start)
        check_complete(dataset, encoded, position)
        return dataset, position
    (dataset, position), (transfer_syntax, encoding, _start) = walked, found
    with_file_meta(dataset, transfer_syntax, encoding)
    if position < len(encoded):
        check_pixel_data(encoded, position, transfer_syntax)
    return dataset, position


def walked_attributes(encoded: bytes) -> InstanceAttributes | None:
    """The index fields of an object the one walk reads (`header_walk.walk_in_one`), taken from its
    elements without making a pydicom Dataset and its file meta, and only the elements the index
    reads made at all (`INDEX_TAGS`; the walk checks every one). Issue 14: a warm CT header took
    191 us to read with them, 135 without, 91 to 101 with only those; storing 200 two-image
    studies took a tenth less CPU per image.
    Each value is pydicom's: the element converted as `Dataset.__getitem__` converts it, with the
    character set the dataset would record (the elements read here are public and of a VR that
    does not depend on other elements, so the dataset has no part in it); the four UIDs are the
    text of pydicom's UID, taken from their bytes. None when the object is read the usual way
    (`checked_header`)."""
    found = fast_meta(encoded)
    walked = walk_in_one(encoded, found[2], found[1], INDEX_TAGS) if found is not None else None
    if found is None or walked is None:
        return None
    (elements, position), transfer_syntax = walked, found[0]
    if position < len(encoded):
        check_pixel_data(encoded, position, transfer_syntax)
    character_set = character_set_of(elements)
    encoding = tuple(character_set) if isinstance(character_set, list) else character_set

    def value(keyword: str) -> Any:
        return walked_value(elements, keyword, character_set, encoding)

    return attributes_from(value, str(transfer_syntax), encoded[:position])


def read_header(encoded: bytes) -> tuple[Dataset, int | None, int]:
    """The dataset of a DICOM file up to its pixel data, where the dataset starts (None when
    `dcmread` read it), and where the pixel data starts.

    pydicom's `dcmread` reads the file meta information into a dataset of its own and wraps the
    result in a FileDataset: half its time per image, for one value this module needs, the transfer
    syntax. The file meta is walked here instead (`structure.file_meta`), and pydicom reads the
    dataset as `dcmread` would: same reader, same stop before the pixels, same encoding recorded.
    A file whose file meta cannot be walked, names no transfer syntax, or names a deflated or
    private one, is read by `dcmread` whole, with its errors."""
    found = fast_meta(encoded)
    if found is None:
        stream = io.BytesIO(encoded)
        return dcmread(stream, stop_before_pixels=True), None, stream.tell()
    transfer_syntax, encoding, start = found
    stream = io.BytesIO(encoded)
    stream.seek(start)
    dataset = read_dataset(stream, encoding.implicit, encoding.order == "<", stop_when=at_pixels)
    with_file_meta(dataset, transfer_syntax, encoding)
    return dataset, start, stream.tell()


def with_file_meta(dataset: Dataset, transfer_syntax: UID, encoding: Encoding) -> None:
    """The file meta and encoding `dcmread` gives a dataset it reads (of the file meta, the one
    value this module uses)."""
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = transfer_syntax
    dataset.set_original_encoding(encoding.implicit, encoding.order == "<", dataset.original_character_set)


def fast_meta(encoded: bytes) -> tuple[UID, Encoding, int] | None:
    """(transfer syntax, its encoding, where the dataset starts) when `read_header` may read the
    dataset itself; None when `dcmread` must."""
    try:
        transfer_syntax, start = file_meta(encoded)
    except (EncodingMismatch, ValueError):
        return None
    encoding = encoding_of(transfer_syntax) if transfer_syntax else None
    if transfer_syntax is None or encoding is None or transfer_syntax in PrivateTransferSyntaxes:
        return None
    return UID(transfer_syntax), encoding, start


def at_pixels(tag: BaseTag, value_representation: str | None, length: int) -> bool:
    """Where `dcmread(stop_before_pixels=True)` stops: (Float, Double Float) Pixel Data."""
    return tag in PIXEL_TAGS


def check_encoding(encoded: bytes, transfer_syntax: str, start: int | None = None) -> None:
    """Refuse bytes that do not follow the transfer syntax the file meta names (`structure`);
    `start`: where the dataset starts, when `read_header` walked the file meta already."""
    try:
        check_dataset(encoded, dataset_start(encoded) if start is None else start, transfer_syntax)
    except EncodingMismatch as error:
        raise InvalidObject(f"not encoded in {transfer_syntax_name(transfer_syntax)}: {error}") from error


def transfer_syntax_name(transfer_syntax: str) -> str:
    name = UID(transfer_syntax).name if transfer_syntax else ""
    return name if name and name != transfer_syntax else f"transfer syntax {transfer_syntax or '(none)'}"


def check_complete(dataset: Dataset, encoded: bytes, pixel_position: int) -> None:
    """Refuse an object whose elements claim more bytes than it has (pydicom reads them silently)."""
    for tag in list(dataset.keys()):
        raw = dataset.get_item(tag)
        if is_truncated(raw):
            raise InvalidObject(f"element {tag} is truncated")
    if pixel_position < len(encoded):
        check_pixel_data(encoded, pixel_position, dataset.file_meta.TransferSyntaxUID)


def is_truncated(raw: object) -> bool:
    if not isinstance(raw, RawDataElement) or not isinstance(raw.value, bytes):
        return False
    return raw.length != UNDEFINED_LENGTH and len(raw.value) != raw.length


def check_pixel_data(encoded: bytes, position: int, transfer_syntax: UID) -> None:
    """The pixel data element must hold all the bytes its length (or its fragments) announce."""
    if transfer_syntax == DeflatedExplicitVRLittleEndian:
        return  # the deflated stream was read whole by the parser
    little = transfer_syntax.is_little_endian
    order = "<" if little else ">"
    if transfer_syntax.is_implicit_VR:
        value_start, (length,) = position + 8, struct.unpack_from(f"{order}I", encoded, position + 4)
    elif encoded[position + 4 : position + 6] in LONG_VRS:
        value_start, (length,) = position + 12, struct.unpack_from(f"{order}I", encoded, position + 8)
    else:
        value_start, (length,) = position + 8, struct.unpack_from(f"{order}H", encoded, position + 6)
    if length != UNDEFINED_LENGTH:
        if value_start + length > len(encoded):
            raise InvalidObject("pixel data is truncated")
        return
    check_fragments(encoded, value_start, order)


def check_fragments(encoded: bytes, position: int, order: str) -> None:
    """Encapsulated pixel data (PS3.5 A.4): items up to a sequence delimiter, all within the bytes."""
    while position + 8 <= len(encoded):
        group, element, length = struct.unpack_from(f"{order}HHI", encoded, position)
        if (group, element) == (0xFFFE, 0xE0DD):
            return
        if (group, element) != (0xFFFE, 0xE000) or position + 8 + length > len(encoded):
            break
        position += 8 + length
    raise InvalidObject("encapsulated pixel data is truncated")


def has_pixels(dataset: Dataset, encoded: bytes, position: int) -> bool:
    """Whether pixel data follows the header (a deflated object's: whether it describes an image)."""
    if dataset.file_meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
        return "Rows" in dataset
    return position < len(encoded)


def header_of(encoded: bytes, dataset: Dataset, position: int) -> bytes:
    """The bytes before the pixel data (the whole object when deflated or when there are no pixels)."""
    transfer_syntax = dataset.file_meta.get("TransferSyntaxUID")
    if transfer_syntax == DeflatedExplicitVRLittleEndian or position <= 0:
        return encoded
    return encoded[:position]


def attributes_of(dataset: Dataset, header: bytes) -> InstanceAttributes:
    encoding = dataset_encoding(dataset)

    def value(keyword: str) -> Any:
        return element_value(dataset, keyword, encoding)

    return attributes_from(value, str(dataset.file_meta.get("TransferSyntaxUID", "") or ""), header)


def attributes_from(value: Callable[[str], Any], transfer_syntax_uid: str, header: bytes) -> InstanceAttributes:
    """The index fields, `value(keyword)` giving pydicom's value of each top-level element (None
    when absent); raises InvalidObject when a UID the archive needs is missing or invalid."""
    sop_instance_uid = required_uid(value, "SOPInstanceUID")
    sop_class_uid = required_uid(value, "SOPClassUID")
    if not transfer_syntax_uid:
        raise InvalidObject("no Transfer Syntax UID in the file meta information")
    patient_name = text_of(value("PatientName"))
    referring = text_of(value("ReferringPhysicianName"))
    return InstanceAttributes(
        patient_id=text_of(value("PatientID")),
        issuer_of_patient_id=text_of(value("IssuerOfPatientID")),
        patient_name=patient_name,
        patient_name_key=name_key(patient_name),
        patient_birth_date=text_of(value("PatientBirthDate")),
        patient_sex=text_of(value("PatientSex")),
        other_patient_ids=other_patient_ids(value("OtherPatientIDsSequence")),
        study_instance_uid=required_uid(value, "StudyInstanceUID"),
        study_date=text_of(value("StudyDate")),
        study_time=text_of(value("StudyTime")),
        accession_number=text_of(value("AccessionNumber")),
        study_id=text_of(value("StudyID")),
        study_description=text_of(value("StudyDescription")),
        referring_physician_name=referring,
        referring_physician_name_key=name_key(referring),
        series_instance_uid=required_uid(value, "SeriesInstanceUID"),
        modality=text_of(value("Modality")),
        series_number=integer_of(value("SeriesNumber")),
        series_date=text_of(value("SeriesDate")),
        series_time=text_of(value("SeriesTime")),
        series_description=text_of(value("SeriesDescription")),
        body_part_examined=text_of(value("BodyPartExamined")),
        sop_instance_uid=sop_instance_uid,
        sop_class_uid=sop_class_uid,
        instance_number=integer_of(value("InstanceNumber")),
        rows=integer_of(value("Rows")),
        columns=integer_of(value("Columns")),
        number_of_frames=integer_of(value("NumberOfFrames")),
        transfer_syntax_uid=transfer_syntax_uid,
        lossy=lossy_by(transfer_syntax_uid, text_of(value("LossyImageCompression"))),
        header=header,
    )


def element_value(dataset: Dataset, keyword: str, encoding: object) -> Any:
    """pydicom's value of a top-level element (None when absent). The value of an element as
    received is kept (`VALUES`, keyed as `metadata.MEMBERS`): the images of a series share most of
    their header, so that most elements are converted once per series, not once per image."""
    raw = dataset.get_item(keyword_tag(keyword), keep_deferred=True)
    if raw is None:
        return None
    key = member_key(raw, encoding)
    found = VALUES.get(key, ABSENT) if key is not None else ABSENT
    if found is not ABSENT:
        return found
    found = dataset[keyword_tag(keyword)].value
    remember(key, found)
    return found


def walked_value(elements: Elements, keyword: str, character_set: CharacterSet, encoding: object) -> Any:
    """`element_value` of the element the one walk made (`walked_attributes`)."""
    raw = elements.get(keyword_number(keyword))
    if raw is None:
        return None
    if isinstance(raw, DataElement):  # read by pydicom's element reader: converted already
        return raw.value
    if keyword in UID_KEYWORDS and raw.VR in ("UI", None) and isinstance(raw.value, bytes) and b"\\" not in raw.value:
        return raw.value.decode("latin-1").rstrip("\0 ").strip()  # pydicom's UID, as text (convert_UI)
    key = member_key(raw, encoding)
    found = VALUES.get(key, ABSENT) if key is not None else ABSENT
    if found is not ABSENT:
        return found
    found = convert_raw_data_element(raw, encoding=character_set).value
    remember(key, found)
    return found


def remember(key: tuple[object, ...] | None, value: Any) -> None:
    """Keep `value` as the value of the element `key` names (`VALUES`, emptied when full)."""
    if key is None:
        return
    if len(VALUES) >= VALUES_KEPT:
        VALUES.clear()
    VALUES[key] = value


@functools.cache
def keyword_tag(keyword: str) -> BaseTag:
    return Tag(keyword)


@functools.cache
def keyword_number(keyword: str) -> int:
    """The tag of `keyword` as a plain int (`walk_header`'s `keep` keys)."""
    return int(Tag(keyword))


@functools.lru_cache(maxsize=1024)
def name_key(name: str) -> str:
    """`person_name_key`, remembered (a series repeats its names)."""
    return person_name_key(name)


def other_patient_ids(sequence: Sequence[Dataset] | None) -> tuple[Identifier, ...]:
    """The Other Patient IDs Sequence's (PS3.3 C.7.1.1) identifiers: identifier, issuer, its OID,
    type (the INS, P3); () when the sequence is absent (None)."""
    if sequence is None:
        return ()
    found = []
    for item in sequence:
        qualifiers = item.get("IssuerOfPatientIDQualifiersSequence") or []
        oid = text(qualifiers[0], "UniversalEntityID") if qualifiers else ""
        value = text(item, "PatientID")
        if value:
            found.append(Identifier(value, text(item, "IssuerOfPatientID"), oid, ""))
    return tuple(found)


def required_uid(value: Callable[[str], Any], keyword: str) -> str:
    """The UID `value(keyword)` gives; raises InvalidObject when it is missing or not a UID."""
    uid = text_of(value(keyword))
    if not uid:
        raise InvalidObject(f"{keyword} is missing or empty")
    if not valid_uid(uid):
        raise InvalidObject(f"{keyword} is not a valid UID")
    return uid


@functools.lru_cache(maxsize=1024)
def valid_uid(uid: str) -> bool:
    """PS3.5 9.1, remembered (a series repeats its study, series and class UIDs)."""
    return len(uid) <= 64 and UID(uid).is_valid


def text(dataset: Dataset, keyword: str) -> str:
    """A single-valued text attribute as a stripped Unicode string ('' when absent)."""
    return text_of(dataset.get(keyword))


def text_of(value: Any) -> str:
    """An element's value as a stripped Unicode string, multiple values joined ('' for None)."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(part) for part in value).strip()
    return str(value).strip()


def integer(dataset: Dataset, keyword: str) -> int | None:
    return integer_of(dataset.get(keyword))


def integer_of(value: Any) -> int | None:
    """An element's value as an integer; None when absent, empty or not one integer."""
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def is_lossy(dataset: Dataset, transfer_syntax_uid: str) -> bool:
    """Lossy when the encoding is lossy or the object says it was lossy-compressed once (0028,2110)."""
    return lossy_by(transfer_syntax_uid, text(dataset, "LossyImageCompression"))


def lossy_by(transfer_syntax_uid: str, lossy_image_compression: str) -> bool:
    """The rule: a lossy encoding, or Lossy Image Compression (0028,2110) "01" (PS3.3 C.7.6.1.1.5)."""
    return transfer_syntax_uid in LOSSY_TRANSFER_SYNTAXES or lossy_image_compression == "01"
