"""Every kind of object a practice produces goes into the archive and comes back intact (A1).

One test per kind, each against a fresh archive daemon, driven by pynetdicom SCUs:
- the object's own file is sent byte for byte, in the transfer syntax it was made in, as a modality
  that already compressed it would (C-STORE success);
- it is found by C-FIND at IMAGE level with its SOP Class UID, and indexed in its received syntax,
  flagged lossy when (and only when) that syntax is lossy;
- C-GET by a peer accepting the stored syntax gives back the very bytes received;
- C-GET by a peer proposing only Implicit VR Little Endian (the DICOM default) gives back the same
  instance decoded: the same pixels, or for an object without pixels the same elements.
Objects that reference images (report, dose report, key objects, presentation state) are stored into
a CT study stored just before them.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from datagen import (
    PATIENTS,
    ROOT,
    compressed_as,
    jpeg_baseline,
    make_ct_dose_sr,
    make_enhanced_sr,
    make_instance,
    make_key_object_selection,
    make_mammography_for_processing,
    make_presentation_state,
    make_secondary_capture,
)
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)
from pynetdicom import AE, _config, build_role, evt
from pynetdicom.dsutils import split_dataset
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
)
from servers import Daemon, cli
from sqlalchemy import select

from appliance.config import load_config
from appliance.db import create_index_engine
from appliance.db.schema import instance
from appliance.dicom.pynetdicom_patches import set_no_delay

# A text element in the wrong character set decodes with replacement characters on both sides and
# compares equal: make pydicom's warning an error.
pytestmark = pytest.mark.filterwarnings("error:Failed to decode byte string:UserWarning")

SUCCESS = 0x0000
PENDING = 0xFF00

# What to send: from the images of the CT study stored first (when the case asks for it) and a
# folder, the path of the file to send.
Builder = Callable[[list[Dataset], Path], Path]


@dataclass(frozen=True)
class Case:
    build: Builder
    in_ct_study: bool = False
    lossy: bool = False


def saved(dataset: Dataset, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "object.dcm"
    dataset.save_as(path, enforce_file_format=True)
    return path


def referencing(make: Callable[[list[Dataset]], Dataset]) -> Case:
    return Case(lambda images, directory: saved(make(images), directory), in_ct_study=True)


def standalone(make: Callable[[], Dataset]) -> Case:
    return Case(lambda _images, directory: saved(make(), directory))


CASES = {
    "enhanced-sr": referencing(make_enhanced_sr),
    "x-ray-radiation-dose-sr": referencing(make_ct_dose_sr),
    "key-object-selection": referencing(make_key_object_selection),
    "grayscale-softcopy-presentation-state": referencing(make_presentation_state),
    "secondary-capture": standalone(make_secondary_capture),
    "mammography-for-processing": standalone(make_mammography_for_processing),
    "jpeg-ls-lossless": standalone(lambda: compressed_as(make_instance("MR", PATIENTS[1]), JPEGLSLossless)),
    "jpeg-2000-lossless": standalone(lambda: compressed_as(make_instance("DX", PATIENTS[2]), JPEG2000Lossless)),
    "rle-lossless": standalone(lambda: compressed_as(make_instance("US", PATIENTS[3]), RLELossless)),
    "deflated": standalone(lambda: compressed_as(make_instance("CR", PATIENTS[1]), DeflatedExplicitVRLittleEndian)),
    "jpeg-baseline-lossy": Case(
        lambda _images, directory: jpeg_baseline(make_instance("US", PATIENTS[0]), directory), lossy=True
    ),
}


@pytest.mark.parametrize("kind", CASES)
def test_stored_found_and_given_back_intact(archive: Daemon, tmp_path: Path, kind: str) -> None:
    case = CASES[kind]
    images = store_ct_study(archive.port) if case.in_ct_study else []
    path = case.build(images, tmp_path / "sent")
    original = dcmread(path)
    syntax = str(original.file_meta.TransferSyntaxUID)

    assert send_file(archive.port, path) == SUCCESS
    assert found(archive.port, original) == [(original.SOPInstanceUID, original.SOPClassUID)]
    row = index_row(archive, original.SOPInstanceUID)
    assert (row.received_transfer_syntax_uid, row.transfer_syntax_uid, row.lossy) == (syntax, syntax, case.lossy)
    assert dataset_bytes(archive.config_path.parent / "data" / "archive" / row.path) == dataset_bytes(path)
    assert f"lossy as received {int(case.lossy)}\n" in cli(archive.config_path, "archive", "stats").stdout

    as_stored = get_instance(archive.port, original, [syntax])
    assert as_stored.transfer_syntax == syntax
    assert as_stored.encoded == dataset_bytes(path)

    plain = get_instance(archive.port, original, [ImplicitVRLittleEndian])
    assert plain.transfer_syntax == ImplicitVRLittleEndian
    assert plain.dataset.SOPInstanceUID == original.SOPInstanceUID
    if "PixelData" in original:
        assert np.array_equal(plain.dataset.pixel_array, original.pixel_array)
    else:
        assert differences(plain.dataset, original) == []


def store_ct_study(port: int) -> list[Dataset]:
    """Three CT images of one series, stored; returned as sent."""
    study_uid, series_uid = generate_uid(prefix=ROOT), generate_uid(prefix=ROOT)
    images = [make_instance("CT", PATIENTS[1], study_uid, series_uid, number) for number in (1, 2, 3)]
    assoc = associate(port, {CTImageStorage: [ExplicitVRLittleEndian]})
    try:
        assert [assoc.send_c_store(image).Status for image in images] == [SUCCESS] * 3
    finally:
        assoc.release()
    return images


def associate(port: int, contexts: dict[str, list[str]], **keywords: Any) -> Any:
    """An association proposing each SOP class with exactly the given transfer syntaxes."""
    ae = AE(ae_title="PYNETDICOM")
    ae.dimse_timeout = 30
    for sop_class, syntaxes in contexts.items():
        ae.add_requested_context(sop_class, syntaxes)
    handlers = [(evt.EVT_CONN_OPEN, set_no_delay), *keywords.pop("evt_handlers", [])]
    assoc = ae.associate("127.0.0.1", port, ae_title="APPLIANCE", evt_handlers=handlers, **keywords)
    assert assoc.is_established
    return assoc


def send_file(port: int, path: Path) -> int:
    """C-STORE the dataset bytes of the file at `path` as they are (no decoding, no re-encoding)."""
    meta, _offset = split_dataset(path)
    assoc = associate(port, {str(meta.MediaStorageSOPClassUID): [str(meta.TransferSyntaxUID)]})
    previous = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        return int(assoc.send_c_store(path).Status)
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = previous
        assoc.release()


def dataset_bytes(path: Path) -> bytes:
    """The encoded dataset of a DICOM file, after its file meta information."""
    _meta, offset = split_dataset(path)
    return path.read_bytes()[offset:]


def image_query(original: Dataset, **keys: str) -> Dataset:
    query = Dataset()
    query.QueryRetrieveLevel = "IMAGE"
    query.StudyInstanceUID = original.StudyInstanceUID
    for keyword, value in keys.items():
        setattr(query, keyword, value)
    return query


def found(port: int, original: Dataset) -> list[tuple[str, str]]:
    """C-FIND at IMAGE level in the object's study with its SOP Class UID: (instance, class) found."""
    query = image_query(original, SeriesInstanceUID="", SOPInstanceUID="", SOPClassUID=original.SOPClassUID)
    assoc = associate(port, {StudyRootQueryRetrieveInformationModelFind: [ExplicitVRLittleEndian]})
    try:
        answers = list(assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind))
    finally:
        assoc.release()
    assert answers[-1][0].Status == SUCCESS
    return [(answer.SOPInstanceUID, answer.SOPClassUID) for status, answer in answers if status.Status == PENDING]


