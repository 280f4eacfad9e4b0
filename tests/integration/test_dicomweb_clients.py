"""DICOMweb against the real daemons (`appliance-web` under gunicorn, `appliance-dicom`,
`appliance-hl7`, production mode, free loopback ports), driven by dicomweb-client as a tool would,
with a bearer token made by `appliance dicomweb token`; the DICOM edge checked with pynetdicom."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests
from datagen import PATIENTS, Patient, compressed_as, encoded, make_instance
from dicomweb_client.api import DICOMwebClient
from hl7_client import MllpClient, ack_code, golden
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless, generate_uid
from servers import Daemon, archive_config, free_port, run, write_config
from sqlalchemy import func, select

from appliance.accounts import users
from appliance.accounts.roles import Role
from appliance.config import load_config
from appliance.db import create_index_engine
from appliance.db.schema import instance

PASSWORD = "Correct-Horse-42"
MERGED = Patient("IPP1009", "DOUBLON^Chloé", "19800115", "F", "ISO_IR 192")  # merged into IPP1001 by the A40
SERIES_SIZE = 5


@dataclass
class Box:
    url: str
    config_path: Path
    dicom_port: int
    hl7_port: int
    token: str
    native: list[Dataset]  # a CT series of ŒUVRARD (IPP0001), sent by storescu
    folder: Path

    def client(self, token: str | None = None) -> DICOMwebClient:
        return DICOMwebClient(f"{self.url}/dicomweb", headers={"Authorization": f"Bearer {token or self.token}"})

    def headers(self, **more: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **more}

    def index_count(self) -> int:
        engine = create_index_engine(load_config(self.config_path).database_url)
        with engine.connect() as connection:
            found = int(connection.execute(select(func.count()).select_from(instance)).scalar_one())
        engine.dispose()
        return found


def new_token(config_path: Path, username: str, minutes: int = 60) -> str:
    command = [sys.executable, "-m", "appliance.cli", "dicomweb", "token", "--config", str(config_path)]
    result = subprocess.run([*command, "--user", username, "--minutes", str(minutes)],
                            capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    return result.stdout.strip()


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    folder = tmp_path_factory.mktemp("dicomweb")
    web_port, hl7_port = free_port(), free_port()
    url = f"http://127.0.0.1:{web_port}"
    config = archive_config(
        folder / "data",
        free_port(),
        hl7={"bind_address": "127.0.0.1", "port": hl7_port},
        web={"bind_address": "127.0.0.1", "port": web_port, "workers": 1, "threads": 8, "secure_cookies": False,
             "public_base_url": url},
    )  # fmt: skip
    config_path = write_config(folder / "appliance.yaml", config)
    daemons = [
        Daemon(module, config_path, folder / f"{name}.log").start()
        for name, module in (
            ("dicom", "appliance.daemons.archive"),
            ("hl7", "appliance.daemons.hl7"),
            ("web", "appliance.daemons.web"),
        )
    ]
    engine = create_index_engine(load_config(config_path).database_url)
    users.create(engine, "manip", "Manip Radio", Role.TECHNOLOGIST, PASSWORD, "test")
    users.create(engine, "prestataire", "Prestataire", Role.MAINTENANCE, PASSWORD, "test")
    engine.dispose()
    native = [make_instance("CT", PATIENTS[0], *([generate_uid()] * 1), instance_number=1)]
    study_uid, series_uid = native[0].StudyInstanceUID, native[0].SeriesInstanceUID
    native += [make_instance("CT", PATIENTS[0], study_uid, series_uid, number) for number in range(2, SERIES_SIZE + 1)]
    paths = []
    for dataset in native:
        paths.append(folder / f"{dataset.SOPInstanceUID}.dcm")
        dataset.save_as(paths[-1], enforce_file_format=True)
    run(["storescu", "-aec", "APPLIANCE", "127.0.0.1", str(daemons[0].port), *map(str, paths)])
    yield Box(url, config_path, daemons[0].port, hl7_port, new_token(config_path, "manip"), native, folder)
    for daemon in daemons:
        daemon.stop()


def names(found: list[dict[str, object]], tag: str) -> set[str]:
    return {Dataset.from_json(entry).get(tag) for entry in found}  # type: ignore[arg-type,misc]


def test_qido_at_every_level_with_french_names(box: Box) -> None:
    client = box.client()
    study_uid, series_uid = box.native[0].StudyInstanceUID, box.native[0].SeriesInstanceUID
    for spelling in ("ŒUVRARD*", "oeuvrard*", "Œuvrard^Chloé"):
        studies = client.search_for_studies(search_filters={"PatientName": spelling}, fuzzymatching=True)
        assert [entry["0020000D"]["Value"][0] for entry in studies] == [study_uid], spelling
    assert studies[0]["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "ŒUVRARD^Chloé"}]}
    assert studies[0]["00201208"]["Value"] == [SERIES_SIZE]  # a number, not a string
    assert studies[0]["00081190"]["Value"] == [f"{box.url}/dicomweb/studies/{study_uid}"]
    assert len(client.search_for_series(study_uid)) == 1
    assert len(client.search_for_series(search_filters={"PatientID": "IPP0001"})) == 1
    assert len(client.search_for_instances(study_uid, series_uid)) == SERIES_SIZE
    assert len(client.search_for_instances(study_uid)) == SERIES_SIZE
    one = box.native[2].SOPInstanceUID
    assert len(client.search_for_instances(search_filters={"SOPInstanceUID": one})) == 1
    # Tag numbers, a comma-listed includefield and a date range, as OHIF and Weasis send them.
    answer = requests.get(
        f"{box.url}/dicomweb/studies?00100020=IPP0001&00080020=20261101-20261130&includefield=00081030,00080061",
        headers=box.headers(Accept="application/dicom+json"), timeout=30,
    )  # fmt: skip
    assert answer.headers["Content-Type"] == "application/dicom+json"
    assert answer.json()[0]["00081030"]["Value"] == ["CT thorax"]
    assert client.search_for_studies(search_filters={"StudyDate": "20250101-20250131"}) == []


def test_paging_with_get_remaining(box: Box) -> None:
    client = box.client()
    study_uid, series_uid = box.native[0].StudyInstanceUID, box.native[0].SeriesInstanceUID
    first = client.search_for_instances(study_uid, series_uid, limit=2)
    assert len(first) == 2
    every = client.search_for_instances(study_uid, series_uid, limit=2, get_remaining=True)
    assert sorted(names(every, "SOPInstanceUID")) == sorted(dataset.SOPInstanceUID for dataset in box.native)


def test_wado_rs_instance_series_metadata_and_native_frames(box: Box) -> None:
    client = box.client()
    original = box.native[1]
    study_uid, series_uid = original.StudyInstanceUID, original.SeriesInstanceUID
    copy = client.retrieve_instance(study_uid, series_uid, original.SOPInstanceUID)
    assert np.array_equal(copy.pixel_array, original.pixel_array)
    assert copy.PatientName == "ŒUVRARD^Chloé"
    assert len(client.retrieve_series(study_uid, series_uid)) == SERIES_SIZE
    documents = client.retrieve_series_metadata(study_uid, series_uid)
    assert len(documents) == SERIES_SIZE
    header = Dataset.from_json(documents[0])  # type: ignore[arg-type]
    assert header.Rows == 512 and header.WindowWidth == 400 and header[0x00020010].value == ExplicitVRLittleEndian
    assert documents[0]["7FE00010"]["BulkDataURI"].startswith(f"{box.url}/dicomweb/studies/{study_uid}/")
    frames = client.retrieve_instance_frames(
        study_uid, series_uid, original.SOPInstanceUID, [1],
        media_types=(("application/octet-stream", ExplicitVRLittleEndian),),
    )  # fmt: skip
    assert frames[0] == original.PixelData
    raw = requests.get(
        f"{box.url}/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{original.SOPInstanceUID}/frames/1",
        headers=box.headers(Accept="multipart/related; type=application/octet-stream; transfer-syntax=*"), timeout=30,
    )  # fmt: skip
    assert b"Content-Type: application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1\r\n\r\n" in raw.content
    gzipped = requests.get(
        f"{box.url}/dicomweb/studies/{study_uid}/series/{series_uid}/metadata",
        headers=box.headers(**{"Accept-Encoding": "gzip"}), timeout=30,
    )  # fmt: skip
    assert gzipped.headers["Content-Encoding"] == "gzip" and len(gzipped.json()) == SERIES_SIZE


def dataset_bytes(file_bytes: bytes) -> bytes:
    """A PS3.10 file's dataset (after the preamble and the file meta group, whose length it gives)."""
    (meta_length,) = struct.unpack_from("<I", file_bytes, 132 + 8)
    return file_bytes[132 + 12 + meta_length :]


