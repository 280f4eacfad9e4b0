"""DICOMweb through Flask's test client: Accept headers as real clients spell them, multipart
bodies, the audit event of each request, and the loopback rule (development only)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from console_client import Events
from datagen import PATIENTS, compressed_as, encoded, make_instance
from flask import Flask
from flask.testing import FlaskClient
from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless, generate_uid
from sqlalchemy import Engine, func, select

from appliance.accounts import tokens, users
from appliance.accounts.roles import Role
from appliance.archive.index import Index
from appliance.archive.ingest import Ingest
from appliance.archive.storage import FileStore
from appliance.config import Settings
from appliance.config.loader import config_from_document
from appliance.db.schema import instance
from appliance.web import create_app
from appliance.web.dicomweb import accept, multipart

WEASIS = 'multipart/related;type="application/dicom";transfer-syntax=*'
DICOMWEB_CLIENT = 'multipart/related; type="application/dicom"; transfer-syntax=*'
OHIF_FRAMES = "multipart/related; type=application/octet-stream; transfer-syntax=*"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (WEASIS, ["*"]),
        (DICOMWEB_CLIENT, ["*"]),
        ("multipart/related; type=application/dicom", [ExplicitVRLittleEndian]),
        ('multipart/related; type="*/*"', [ExplicitVRLittleEndian]),
        ("*/*", [ExplicitVRLittleEndian]),
        (None, [ExplicitVRLittleEndian]),
        ("application/pdf", []),
        ('multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.80, */*;q=0.5',
         [JPEGLSLossless, ExplicitVRLittleEndian]),
    ],
)  # fmt: skip
def test_dicom_accept_headers_as_clients_send_them(header: str | None, expected: list[str]) -> None:
    assert accept.dicom_syntaxes(header) == expected


def test_frame_accept_headers() -> None:
    assert accept.frame_syntaxes(OHIF_FRAMES) == [ExplicitVRLittleEndian, "1.2.840.10008.1.2"]
    assert accept.frame_syntaxes('multipart/related; type="*/*"') == ["*"]
    assert accept.frame_syntaxes('multipart/related; type="image/jls"; transfer-syntax=1.2.840.10008.1.2.4.80') == [
        JPEGLSLossless
    ]
    assert accept.frame_syntaxes("multipart/related; type=application/octet-stream") == [ExplicitVRLittleEndian]
    assert accept.frame_syntaxes("text/html") == []
    assert accept.frame_media_type(JPEGLSLossless) == "image/jls"


def test_a_multipart_body_is_read_whole_or_refused() -> None:
    body = b"preamble\r\n--B\r\nContent-Type: application/dicom\r\n\r\nONE\r\n--B\r\n\r\nTWO\r\n--B--"
    parts = multipart.read_parts(body, b"B", "application/dicom")
    assert [body[part.start : part.end] for part in parts] == [b"ONE", b"TWO"]
    assert [part.media_type.media_type for part in parts] == ["application/dicom"] * 2
    for broken in (b"--B\r\n\r\nONE", b"nothing", b"--B--", b"--B\r\nContent-Type application/dicom\r\n\r\nX\r\n--B--"):
        with pytest.raises(multipart.MalformedMultipart):
            multipart.read_parts(broken, b"B", "application/dicom")


@pytest.fixture()
def series(engine: Engine, app: Flask) -> tuple[str, str, list[str]]:
    """A CT series of three images, the second one stored in JPEG-LS."""
    data = app.extensions["appliance"].config.storage.data_directory
    ingest = Ingest(FileStore(data, 0), Index(engine))
    study_uid, series_uid = generate_uid(), generate_uid()
    uids = []
    for number in (1, 2, 3):
        dataset = make_instance("CT", PATIENTS[0], study_uid, series_uid, number)
        if number == 2:
            dataset = compressed_as(dataset, JPEGLSLossless)
        ingest.store_object(encoded(dataset), "TEST")
        uids.append(str(dataset.SOPInstanceUID))
    return study_uid, series_uid, uids


def bearer(engine: Engine, make_account: Callable[..., users.Account], role: Role) -> dict[str, str]:
    owner = make_account(f"tool-{role.value}", role)
    return {"Authorization": f"Bearer {tokens.create(engine, owner.id, 10).token}"}


def test_each_request_records_one_event(
    client: FlaskClient, events: Events, series: tuple[str, str, list[str]], engine: Engine,
    make_account: Callable[..., users.Account],
) -> None:  # fmt: skip
    study_uid, series_uid, uids = series
    headers = bearer(engine, make_account, Role.RADIOLOGIST)
    assert client.get("/dicomweb/studies?PatientID=IPP0001", headers=headers).status_code == 200
    objects = client.get(f"/dicomweb/studies/{study_uid}/series/{series_uid}", headers=headers)
    assert objects.data.count(b"Content-Type: application/dicom; transfer-syntax=") == 3  # the stream read whole
    assert client.get(f"/dicomweb/studies/{study_uid}/metadata", headers=headers).status_code == 200
    frame = f"/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{uids[1]}/frames/1"
    answer = client.get(frame, headers={**headers, "Accept": 'multipart/related; type="image/jls"'})
    assert b"Content-Type: image/jls; transfer-syntax=1.2.840.10008.1.2.4.80\r\n\r\n" in answer.data
    assert [(event.event.code, event.action.value) for event in events.recorded] == [
        ("110112", "E"), ("110104", "R"), ("110103", "R"), ("110103", "R"),
    ]  # fmt: skip
    transferred = events.of("110104")[0]
    assert transferred.requestor is not None and transferred.requestor.user_id == "tool-radiologist"
    assert [obj.object_id for obj in transferred.objects] == ["IPP0001^^^CABINET", study_uid]
    assert dict(transferred.objects[1].instances) == {"1.2.840.10008.5.1.4.1.1.2": 3}


def test_bad_accept_unknown_uid_and_malformed_stow(
    client: FlaskClient, series: tuple[str, str, list[str]], engine: Engine,
    make_account: Callable[..., users.Account],
) -> None:  # fmt: skip
    study_uid, series_uid, uids = series
    headers = bearer(engine, make_account, Role.TECHNOLOGIST)
    assert client.get(f"/dicomweb/studies/{generate_uid()}", headers=headers).status_code == 404
    assert client.get(f"/dicomweb/studies/{study_uid}", headers={**headers, "Accept": "image/png"}).status_code == 406
    frame = f"/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{uids[1]}/frames/1"
    lossy = {**headers, "Accept": 'multipart/related; type="image/jpeg"; transfer-syntax=1.2.840.10008.1.2.4.50'}
    assert client.get(frame, headers=lossy).status_code == 406  # never made lossy
    with engine.connect() as connection:
        before = connection.execute(select(func.count()).select_from(instance)).scalar_one()
    good = encoded(make_instance("CT", PATIENTS[1], generate_uid(), generate_uid(), 1))
    body = b"--X\r\nContent-Type: application/dicom\r\n\r\n" + good + b"\r\n--X\r\nContent-Type: application/dicom"
    content_type = 'multipart/related; type="application/dicom"; boundary=X'
    answer = client.post("/dicomweb/studies", data=body, headers={**headers, "Content-Type": content_type})
    assert answer.status_code == 400
    plain_form = client.post("/dicomweb/studies", data={"a": "b"}, headers=headers)
    assert plain_form.status_code == 415
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(instance)).scalar_one() == before


def test_production_refuses_the_loopback_address_without_login(tmp_path: Path, engine: Engine) -> None:
    document = {"storage": {"data_directory": str(tmp_path / "data")}, "web": {"secure_cookies": False}}
    settings = Settings(lambda: config_from_document(document, "test"))
    assert not settings.current.is_development
    production = create_app(settings, engine, Events())
    answer = production.test_client().get("/dicomweb/studies")
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"].startswith("Bearer")
