"""C-STORE sub-operations as the archive writes them (`direct_store`): what the peers receive is
the stored data set, bit for bit, whatever the maximum PDU length they accept; a peer that accepts
only Explicit VR Little Endian gets decoded objects; a peer that stops reading holds up only its
own association.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from datagen import PATIENTS, write_series
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelGet,
)
from servers import Daemon, cli, get_study, run, wait_for, wait_for_port

from appliance.dicom import pynetdicom_patches as patches
from appliance.dicom.retrieve import data_set_offset

SUCCESS = 0x0000


@pytest.fixture()
def series(archive: Daemon, tmp_path: Path) -> tuple[str, dict[str, bytes]]:
    """Four 512 x 512 CT images stored by storescu: the study UID and each data set's bytes."""
    paths = write_series(tmp_path / "series", 4, "CT", PATIENTS[0])
    run(["storescu", "-aec", "APPLIANCE", "+sd", "127.0.0.1", str(archive.port), str(tmp_path / "series")])
    study_uid = str(dcmread(paths[0], stop_before_pixels=True).StudyInstanceUID)
    return study_uid, {instance_uid(path): data_set(path) for path in paths}


def instance_uid(path: Path) -> str:
    return str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def data_set(path: Path) -> bytes:
    return path.read_bytes()[data_set_offset(path) :]


@pytest.mark.parametrize("pdu", [16384, 131072])
def test_getscu_receives_the_stored_bytes(
    archive: Daemon, series: tuple[str, dict[str, bytes]], tmp_path: Path, pdu: int
) -> None:
    study_uid, stored = series
    received = get_study(archive.port, tmp_path / "get", "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={study_uid}",
                         options=("-pdu", str(pdu)))  # fmt: skip
    assert {instance_uid(path): data_set(path) for path in received} == stored


@pytest.mark.parametrize("pdu", [16384, 131072])
def test_storescp_receives_the_stored_bytes_of_a_c_move(
    archive: Daemon, series: tuple[str, dict[str, bytes]], tmp_path: Path, destination_port: int, pdu: int
) -> None:
    study_uid, stored = series
    output = tmp_path / "moved"
    output.mkdir()
    destination = subprocess.Popen(
        ["storescp", "-pdu", str(pdu), "-aet", "STORESCP", "-od", str(output), str(destination_port)]
    )
    try:
        wait_for_port(destination_port, "storescp", destination)
        run(["movescu", "-S", "-aec", "APPLIANCE", "-aem", "STORESCP", "-k", "QueryRetrieveLevel=STUDY",
             "-k", f"StudyInstanceUID={study_uid}", "127.0.0.1", str(archive.port)])  # fmt: skip
    finally:
        destination.terminate()
        destination.wait()
    assert {instance_uid(path): data_set(path) for path in output.iterdir()} == stored


def test_storescp_s_responses_are_the_usual_response(tmp_path: Path, destination_port: int) -> None:
    """DCMTK's storescp (so the reference archive, which uses DCMTK) answers each C-STORE request
    with the response `usual_response` expects, byte for byte: a sender recognises it without
    decoding it. The PDUs are taken as pynetdicom received them (re-encoding a P-DATA-TF gives back
    its bytes)."""
    paths = write_series(tmp_path / "series", 3, "CT", PATIENTS[0])
    received: list[bytes] = []

    def on_pdu(event: evt.Event) -> None:
        if event.pdu.pdu_type == 0x04:
            received.append(event.pdu.encode())

    (tmp_path / "received").mkdir()
    destination = subprocess.Popen(["storescp", "-aet", "STORESCP", "-od", str(tmp_path / "received"),
                                    str(destination_port)], env={**os.environ, "TCP_NODELAY": "1"})  # fmt: skip
    try:
        wait_for_port(destination_port, "storescp", destination)
        requestor = AE("APPLIANCE")
        requestor.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
        association = requestor.associate("127.0.0.1", destination_port, ae_title="STORESCP",
                                          evt_handlers=[(evt.EVT_PDU_RECV, on_pdu)])  # fmt: skip
        assert association.is_established
        context_id = association.accepted_contexts[0].context_id
        requests = []
        for number, path in enumerate(paths, start=1):
            image = dcmread(path)
            assert association.send_c_store(image, msg_id=number).Status == SUCCESS
            requests.append(patches.StoreRequest(CTImageStorage, image.SOPInstanceUID, ExplicitVRLittleEndian, number))
        association.release()
    finally:
        destination.terminate()
        destination.wait()
    assert len(received) == 3
    for request, pdu in zip(requests, received, strict=True):
        usual = patches.usual_response(context_id, request)
        assert usual is not None and usual.status_in(pdu) == (len(pdu), SUCCESS)