def test_stow_of_a_mixed_set_then_c_find_and_c_get_bit_exact(box: Box) -> None:
    from pynetdicom import AE, build_role, evt
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        CTImageStorage,
        StudyRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelGet,
    )

    study_uid, series_uid = generate_uid(), generate_uid()
    sent = [make_instance("CT", PATIENTS[1], study_uid, series_uid, number) for number in (1, 2, 3)]
    sent[1] = compressed_as(sent[1], JPEGLSLossless)
    stowed = {dataset.SOPInstanceUID: encoded(dataset) for dataset in sent}
    reply = box.client().store_instances([dcmread(io.BytesIO(data)) for data in stowed.values()])
    assert len(reply.ReferencedSOPSequence) == 3 and "FailedSOPSequence" not in reply
    # The JPEG-LS frame comes back as image/jls with its transfer syntax.
    jls = box.client().retrieve_instance_frames(
        study_uid, series_uid, sent[1].SOPInstanceUID, [1], media_types=(("image/jls", JPEGLSLossless),)
    )
    assert jls[0][:4] == b"\xff\xd8\xff\xf7"  # SOI, then SOF55 (JPEG-LS)
    ae = AE(ae_title="PYNETDICOM")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    for syntax in (ExplicitVRLittleEndian, JPEGLSLossless):
        ae.add_requested_context(CTImageStorage, [syntax])
    received: dict[str, bytes] = {}

    def on_store(event: evt.Event) -> int:
        received[str(event.request.AffectedSOPInstanceUID)] = event.request.DataSet.getvalue()
        return 0x0000

    assoc = ae.associate("127.0.0.1", box.dicom_port, ae_title="APPLIANCE",
                         ext_neg=[build_role(CTImageStorage, scp_role=True)],
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])  # fmt: skip
    query = Dataset()
    query.QueryRetrieveLevel, query.StudyInstanceUID, query.PatientName = "STUDY", study_uid, ""
    found = [identifier for status, identifier in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind)
             if status.Status == 0xFF00]  # fmt: skip
    statuses = [status.Status for status, _ in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet)]
    assoc.release()
    assert [str(identifier.PatientName) for identifier in found] == ["DUPONT^Jean-François"]
    assert statuses[-1] == 0x0000
    assert received == {uid: dataset_bytes(data) for uid, data in stowed.items()}


