"""The retrieve rule: which syntax an object goes out in, and what is sent (stored bytes, decoded,
re-encoded losslessly, coerced)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from datagen import PATIENTS, encoded, make_instance
from pydicom import dcmread
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

from appliance.archive.retrieve import (
    CannotSend,
    Coercion,
    Delivery,
    RetrieveItem,
    choose_syntax,
    payload,
    stored_identity,
)


def test_stored_syntax_first_then_uncompressed_then_a_lossless_encoding() -> None:
    assert choose_syntax(JPEGLSLossless, [ExplicitVRLittleEndian, JPEGLSLossless]) == JPEGLSLossless
    assert choose_syntax(JPEGLSLossless, [JPEG2000Lossless, ImplicitVRLittleEndian]) == ImplicitVRLittleEndian
    assert choose_syntax(ExplicitVRLittleEndian, [JPEG2000Lossless]) == JPEG2000Lossless
    assert choose_syntax(ExplicitVRLittleEndian, [RLELossless]) == RLELossless


def test_never_lossy_and_never_a_syntax_the_archive_cannot_write() -> None:
    with pytest.raises(CannotSend, match="stored as Explicit VR Little Endian; the receiver accepted JPEG Baseline"):
        choose_syntax(ExplicitVRLittleEndian, [JPEGBaseline8Bit])
    with pytest.raises(CannotSend):
        choose_syntax(JPEGLSLossless, [JPEGLosslessSV1])
    assert choose_syntax(JPEGBaseline8Bit, [JPEGBaseline8Bit]) == JPEGBaseline8Bit  # a lossy original, as received


def stored(tmp_path: Path, syntax: str) -> tuple[Path, RetrieveItem, np.ndarray]:
    dataset = make_instance("CT", PATIENTS[0])
    pixels = dataset.pixel_array.copy()
    if syntax != ExplicitVRLittleEndian:
        dataset.compress(syntax, encoding_plugin="pyjpegls", generate_instance_uid=False)
    path = tmp_path / "stored.dcm"
    dataset.save_as(path, enforce_file_format=True)
    item = RetrieveItem("stored.dcm", dataset.SOPClassUID, dataset.SOPInstanceUID, syntax, dataset.StudyInstanceUID)
    return path, item, pixels


def test_as_stored_when_accepted_and_the_identity_is_current(tmp_path: Path) -> None:
    path, item, _ = stored(tmp_path, JPEGLSLossless)
    sent = payload(path, item, None, [JPEGLSLossless])
    assert sent.delivery is Delivery.AS_STORED and sent.path == path and sent.dataset is None


def test_decoded_or_transcoded_with_the_same_pixels_and_instance(tmp_path: Path) -> None:
    path, item, pixels = stored(tmp_path, JPEGLSLossless)
    decoded = payload(path, item, None, [ImplicitVRLittleEndian])
    assert decoded.delivery is Delivery.DECODED and decoded.dataset is not None
    assert np.array_equal(decoded.dataset.pixel_array, pixels)
    transcoded = payload(path, item, None, [JPEG2000Lossless])
    assert transcoded.delivery is Delivery.TRANSCODED and transcoded.transfer_syntax_uid == JPEG2000Lossless
    assert transcoded.dataset is not None and transcoded.dataset.SOPInstanceUID == item.sop_instance_uid
    assert np.array_equal(transcoded.dataset.pixel_array, pixels)


def test_coerced_to_the_current_identity_keeping_the_original_values(tmp_path: Path) -> None:
    path, item, _ = stored(tmp_path, JPEGLSLossless)
    coercion = Coercion({"PatientID": "IPP-RIS", "PatientName": "ŒUVRARD^Chloé"})
    sent = payload(path, item, coercion, [JPEGLSLossless])
    assert sent.delivery is Delivery.COERCED and sent.dataset is not None
    assert (sent.dataset.PatientID, str(sent.dataset.PatientName)) == ("IPP-RIS", "ŒUVRARD^Chloé")
    (modification,) = sent.dataset.OriginalAttributesSequence
    assert modification.ModifiedAttributesSequence[0].PatientID == PATIENTS[0].patient_id
    assert sent.dataset.SpecificCharacterSet == "ISO_IR 192"
    assert dcmread(path).PatientID == PATIENTS[0].patient_id  # the stored file is never rewritten


def test_the_stored_identity_is_read_once_per_header() -> None:
    dataset = make_instance("CT", PATIENTS[0])
    dataset.IssuerOfPatientID = "CABINET"
    header = encoded(dataset)
    before = stored_identity.cache_info().hits
    expected = (dataset.PatientID, "CABINET", str(dataset.PatientName), dataset.PatientBirthDate, dataset.PatientSex)
    assert stored_identity(header) == expected
    assert stored_identity(bytes(header)) == expected
    assert stored_identity.cache_info().hits == before + 1
    dataset.PatientID = "IPP-RIS"
    assert stored_identity(encoded(dataset))[0] == "IPP-RIS"  # another header: read again
