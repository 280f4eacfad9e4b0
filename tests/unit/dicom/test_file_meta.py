"""The File Meta Information written without pydicom is byte for byte pynetdicom's (issue 14)."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGLSLossless, generate_uid
from pynetdicom.dsutils import create_file_meta, encode_file_meta
from pynetdicom.events import Event

from appliance.dicom.file_meta import file_meta, received_file

CT = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"


@pytest.mark.parametrize("sop_class", [CT, ENHANCED_MR])
@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGLSLossless])
@pytest.mark.parametrize("instance", ["1.2.3", "1.2.34", generate_uid(), generate_uid()[:-1]])
def test_file_meta_matches_pynetdicom(sop_class: str, syntax: str, instance: str) -> None:
    expected = encode_file_meta(
        create_file_meta(sop_class_uid=sop_class, sop_instance_uid=instance, transfer_syntax=syntax)
    )
    assert file_meta(sop_class, instance, syntax) == expected


def test_received_file_matches_encoded_dataset() -> None:
    data_set = b"\x08\x00\x16\x00UI\x1a\x00" + CT.encode() + b"\x00" * (26 - len(CT))
    request = SimpleNamespace(AffectedSOPClassUID=CT, AffectedSOPInstanceUID="1.2.345", DataSet=io.BytesIO(data_set))
    event = Event(
        SimpleNamespace(),
        "EVT_C_STORE",
        {"request": request, "context": SimpleNamespace(transfer_syntax=ExplicitVRLittleEndian)},
    )  # type: ignore[arg-type]
    assert received_file(event) == event.encoded_dataset()


def test_a_uid_that_is_not_ascii_is_refused() -> None:
    with pytest.raises(UnicodeEncodeError):
        file_meta(CT, "1.2.é", ExplicitVRLittleEndian)