def get_with_pynetdicom(
    port: int, study_uid: str, pdu: int, syntaxes: list[str], on_open: Any = None
) -> tuple[int, dict[str, bytes], dict[str, str]]:
    """C-GET by a pynetdicom peer accepting `pdu` and `syntaxes`: the final status, each data set
    received (its bytes as received), and the syntax each came in."""
    received: dict[str, bytes] = {}
    syntax_of: dict[str, str] = {}

    def on_store(event: evt.Event) -> int:
        uid = str(event.request.AffectedSOPInstanceUID)
        received[uid] = event.encoded_dataset(include_meta=False)
        syntax_of[uid] = str(event.context.transfer_syntax)
        return SUCCESS

    ae = AE(ae_title="GETSCU")
    ae.maximum_pdu_size = pdu
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage, syntaxes)
    handlers = [(evt.EVT_C_STORE, on_store), *([(evt.EVT_CONN_OPEN, on_open)] if on_open else [])]
    assoc = ae.associate("127.0.0.1", port, ae_title="APPLIANCE", ext_neg=[build_role(CTImageStorage, scp_role=True)],
                         evt_handlers=handlers)  # fmt: skip
    assert assoc.is_established
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study_uid
    statuses = [status.Status for status, _ in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet)]
    assoc.release()
    return statuses[-1], received, syntax_of


@pytest.mark.parametrize("pdu", [16384, 131072, 0])
def test_a_pynetdicom_peer_receives_the_stored_bytes(
    archive: Daemon, series: tuple[str, dict[str, bytes]], pdu: int
) -> None:
    study_uid, stored = series
    final, received, _ = get_with_pynetdicom(archive.port, study_uid, pdu, [ExplicitVRLittleEndian])
    assert final == SUCCESS
    assert received == stored


@pytest.mark.parametrize("pdu", [16384, 0])
def test_a_peer_accepting_only_explicit_little_endian_gets_decoded_objects(
    archive: Daemon, series: tuple[str, dict[str, bytes]], tmp_path: Path, pdu: int
) -> None:
    study_uid, _ = series
    originals = {instance_uid(path): dcmread(path).pixel_array for path in (tmp_path / "series").iterdir()}
    assert "compressed 4" in cli(archive.config_path, "archive", "compress", "--all").stdout
    final, received, syntaxes = get_with_pynetdicom(archive.port, study_uid, pdu, [ExplicitVRLittleEndian])
    assert final == SUCCESS
    assert set(syntaxes.values()) == {ExplicitVRLittleEndian}
    for uid, data in received.items():
        copy = dataset_of(data)
        assert np.array_equal(copy.pixel_array, originals[uid])
    final, received, syntaxes = get_with_pynetdicom(archive.port, study_uid, pdu, [JPEGLSLossless])
    assert final == SUCCESS
    assert set(syntaxes.values()) == {JPEGLSLossless}
    assert all(np.array_equal(dataset_of(data, JPEGLSLossless).pixel_array, originals[uid])
               for uid, data in received.items())  # fmt: skip


def dataset_of(data: bytes, syntax: str = ExplicitVRLittleEndian) -> Dataset:
    from io import BytesIO

    from pydicom.dataset import FileMetaDataset
    from pydicom.filereader import read_dataset

    dataset = read_dataset(BytesIO(data), is_implicit_VR=False, is_little_endian=True)
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = syntax
    return dataset


def test_a_peer_that_stops_reading_holds_up_only_its_own_association(
    archive: Daemon, series: tuple[str, dict[str, bytes]], tmp_path: Path
) -> None:
    """The slow peer's receive buffer is small and it stops reading after the first object (its
    socket's reads wait on a gate): the archive's writes to it block, and meanwhile another C-GET
    of the same study completes; once the gate opens, the slow one completes too."""
    study_uid, stored = series
    gate = threading.Event()

    def on_open(event: evt.Event) -> None:
        connection = event.assoc.dul.socket
        connection.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        original = connection.recv
        calls = [0]

        def recv(length: int) -> bytes:
            calls[0] += 1
            if calls[0] > 40:  # past the association's acceptance and the first PDUs
                gate.wait()
            return bytes(original(length))

        connection.recv = recv

    outcome: list[Any] = []
    slow = threading.Thread(
        target=lambda: outcome.append(
            get_with_pynetdicom(archive.port, study_uid, 16384, [ExplicitVRLittleEndian], on_open)
        )
    )
    slow.start()
    try:
        received = get_study(archive.port, tmp_path / "meanwhile", "QueryRetrieveLevel=STUDY",
                             f"StudyInstanceUID={study_uid}")  # fmt: skip
        assert {instance_uid(path): data_set(path) for path in received} == stored
        assert slow.is_alive()  # still held up by its own peer
    finally:
        gate.set()
        slow.join(60)
    wait_for(lambda: bool(outcome), "the slow peer's C-GET")
    final, slow_received, _ = outcome[0]
    assert final == SUCCESS
    assert slow_received == stored
