"""WADO-RS metadata as the view answers it: gzip when accepted, plain otherwise, 304 for the ETag a
client holds, every answer audited; the worker's cached answer replaced after a new instance, an
A40 merge (the surviving identity coerced in) and a compression (the new transfer syntax)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from datetime import timedelta

import pytest
from console_client import Events
from datagen import PATIENTS, encoded, make_instance
from flask import Flask
from flask.testing import FlaskClient
from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless, generate_uid
from sqlalchemy import Engine

from appliance.accounts import tokens, users
from appliance.accounts.roles import Role
from appliance.archive.index import Index
from appliance.archive.ingest import Ingest, StoreOutcome
from appliance.archive.lossless import LosslessCompressor
from appliance.archive.storage import FileStore
from appliance.patients.identities import Identifier, IdentityPolicy, PatientIdentity, Source, merge_patients
from appliance.web.dicomweb.views import METADATA_CACHE

RIS = Source("RIS", "CAB-X", "ADT^A40", "C1")
POLICY = IdentityPolicy(refuse_test_ins=True)


@pytest.fixture()
def ingest(app: Flask, engine: Engine) -> Ingest:
    return Ingest(FileStore(app.extensions["appliance"].config.storage.data_directory, 0), Index(engine))


@pytest.fixture()
def headers(engine: Engine, make_account: Callable[..., users.Account]) -> dict[str, str]:
    owner = make_account("viewer", Role.RADIOLOGIST)
    return {"Authorization": f"Bearer {tokens.create(engine, owner.id, 10).token}"}


def archive(ingest: Ingest, study_uid: str, series_uid: str, *numbers: int) -> None:
    for number in numbers:
        dataset = make_instance("CT", PATIENTS[0], study_uid, series_uid, number)
        assert ingest.store_object(encoded(dataset), "TEST").outcome is StoreOutcome.STORED


def read(answer: object) -> list[dict[str, dict[str, list[object]]]]:
    body = answer.data  # type: ignore[attr-defined]
    if answer.headers.get("Content-Encoding") == "gzip":  # type: ignore[attr-defined]
        body = gzip.decompress(body)
    found: list[dict[str, dict[str, list[object]]]] = json.loads(body)
    return found


def test_gzip_plain_and_not_modified_answers_each_audited(
    client: FlaskClient, ingest: Ingest, headers: dict[str, str], events: Events
) -> None:
    study_uid, series_uid = generate_uid(), generate_uid()
    archive(ingest, study_uid, series_uid, 1, 2)
    url = f"/dicomweb/studies/{study_uid}/series/{series_uid}/metadata"
    zipped = client.get(url, headers={**headers, "Accept-Encoding": "gzip, deflate"})
    assert zipped.status_code == 200 and zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.headers["Content-Type"] == "application/dicom+json" and "Accept-Encoding" in zipped.headers["Vary"]
    plain = client.get(url, headers={**headers, "Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    assert gzip.decompress(zipped.data) == plain.data and len(read(plain)) == 2
    refused = client.get(url, headers={**headers, "Accept-Encoding": "gzip;q=0, identity"})
    assert "Content-Encoding" not in refused.headers and refused.data == plain.data
    assert zipped.headers["ETag"] != plain.headers["ETag"]  # one tag per representation

    held = {**headers, "Accept-Encoding": "gzip", "If-None-Match": zipped.headers["ETag"]}
    unchanged = client.get(url, headers=held)
    assert unchanged.status_code == 304 and unchanged.data == b""
    assert unchanged.headers["ETag"] == zipped.headers["ETag"]
    other = client.get(url, headers={**held, "If-None-Match": '"something-else"'})
    assert other.status_code == 200 and other.data == zipped.data
    assert [event.event.code for event in events.recorded] == ["110103"] * 5  # the 304 too
    assert client.get(url.replace(series_uid, generate_uid()), headers=headers).status_code == 404


def test_cached_answer_replaced_after_a_new_instance_a_merge_and_a_compression(
    app: Flask, client: FlaskClient, engine: Engine, ingest: Ingest, headers: dict[str, str]
) -> None:
    study_uid, series_uid = generate_uid(), generate_uid()
    archive(ingest, study_uid, series_uid, 1, 2)
    url = f"/dicomweb/studies/{study_uid}/series/{series_uid}/metadata"
    first = client.get(url, headers=headers)
    assert client.get(url, headers=headers).data == first.data
    assert app.extensions[METADATA_CACHE].builds == 1

    archive(ingest, study_uid, series_uid, 3)
    third = client.get(url, headers={**headers, "If-None-Match": first.headers["ETag"]})
    assert third.status_code == 200 and len(read(third)) == 3

    surviving = PatientIdentity(Identifier("IPP2001", "CABINET", "", "PI"), birth_name="CŒUR", first_given_name="Zoé")
    with engine.begin() as connection:
        absorbed = Identifier(PATIENTS[0].patient_id, "CABINET", "", "PI")
        assert merge_patients(connection, surviving, absorbed, RIS, POLICY).outcome.applied
    merged = read(client.get(url, headers=headers))
    assert {str(document["00100020"]["Value"][0]) for document in merged} == {"IPP2001"}
    assert merged[0]["00100010"]["Value"] == [{"Alphabetic": "CŒUR^Zoé"}]

    assert {str(document["00020010"]["Value"][0]) for document in merged} == {ExplicitVRLittleEndian}
    report = LosslessCompressor(ingest.index, ingest.files, JPEGLSLossless, timedelta(0)).run_once(executor=None)
    assert report.compressed == 3
    compressed = read(client.get(url, headers=headers))
    assert {str(document["00020010"]["Value"][0]) for document in compressed} == {JPEGLSLossless}
    assert {str(document["7FE00010"]["vr"]) for document in compressed} == {"OB"}
    assert app.extensions[METADATA_CACHE].builds == 4


def test_one_instance_answer_is_made_for_the_request(
    app: Flask, client: FlaskClient, ingest: Ingest, headers: dict[str, str]
) -> None:
    study_uid, series_uid = generate_uid(), generate_uid()
    archive(ingest, study_uid, series_uid, 1)
    (document,) = read(client.get(f"/dicomweb/studies/{study_uid}/metadata", headers=headers))
    sop = str(document["00080018"]["Value"][0])
    url = f"/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{sop}/metadata"
    answer = client.get(url, headers={**headers, "Accept-Encoding": "gzip"})
    assert answer.headers["Content-Encoding"] == "gzip" and read(answer) == [document]
    held = {**headers, "If-None-Match": answer.headers["ETag"]}
    assert client.get(url, headers={**held, "Accept-Encoding": "identity"}).status_code == 200  # another representation
    assert client.get(url, headers={**held, "Accept-Encoding": "gzip"}).status_code == 304
    assert app.extensions[METADATA_CACHE].builds == 1  # the study's answer only
