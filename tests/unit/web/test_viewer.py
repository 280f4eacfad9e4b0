"""The built-in viewer's routes: the page (its policy, its preview, its audit record), the study's
description for the script, key images flagged into a new KOS (permission, CSRF, bad input, audit),
the built files (media types, caching) and the key images listed on the study page."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from console_client import Events
from datagen import PATIENTS, encoded, make_instance
from flask import Flask
from flask.testing import FlaskClient
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import Engine

from appliance.accounts.roles import Role
from appliance.archive.index import Index
from appliance.archive.ingest import IncomingObject, Ingest, StoreOutcome
from appliance.archive.key_images import KEY_OBJECT_SELECTION, key_objects
from appliance.archive.storage import FileStore
from appliance.config import Settings
from appliance.web.viewer.views import DIST, manifest_of

CSRF = re.compile(r'data-csrf-token="([^"]+)"')


@pytest.fixture()
def images(engine: Engine, settings: Settings) -> list[Dataset]:
    """Five small CT images of ŒUVRARD Chloé, stored in the console's own data folder."""
    storage = settings.current.storage
    ingest = Ingest(FileStore(storage.data_directory, 0), Index(engine))
    study_uid, series_uid = generate_uid(), generate_uid()
    stored = []
    for number in range(1, 6):
        dataset = make_instance("CT", PATIENTS[0], study_uid, series_uid, number)
        dataset.Rows = dataset.Columns = 8
        dataset.PixelData = b"\0" * 128
        incoming = IncomingObject(encoded(dataset), dataset.SOPInstanceUID, dataset.SOPClassUID, "CT_SALLE1")
        assert ingest.store(incoming).outcome is StoreOutcome.STORED
        stored.append(dataset)
    return stored


def page_token(client: FlaskClient, study_uid: str) -> str:
    found = CSRF.search(client.get(f"/viewer/studies/{study_uid}").get_data(as_text=True))
    assert found
    return found.group(1)


def flag(client: FlaskClient, study_uid: str, body: object, token: str | None) -> tuple[int, dict[str, object]]:
    headers = {"X-CSRFToken": token} if token else {}
    answer = client.post(f"/viewer/studies/{study_uid}/key-images", json=body, headers=headers)
    return answer.status_code, answer.get_json(silent=True) or {}


def test_the_page_opens_on_the_middle_image_with_the_viewer_policy_and_one_audit_record(
    images: list[Dataset], logged_in: Callable[[Role], FlaskClient], events: Events
) -> None:
    client = logged_in(Role.SECRETARY)
    study_uid = images[0].StudyInstanceUID
    answer = client.get(f"/viewer/studies/{study_uid}")
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    middle = images[2]
    assert (
        f'src="/dicomweb/studies/{study_uid}/series/{middle.SeriesInstanceUID}/instances/{middle.SOPInstanceUID}/rendered"'
        in page
    )
    assert "ŒUVRARD Chloé" in page and "Poumon" in page and 'data-width="1500" data-center="-600"' in page
    assert 'id="flag"' in page and 'id="key-image-form" hidden' in page  # a secretary flags nothing
    policy = answer.headers["Content-Security-Policy"]
    assert "script-src 'self' 'wasm-unsafe-eval'" in policy and "unsafe-inline" not in policy
    assert "wasm-unsafe-eval" not in client.get("/studies").headers["Content-Security-Policy"]
    (event,) = events.of("110103")
    assert event.action.value == "R"
    assert [item.object_id for item in event.objects] == ["IPP0001^^^CABINET", study_uid]


def test_the_description_lists_series_and_instances_in_order(
    images: list[Dataset], logged_in: Callable[[Role], FlaskClient], events: Events
) -> None:
    client = logged_in(Role.TECHNOLOGIST)
    study_uid = images[0].StudyInstanceUID
    described = client.get(f"/viewer/studies/{study_uid}/study.json").get_json()
    (series,) = described["series"]
    assert series["images"] and series["frames"] == 5 and series["modality"] == "CT"
    assert [entry["sop_instance_uid"] for entry in series["instances"]] == [image.SOPInstanceUID for image in images]
    assert described["addresses"]["instance"].startswith("/wado?requestType=WADO&studyUID={study}")
    assert described["key_images"] == [] and events.of("110103") == []
    assert client.get("/viewer/studies/1.2.3.4/study.json").status_code == 404
    assert client.get("/viewer/studies/not-a-uid").status_code == 404


