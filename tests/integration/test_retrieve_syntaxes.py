"""What a C-GET requestor gets for each transfer syntax preference DCMTK's getscu can express.

The study holds objects stored uncompressed, in JPEG-LS lossless and in JPEG 2000 lossless, one each.
The archive accepts, of the syntaxes a requestor proposes, the one the most objects are held in (its
preference between equals): here each of the three is held once, and getscu proposes the
uncompressed ones after its preference. Whatever the requestor prefers, every object comes back (no
failed sub-operation): as stored when its syntax was accepted, else decoded to an uncompressed
syntax, or re-encoded in the lossless syntax accepted; never lossy, and always with the original
pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from datagen import PATIENTS, make_instance
from pydicom import dcmread
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)
from servers import Daemon, get_study

STORED_AS = {"plain": ExplicitVRLittleEndian, "jpeg-ls": JPEGLSLossless, "jpeg-2000": JPEG2000Lossless}
PLUGINS = {JPEGLSLossless: "pyjpegls", JPEG2000Lossless: "pylibjpeg"}


@pytest.fixture()
def stored_study(archive: Daemon, tmp_path: Path) -> tuple[str, dict[str, np.ndarray], dict[str, str]]:
    """A CT study of three objects, one per stored syntax: its UID, the pixels and stored syntax of each."""
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

    study_uid = generate_uid()
    pixels, syntaxes = {}, {}
    ae = AE(ae_title="STORESCU")
    for syntax in STORED_AS.values():
        ae.add_requested_context(CTImageStorage, [syntax])  # one context each: every file goes as it is
    assoc = ae.associate("127.0.0.1", archive.port, ae_title="APPLIANCE")
    for number, syntax in enumerate(STORED_AS.values(), start=1):
        dataset = make_instance("CT", PATIENTS[0], study_uid=study_uid, instance_number=number)
        pixels[dataset.SOPInstanceUID] = dataset.pixel_array.copy()
        if syntax in PLUGINS:
            dataset.compress(syntax, encoding_plugin=PLUGINS[syntax], generate_instance_uid=False)
        syntaxes[dataset.SOPInstanceUID] = syntax
        assert assoc.send_c_store(dataset).Status == 0x0000
    assoc.release()
    return study_uid, pixels, syntaxes


# getscu option -> the syntax each object is expected in (None: as stored).
PREFERENCES = {
    "+x=": ExplicitVRLittleEndian,  # uncompressed, explicit first
    "+xe": ExplicitVRLittleEndian,
    "+xb": ExplicitVRLittleEndian,  # big endian first: the archive answers little endian, also proposed
    "+xi": ExplicitVRLittleEndian,  # getscu (DCMTK 3.6.7) then proposes explicit VR little endian only
    "+xd": ExplicitVRLittleEndian,  # deflated first, but no object is held deflated and one is uncompressed
    "+xs": ExplicitVRLittleEndian,  # JPEG lossless (process 14) first: the archive cannot encode it
    "+xy": ExplicitVRLittleEndian,  # JPEG baseline (lossy) first: never made lossy
    "+xt": JPEGLSLossless,  # JPEG-LS lossless, held as much as uncompressed: re-encoded when stored otherwise
    "+xv": JPEG2000Lossless,
    "+xr": ExplicitVRLittleEndian,  # RLE lossless first, but no object is held in it
}


@pytest.mark.parametrize("option", sorted(PREFERENCES))
def test_every_object_comes_back_in_a_syntax_the_requestor_asked_for(
    archive: Daemon, stored_study: tuple[str, dict[str, np.ndarray], dict[str, str]], tmp_path: Path, option: str
) -> None:
    study_uid, pixels, _stored = stored_study
    received = get_study(
        archive.port,
        tmp_path / "get",
        "QueryRetrieveLevel=STUDY",
        f"StudyInstanceUID={study_uid}",
        options=(option, "+B"),
    )
    copies = [dcmread(path) for path in received]
    assert sorted(copy.SOPInstanceUID for copy in copies) == sorted(pixels)
    assert {str(copy.file_meta.TransferSyntaxUID) for copy in copies} == {PREFERENCES[option]}
    for copy in copies:
        assert np.array_equal(copy.pixel_array, pixels[copy.SOPInstanceUID]), copy.SOPInstanceUID
        assert copy.get("LossyImageCompression", "00") != "01"


def test_stored_bytes_go_out_unchanged_when_their_syntax_is_accepted(
    archive: Daemon, stored_study: tuple[str, dict[str, np.ndarray], dict[str, str]], tmp_path: Path
) -> None:
    """A requestor proposing every syntax in its own context (pynetdicom) gets each file as stored."""
    from pynetdicom import AE, build_role, evt
    from pynetdicom.sop_class import CTImageStorage, StudyRootQueryRetrieveInformationModelGet  # type: ignore[attr-defined]

    study_uid, _pixels, stored = stored_study
    received: dict[str, str] = {}

    def on_store(event: evt.Event) -> int:
        received[str(event.request.AffectedSOPInstanceUID)] = str(event.context.transfer_syntax)
        return 0x0000

    ae = AE(ae_title="GETSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    for syntax in (ExplicitVRLittleEndian, JPEGLSLossless, JPEG2000Lossless):
        ae.add_requested_context(CTImageStorage, [syntax])
    roles = [build_role(CTImageStorage, scp_role=True)]
    assoc = ae.associate("127.0.0.1", archive.port, ae_title="APPLIANCE", ext_neg=roles,
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])  # fmt: skip
    query = make_query(study_uid)
    final = [status.Status for status, _ in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet)][-1]
    assoc.release()
    assert final == 0x0000
    assert received == stored


@pytest.mark.parametrize("syntax", [RLELossless, DeflatedExplicitVRLittleEndian, JPEG2000Lossless])
def test_a_requestor_proposing_one_syntax_the_archive_can_write_gets_every_object_in_it(
    archive: Daemon, stored_study: tuple[str, dict[str, np.ndarray], dict[str, str]], syntax: str
) -> None:
    """Proposing RLE lossless only (say), it gets each object re-encoded in it, with the same pixels."""
    from pynetdicom import AE, build_role, evt
    from pynetdicom.sop_class import CTImageStorage, StudyRootQueryRetrieveInformationModelGet  # type: ignore[attr-defined]

    study_uid, pixels, _stored = stored_study
    received: dict[str, tuple[str, np.ndarray]] = {}

    def on_store(event: evt.Event) -> int:
        dataset = event.dataset
        dataset.file_meta = event.file_meta
        received[str(dataset.SOPInstanceUID)] = (str(event.context.transfer_syntax), dataset.pixel_array.copy())
        return 0x0000

    ae = AE(ae_title="GETSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage, [syntax])
    roles = [build_role(CTImageStorage, scp_role=True)]
    assoc = ae.associate("127.0.0.1", archive.port, ae_title="APPLIANCE", ext_neg=roles,
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])  # fmt: skip
    model = StudyRootQueryRetrieveInformationModelGet
    final = [status.Status for status, _ in assoc.send_c_get(make_query(study_uid), model)]
    assoc.release()
    assert final[-1] == 0x0000
    assert sorted(received) == sorted(pixels)
    for uid, (sent_in, sent_pixels) in received.items():
        assert sent_in == syntax
        assert np.array_equal(sent_pixels, pixels[uid]), uid


def make_query(study_uid: str) -> object:
    from pydicom.dataset import Dataset

    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study_uid
    return query
