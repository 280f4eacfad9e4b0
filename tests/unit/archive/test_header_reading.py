"""The archive reads a received object's header itself: a little-endian object in one walk that also
checks its structure (`header_walk`), any other up to pydicom's dataset reader
(`attributes.read_header`). Either way it must read every object as `dcmread` reads it, refuse what
the structure checks refuse in the same words, and leave to `dcmread` the objects whose file meta it
does not walk."""

from __future__ import annotations

import io
import struct
from dataclasses import replace

import pytest
from datagen import PATIENTS, compressed_as, encoded, make_enhanced_sr, make_instance
from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.tag import BaseTag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    JPEGLSLossless,
    RLELossless,
)

from appliance.archive import attributes, structure
from appliance.archive.attributes import InstanceAttributes, InvalidObject, read_attributes, read_header
from appliance.archive.header_walk import read_in_one_walk


def both_ways(data: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[object, object]:
    """read_attributes of `data` as the archive reads it, then with `dcmread` reading it whole;
    the archive's own reading without the one walk answers as with it, and so does the C-STORE's
    reading (no DICOM JSON: `walked_attributes` when the one walk reads the object)."""

    def attributes_or_error(with_document: bool = True) -> InstanceAttributes | str:
        attributes.VALUES.clear()
        try:
            return read_attributes(data, with_document)
        except InvalidObject as error:
            return str(error)

    ours = attributes_or_error()
    without_document = attributes_or_error(with_document=False)  # read without a Dataset when walked
    assert without_document == (replace(ours, document=None) if isinstance(ours, InstanceAttributes) else ours)
    with monkeypatch.context() as patched:
        patched.setattr(attributes, "read_in_one_walk", lambda *arguments: None)
        assert attributes_or_error() == ours
        patched.setattr(attributes, "fast_meta", lambda encoded: None)
        theirs = attributes_or_error()
    return ours, theirs


def walked(data: bytes) -> tuple[Dataset, int] | None:
    """What the one walk makes of `data`: its dataset and where its pixel data starts, or None."""
    found = attributes.fast_meta(data)
    if found is None:
        return None
    transfer_syntax, encoding, start = found
    result = read_in_one_walk(data, start, encoding)
    if result is not None:
        attributes.with_file_meta(result[0], transfer_syntax, encoding)
    return result


def assert_read_as_pydicom_reads(data: bytes) -> None:
    """The one walk gives the dataset pydicom's reader gives, element for element (raw elements
    included), with the same encoding, and stops where it stops."""
    result = walked(data)
    assert result is not None
    dataset, position = result
    reference, _start, reference_position = read_header(data)
    tags = list(reference.keys())
    assert position == reference_position and list(dataset.keys()) == tags
    assert [dataset.get_item(tag) for tag in tags] == [reference.get_item(tag) for tag in tags]
    assert dataset == reference
    assert (dataset.is_implicit_VR, dataset.is_little_endian) == (reference.is_implicit_VR, reference.is_little_endian)
    assert dataset.original_character_set == reference.original_character_set


def in_syntax(dataset: Dataset, transfer_syntax: str) -> bytes:
    if transfer_syntax in (JPEGLSLossless, RLELossless, DeflatedExplicitVRLittleEndian):
        return encoded(compressed_as(dataset, transfer_syntax))
    dataset.file_meta.TransferSyntaxUID = transfer_syntax
    return encoded(dataset)


SYNTAXES = [
    "1.2.840.10008.1.2.1",
    ImplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEGLSLossless,
    RLELossless,
    DeflatedExplicitVRLittleEndian,
]


@pytest.mark.parametrize("transfer_syntax", SYNTAXES)
def test_an_object_is_read_as_dcmread_reads_it(transfer_syntax: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = in_syntax(make_instance("CT", PATIENTS[1]), transfer_syntax)
    ours, theirs = both_ways(data, monkeypatch)
    assert isinstance(ours, InstanceAttributes) and ours.document is not None
    assert ours == theirs
    dataset, start, position = read_header(data)
    stream = io.BytesIO(data)
    reference = dcmread(stream, stop_before_pixels=True)
    deflated = transfer_syntax == DeflatedExplicitVRLittleEndian
    assert position == stream.tell() and (deflated or position < len(data))  # deflated: inflated whole
    assert dataset == reference and dataset.original_character_set == reference.original_character_set
    assert str(dataset.file_meta.TransferSyntaxUID) == transfer_syntax
    assert start == (None if deflated else structure.dataset_start(data))
    assert (attributes.fast_meta(data) is None) is deflated  # a deflated dataset is dcmread's to inflate
    if transfer_syntax in (ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian):
        assert walked(data) is None  # read the usual way
    else:
        assert_read_as_pydicom_reads(data)


def test_a_structured_report_with_nested_sequences_is_read_as_dcmread_reads_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    images = [make_instance("CT", PATIENTS[0], instance_number=number) for number in (1, 2)]
    data = encoded(make_enhanced_sr(images))
    ours, theirs = both_ways(data, monkeypatch)
    assert isinstance(ours, InstanceAttributes) and ours.rows is None and ours == theirs
    assert_read_as_pydicom_reads(data)  # its sequences, of undefined length, read by pydicom


@pytest.mark.parametrize(
    ("character_set", "name"),
    [
        ("ISO_IR 100", "Müller-Lefèvre^Zoé"),
        ("ISO_IR 192", "Ñúñez^Ana=山田^花子"),
        (["", "ISO 2022 IR 87"], "Yamada^Tarou=山田^太郎=やまだ^たろう"),
    ],
)
def test_names_in_each_character_set_are_read_as_dcmread_reads_them(
    character_set: str | list[str], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = make_instance("CT", PATIENTS[0])
    dataset.SpecificCharacterSet = character_set
    dataset.PatientName = name
    dataset.ReferringPhysicianName = name
    data = encoded(dataset)
    ours, theirs = both_ways(data, monkeypatch)
    assert isinstance(ours, InstanceAttributes) and ours == theirs and ours.patient_name == name
    assert_read_as_pydicom_reads(data)


def test_private_and_empty_elements_in_implicit_vr_are_read_as_dcmread_reads_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dataset = make_instance("MR", PATIENTS[1])
    dataset.private_block(0x0029, "APPLIANCE TEST", create=True).add_new(0x10, "LO", "réglage")
    dataset.StudyDescription = ""
    dataset.add_new(0x00181030, "LO", None)  # Protocol Name, empty
    dataset.OtherPatientIDsSequence = [Dataset()]
    dataset.OtherPatientIDsSequence[0].PatientID = "ALT-7"
    dataset.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    data = encoded(dataset)
    ours, theirs = both_ways(data, monkeypatch)
    assert isinstance(ours, InstanceAttributes) and ours == theirs
    assert [identifier.value for identifier in ours.other_patient_ids] == ["ALT-7"]
    assert_read_as_pydicom_reads(data)


def without_transfer_syntax(data: bytes) -> bytes:
    """`data` with the Transfer Syntax UID element of its file meta renamed to a private one of
    group 0002 (a file meta naming no transfer syntax), the group length kept."""
    position = data.index(struct.pack("<HH", 0x0002, 0x0010) + b"UI")
    return data[:position] + struct.pack("<HH", 0x0002, 0x0011) + data[position + 4 :]


def element_position(data: bytes, group: int, element: int) -> int:
    return data.index(struct.pack("<HH", group, element), 132 + 12)


def swapped_elements(data: bytes) -> bytes:
    """`data` with Study Date and Series Date (same length, in that order) swapped: out of order."""
    study, series = element_position(data, 0x0008, 0x0020), element_position(data, 0x0008, 0x0021)
    return (
        data[:study]
        + data[series : series + 16]
        + data[study + 16 : series]
        + data[study : study + 16]
        + data[series + 16 :]
    )


def cases() -> dict[str, bytes]:
    data = encoded(make_instance("MR", PATIENTS[2]))
    modality = element_position(data, 0x0008, 0x0060)
    return {
        "truncated in the header": data[:600],
        "truncated in the pixels": data[: len(data) - 1000],
        "no DICM prefix": data[:128] + b"DICX" + data[132:],
        "file meta cut short": data[:140],
        "no transfer syntax": without_transfer_syntax(data),
        "a transfer syntax that is not ASCII": data.replace(b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008.1.2.\xe9\x00"),
        "explicit bytes under an implicit file meta": data.replace(
            b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008.1.2\x00\x00\x00"
        ),
        "elements out of order": swapped_elements(data),
        "a VR that is not one": data[: modality + 4] + b"XY" + data[modality + 6 :],
        "a delimiter among the elements": data[:modality] + struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + data[modality:],
        "a few bytes after the pixel data": data + b"\x00\x00\x00",
    }


@pytest.mark.parametrize("case", list(cases()))
def test_a_hostile_object_gets_the_answer_dcmread_gave(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ours, theirs = both_ways(cases()[case], monkeypatch)
    assert ours == theirs


def test_only_a_file_meta_the_walk_reads_takes_the_short_way() -> None:
    found = cases()
    assert attributes.fast_meta(found["truncated in the pixels"]) is not None
    for case in ("no DICM prefix", "file meta cut short", "no transfer syntax", "a transfer syntax that is not ASCII"):
        assert attributes.fast_meta(found[case]) is None, case


def test_the_one_walk_leaves_every_hostile_object_to_the_usual_reading() -> None:
    for case, data in cases().items():
        assert walked(data) is None, case


def test_an_object_pydicom_would_read_in_the_other_vr_is_left_to_the_usual_reading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Implicit VR bytes whose first element's length looks like a VR: pydicom's reader switches to
    explicit VR on it, so the one walk does not read it."""
    dataset = make_instance("CT", PATIENTS[0])
    del dataset.SpecificCharacterSet
    dataset.add_new(0x00080001, "UL", 0)  # a retired element first, its 4-byte length 4 ...
    dataset.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    data = bytearray(encoded(dataset))
    start = structure.dataset_start(bytes(data))
    assert walked(bytes(data)) is not None
    data[start + 4 : start + 6] = b"UL"  # ... now reading as a VR
    assert walked(bytes(data)) is None
    ours, theirs = both_ways(bytes(data), monkeypatch)
    assert ours == theirs


def defined_length_sequence(items: list[Dataset], implicit: bool) -> bytes:
    """A sequence's value with items of defined length (pydicom writes undefined lengths)."""
    value = b""
    for item in items:
        stream = DicomBytesIO()
        stream.is_implicit_VR, stream.is_little_endian = implicit, True
        write_dataset(stream, item)
        value += struct.pack("<HHI", 0xFFFE, 0xE000, len(stream.getvalue())) + stream.getvalue()
    return value


@pytest.mark.parametrize("transfer_syntax", ["1.2.840.10008.1.2.1", ImplicitVRLittleEndian])
@pytest.mark.parametrize("defined_length", [True, False])
def test_other_patient_ids_in_latin_1_are_read_as_dcmread_reads_them(
    transfer_syntax: str, defined_length: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The INS of a French modality (PS3.3 C.7.1.1, the issuer's OID nested once more), its issuer
    in Latin-1: a sequence of undefined length is read by pydicom's element reader, one of defined
    length is converted from the walked element."""
    qualifiers = Dataset()
    qualifiers.UniversalEntityID = "1.2.250.1.213.1.4.8"
    qualifiers.UniversalEntityIDType = "ISO"
    identifier = Dataset()
    identifier.PatientID = "279035121518989"
    identifier.IssuerOfPatientID = "ASIP-SANTÉ-INS-NIR"
    identifier.TypeOfPatientID = "TEXT"
    identifier.IssuerOfPatientIDQualifiersSequence = [qualifiers]
    dataset = make_instance("CR", PATIENTS[3])
    dataset.SpecificCharacterSet = "ISO_IR 100"
    dataset.OtherPatientIDsSequence = [identifier]
    implicit = transfer_syntax == ImplicitVRLittleEndian
    if defined_length:
        value = defined_length_sequence([identifier], implicit)
        dataset[0x00101002] = RawDataElement(
            BaseTag(0x00101002), None if implicit else "SQ", len(value), value, 0, implicit, True
        )
    dataset.file_meta.TransferSyntaxUID = transfer_syntax
    data = encoded(dataset)
    ours, theirs = both_ways(data, monkeypatch)
    assert isinstance(ours, InstanceAttributes) and ours == theirs
    assert [(found.value, found.namespace, found.universal_id) for found in ours.other_patient_ids] == [
        ("279035121518989", "ASIP-SANTÉ-INS-NIR", "1.2.250.1.213.1.4.8")
    ]
    assert_read_as_pydicom_reads(data)


@pytest.mark.parametrize(
    "value",
    [b"1.2.250.1.59.7 ", b"1.2.250.1.59\x00", b" 1.2.250.1.59.7", b"1.2.3\\1.2.4", b"1.2.\xe93", b"\t1.2.3\t", b""],
)
@pytest.mark.parametrize("transfer_syntax", ["1.2.840.10008.1.2.1", ImplicitVRLittleEndian])
def test_a_study_uid_as_received_is_read_as_dcmread_reads_it(
    value: bytes, transfer_syntax: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The C-STORE's reading takes a UID's text from its bytes, not through pydicom's UID: padded,
    multi-valued, not ASCII or empty, it gives the answer pydicom's value gives."""
    dataset = make_instance("DX", PATIENTS[0])
    implicit = transfer_syntax == ImplicitVRLittleEndian
    tag = BaseTag(0x0020000D)
    dataset[tag] = RawDataElement(tag, None if implicit else "UI", len(value), value, 0, implicit, True)
    dataset.file_meta.TransferSyntaxUID = transfer_syntax
    data = encoded(dataset)
    ours, theirs = both_ways(data, monkeypatch)
    assert ours == theirs
    assert walked(data) is not None


def test_the_c_store_reading_keeps_every_element_the_index_reads() -> None:
    """The C-STORE path makes only the elements of `INDEX_KEYWORDS` (`walk_header`'s `keep`): they
    must be all that `attributes_from` asks for, or a field would be read as absent."""
    asked: list[str] = []

    def value(keyword: str) -> object:
        asked.append(keyword)
        return "1.2.250.1.59.1" if keyword.endswith("UID") else None

    attributes.attributes_from(value, "1.2.840.10008.1.2.1", b"")
    assert sorted(asked) == sorted(attributes.INDEX_KEYWORDS)