def test_a_radiologist_flags_key_images_into_a_new_kos(
    images: list[Dataset], engine: Engine, logged_in: Callable[[Role], FlaskClient], events: Events
) -> None:
    client = logged_in(Role.RADIOLOGIST)
    study_uid = images[0].StudyInstanceUID
    token = page_token(client, study_uid)
    body = {
        "title": "113004",
        "note": "Coupes de référence",
        "images": [
            {"series_instance_uid": image.SeriesInstanceUID, "sop_instance_uid": image.SOPInstanceUID, "frame": None}
            for image in (images[1], images[3])
        ],
    }
    status, answer = flag(client, study_uid, body, token)
    assert status == 201, answer
    (listed,) = answer["key_images"]  # type: ignore[misc]
    assert listed["title"] == "Pour l'enseignement" and listed["note"] == "Coupes de référence"
    assert listed["author"] == "User-Radiologist"
    assert [image["sop_instance_uid"] for image in listed["images"]] == [
        images[1].SOPInstanceUID,
        images[3].SOPInstanceUID,
    ]
    (created,) = [event for event in events.of("110103") if event.action.value == "C"]
    assert created.objects[1].object_id == study_uid and created.objects[1].instances == ((KEY_OBJECT_SELECTION, 1),)
    assert created.participants[0].user_id == "user-radiologist"
    study_page = client.get(f"/studies/{study_uid}").get_data(as_text=True)
    assert 'id="key-images"' in study_page and "Pour l&#39;enseignement" in study_page
    assert f"key-object={listed['sop_instance_uid']}" in study_page
    assert 'id="open-viewer"' in study_page and 'id="open-weasis"' in study_page


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"title": "113000", "images": []}, "no image flagged"),
        ({"title": "113001", "images": "x"}, "not a key-image request"),
        ({"title": "113001", "images": [{"sop_instance_uid": "1.2.3"}]}, "CID 7010"),
        ({"images": [{"sop_instance_uid": "1.2.3"}]}, "is not an instance of this study"),
        ({"images": [{"sop_instance_uid": "DROP TABLE"}]}, "SOP Instance UID"),
    ],
)
def test_bad_flag_requests_are_answered_and_store_nothing(
    images: list[Dataset], engine: Engine, logged_in: Callable[[Role], FlaskClient], body: object, reason: str
) -> None:
    client = logged_in(Role.RADIOLOGIST)
    study_uid = images[0].StudyInstanceUID
    status, answer = flag(client, study_uid, body, page_token(client, study_uid))
    assert status == 400
    assert str(answer["error"]).startswith("Les images clés n'ont pas été enregistrées") and reason in str(
        answer["error"]
    )
    assert key_objects(engine, study_uid) == []


def test_a_flag_without_the_csrf_header_is_refused(
    images: list[Dataset], engine: Engine, logged_in: Callable[[Role], FlaskClient]
) -> None:
    client = logged_in(Role.RADIOLOGIST)
    study_uid = images[0].StudyInstanceUID
    body = {"images": [{"sop_instance_uid": images[0].SOPInstanceUID}]}
    status, _ = flag(client, study_uid, body, None)
    assert status == 400 and key_objects(engine, study_uid) == []


@pytest.mark.skipif(not (DIST / ".vite" / "manifest.json").exists(), reason="the viewer is not built (make viewer)")
def test_the_built_files_have_their_media_types_and_are_cached_for_good(app: Flask, client: FlaskClient) -> None:
    files = [path.name for path in DIST.iterdir() if path.is_file()]
    wasm = next(name for name in files if name.endswith(".wasm"))
    script = manifest_of(DIST)["src/main.js"]["file"]
    for name, media_type in ((wasm, "application/wasm"), (script, "text/javascript")):
        answer = client.get(f"/viewer/assets/{name}")  # no login: the built viewer holds no patient data
        assert answer.status_code == 200 and answer.mimetype == media_type
        assert answer.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert "'wasm-unsafe-eval'" in answer.headers["Content-Security-Policy"]  # the decoding workers' policy
    assert client.get("/viewer/assets/../views.py").status_code == 404
    assert client.get("/viewer/assets/nothing.js").status_code == 404


def test_the_study_page_says_when_there_are_no_key_images(
    images: list[Dataset], logged_in: Callable[[Role], FlaskClient], tmp_path: Path
) -> None:
    page = logged_in(Role.SECRETARY).get(f"/studies/{images[0].StudyInstanceUID}").get_data(as_text=True)
    assert 'id="no-key-images"' in page and "Aucune image clé dans cet examen." in page
    assert json.dumps("x")  # the page is plain HTML: no inline script added
    assert "<script>" not in page