def test_bad_requests_are_refused_and_store_nothing(box: Box) -> None:
    study_uid, series_uid = box.native[0].StudyInstanceUID, box.native[0].SeriesInstanceUID
    with pytest.raises(requests.HTTPError) as unknown:
        box.client().retrieve_study(generate_uid())
    assert unknown.value.response.status_code == 404
    wrong_type = requests.get(f"{box.url}/dicomweb/studies/{study_uid}/series/{series_uid}",
                              headers=box.headers(Accept="application/pdf"), timeout=30)  # fmt: skip
    assert wrong_type.status_code == 406
    before = box.index_count()
    good = encoded(make_instance("CT", PATIENTS[2], generate_uid(), generate_uid(), 1))
    body = b"--B\r\nContent-Type: application/dicom\r\n\r\n" + good + b"\r\n--B\r\nContent-Type: application/dicom\r\n"
    refused = requests.post(f"{box.url}/dicomweb/studies", data=body, timeout=30, headers=box.headers(
        **{"Content-Type": 'multipart/related; type="application/dicom"; boundary=B'}))  # fmt: skip
    assert refused.status_code == 400
    assert box.index_count() == before


def test_stow_reply_names_failures_with_their_reasons(box: Box) -> None:
    other_study = encoded(make_instance("CT", PATIENTS[2], generate_uid(), generate_uid(), 1))
    body = (
        b"".join(
            b"--B\r\nContent-Type: application/dicom\r\n\r\n" + part + b"\r\n" for part in (other_study, b"not DICOM")
        )
        + b"--B--\r\n"
    )
    answer = requests.post(f"{box.url}/dicomweb/studies/{generate_uid()}", data=body, timeout=30, headers=box.headers(
        **{"Content-Type": 'multipart/related; type="application/dicom"; boundary=B'}))  # fmt: skip
    assert answer.status_code == 409 and answer.headers["Content-Type"] == "application/dicom+json"
    reasons = [item["00081197"]["Value"][0] for item in answer.json()["00081198"]["Value"]]
    assert reasons == [0xA900, 0xC000]  # another study than the URL's; unreadable


