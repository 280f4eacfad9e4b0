"""The archive reads a received object's header itself up to pydicom's dataset reader
(`attributes.read_header`): it must read every object as `dcmread` reads it, and leave to `dcmread`
those whose file meta it does not walk."""

from __future__ import annotations

import io
import struct

import pytest
from datagen import PATIENTS, compressed_as, encoded, make_enhanced_sr, make_instance
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    JPEGLSLossless,
    RLELossless,
)

from appliance.archive import attributes, structure
from appliance.archive.attributes import InstanceAttributes, InvalidObject, read_attributes, read_header


def both_ways(data: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[object, object]:
    """read_attributes of `data` as the archive reads it, then with `dcmread` reading it whole."""

    def attributes_or_error() -> InstanceAttributes | str:
        attributes.VALUES.clear()
        try:
            return read_attributes(data)
        except InvalidObject as error:
            return str(error)

    ours = attributes_or_error()
    with monkeypatch.context() as patched:
        patched.setattr(attributes, "fast_meta", lambda encoded: None)
        theirs = attributes_or_error()
    return ours, theirs


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


def test_a_structured_report_with_nested_sequences_is_read_as_dcmread_reads_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    images = [make_instance("CT", PATIENTS[0], instance_number=number) for number in (1, 2)]
    data = encoded(make_enhanced_sr(images))
    ours, theirs = both_ways(data, monkeypatch)
    assert isinstance(ours, InstanceAttributes) and ours.rows is None and ours == theirs


def without_transfer_syntax(data: bytes) -> bytes:
    """`data` with the Transfer Syntax UID element of its file meta renamed to a private one of
    group 0002 (a file meta naming no transfer syntax), the group length kept."""
    position = data.index(struct.pack("<HH", 0x0002, 0x0010) + b"UI")
    return data[:position] + struct.pack("<HH", 0x0002, 0x0011) + data[position + 4 :]


def cases() -> dict[str, bytes]:
    data = encoded(make_instance("MR", PATIENTS[2]))
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