def index_row(archive: Daemon, sop_instance_uid: str) -> Any:
    engine = create_index_engine(load_config(archive.config_path).database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(select(instance).where(instance.c.sop_instance_uid == sop_instance_uid)).one()
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Received:
    """One C-STORE sub-operation of a C-GET, as it came over the wire."""

    transfer_syntax: str
    encoded: bytes  # the dataset bytes
    dataset: Dataset


def get_instance(port: int, original: Dataset, syntaxes: list[str]) -> Received:
    """C-GET `original` by a peer taking its SOP class in `syntaxes` only; the one object received."""
    received: list[Received] = []

    def on_store(event: Any) -> int:
        wire = event.request.DataSet.getvalue()
        decoded = dcmread(io.BytesIO(event.encoded_dataset()))
        received.append(Received(str(event.context.transfer_syntax), wire, decoded))
        return SUCCESS

    sop_class = str(original.SOPClassUID)
    assoc = associate(
        port,
        {StudyRootQueryRetrieveInformationModelGet: [ExplicitVRLittleEndian], sop_class: syntaxes},
        ext_neg=[build_role(sop_class, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    query = image_query(original, SeriesInstanceUID=original.SeriesInstanceUID, SOPInstanceUID=original.SOPInstanceUID)
    try:
        responses = [status for status, _ in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet)]
    finally:
        assoc.release()
    assert responses[-1].Status == SUCCESS
    assert len(received) == 1
    return received[0]


def differences(copy: Dataset, original: Dataset) -> list[str]:
    """The tags whose element differs between the two datasets (file meta aside), sequences compared
    item by item."""
    tags = sorted(set(copy.keys()) | set(original.keys()))
    return [str(tag) for tag in tags if copy.get(tag) != original.get(tag)]