def test_after_an_a40_merge_wado_and_metadata_show_the_surviving_identity(box: Box) -> None:
    study_uid, series_uid = generate_uid(), generate_uid()
    images = [make_instance("MR", MERGED, study_uid, series_uid, number) for number in (1, 2)]
    for image in images:
        image.IssuerOfPatientID = "RIS-CAB-X"
    box.client().store_instances([dcmread(io.BytesIO(encoded(image))) for image in images])
    url = f"{box.url}/dicomweb/studies/{study_uid}/series/{series_uid}/metadata"
    before = requests.get(url, headers=box.headers(), timeout=30)  # now in the worker's cache
    assert before.json()[0]["00100020"]["Value"] == ["IPP1009"] and before.headers["Content-Encoding"] == "gzip"
    held = box.headers(**{"If-None-Match": before.headers["ETag"]})
    assert requests.get(url, headers=held, timeout=30).status_code == 304
    with MllpClient(box.hl7_port) as client:
        assert ack_code(client.send(golden("a28_utf8.hl7"))) == "AA"  # ŒUVRARD^Chloé, IPP1001
        assert ack_code(client.send(golden("a40_merge.hl7"))) == "AA"  # IPP1009 merged into IPP1001
    after = requests.get(url, headers=held, timeout=30)
    assert after.status_code == 200 and after.json()[0]["00100020"]["Value"] == ["IPP1001"]
    plain = requests.get(url, headers=box.headers(**{"Accept-Encoding": "identity"}), timeout=30)
    assert "Content-Encoding" not in plain.headers and plain.json() == after.json()
    client = box.client()
    copy = client.retrieve_instance(study_uid, series_uid, images[0].SOPInstanceUID)
    assert (copy.PatientID, str(copy.PatientName)) == ("IPP1001", "ŒUVRARD^Chloé")
    assert copy.OriginalAttributesSequence[0].ModifiedAttributesSequence[0].PatientID == "IPP1009"
    for document in client.retrieve_series_metadata(study_uid, series_uid):
        assert document["00100020"]["Value"] == ["IPP1001"]
        assert document["00100010"]["Value"] == [{"Alphabetic": "ŒUVRARD^Chloé"}]


def test_tokens_expire_and_roles_still_apply(box: Box) -> None:
    url = f"{box.url}/dicomweb/studies"
    assert requests.get(url, timeout=30).status_code == 401
    assert requests.get(url, headers={"Authorization": "Bearer forged"}, timeout=30).status_code == 401
    maintenance = new_token(box.config_path, "prestataire")
    assert requests.get(url, headers={"Authorization": f"Bearer {maintenance}"}, timeout=30).status_code == 403
    refused = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "dicomweb", "token", "--config", str(box.config_path),
         "--user", "manip", "--minutes", "100000"], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 1 and "minutes" in refused.stderr


def test_production_refuses_the_loopback_address_without_login(box: Box) -> None:
    assert requests.get(f"{box.url}/dicomweb/studies", timeout=30).status_code == 401
    assert requests.get(f"{box.url}/wado?requestType=WADO&objectUID=1.2.3", timeout=30).status_code == 401
