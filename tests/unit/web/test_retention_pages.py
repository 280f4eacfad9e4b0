"""The retention and tiers pages: who may open them, what they list on an injected date, a purge
confirmed with a reason (exactly one 110105 with the patient and the study), nothing deleted
without confirmation, legal holds, and the tiers page queueing its jobs."""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from console_client import Events, csrf_token
from datagen import PATIENTS, encoded, make_instance
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select

from appliance import jobs
from appliance.accounts.roles import Role
from appliance.archive.index import Index
from appliance.archive.ingest import IncomingObject, Ingest
from appliance.archive.storage import FileStore
from appliance.audit.events import Action, ObjectKind
from appliance.config import Settings
from appliance.config.writer import write_console_settings
from appliance.db.schema import study
from appliance.web.retention import views

LATER = date(2031, 6, 1)


@pytest.fixture()
def old_study(engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> str:
    """One CR study of 2019 for a patient born in 1975, on the configured data folder; today is 2031."""
    data = settings.current.storage.data_directory
    dataset = make_instance("CR", PATIENTS[1], study_date="20190402", accession_number="ACC777")
    ingest = Ingest(FileStore(data, 0), Index(engine))
    ingest.store(IncomingObject(encoded(dataset), dataset.SOPInstanceUID, dataset.SOPClassUID, "CR_X"))
    monkeypatch.setattr(views, "today", lambda: LATER)
    return str(dataset.StudyInstanceUID)


def studies(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(study)) or 0)


@pytest.mark.parametrize("role", [Role.SECRETARY, Role.TECHNOLOGIST, Role.RADIOLOGIST, Role.MAINTENANCE])
def test_only_an_administrator_opens_the_retention_pages(
    old_study: str, engine: Engine, logged_in: Callable[[Role], FlaskClient], role: Role
) -> None:
    client = logged_in(role)  # every route's refusal with CSRF off is in test_routes.py
    assert client.get("/retention").status_code == 403
    assert client.get(f"/retention/{old_study}/purge").status_code == 403
    assert client.post(f"/retention/{old_study}/purge", data={"reason": "x", "confirmed": "y"}).status_code in (
        400,
        403,
    )
    assert studies(engine) == 1


def test_the_list_shows_the_expired_study_and_is_audited_as_a_query(
    old_study: str, logged_in: Callable[[Role], FlaskClient], events: Events
) -> None:
    page = logged_in(Role.ADMINISTRATOR).get("/retention").get_data(as_text=True)
    assert old_study in page and "DUPONT Jean-François" in page and "Durée de conservation dépassée" in page
    assert len(events.of("110112")) == 1


def test_a_purge_needs_a_reason_and_the_box_ticked_then_is_audited_once(
    old_study: str, engine: Engine, logged_in: Callable[[Role], FlaskClient], events: Events, settings: Settings
) -> None:
    client = logged_in(Role.ADMINISTRATOR)
    path = f"/retention/{old_study}/purge"
    token = csrf_token(client, path)
    unconfirmed = client.post(path, data={"csrf_token": token, "reason": "Durée échue"})
    no_reason = client.post(path, data={"csrf_token": token, "confirmed": "y", "reason": " "})
    assert "Cochez la case" in unconfirmed.get_data(as_text=True)
    assert "Indiquez le motif" in no_reason.get_data(as_text=True)
    assert studies(engine) == 1 and events.of("110105") == []

    answer = client.post(path, data={"csrf_token": token, "confirmed": "y", "reason": "Durée échue"})

    assert answer.status_code == 302 and studies(engine) == 0
    assert not list(settings.current.storage.data_directory.glob("archive/**/*.dcm"))
    [deleted] = events.of("110105")
    assert deleted.action == Action.DELETE and deleted.outcome_description == "Durée échue"
    assert [(found.kind, found.object_id) for found in deleted.objects] == [
        (ObjectKind.PATIENT, "IPP0002^^^CABINET"),
        (ObjectKind.STUDY, old_study),
    ]
    assert deleted.requestor is not None and deleted.requestor.user_id == "user-administrator"


def test_a_frozen_study_leaves_the_list_and_cannot_be_purged(
    old_study: str, engine: Engine, logged_in: Callable[[Role], FlaskClient], events: Events
) -> None:
    client = logged_in(Role.ADMINISTRATOR)
    token = csrf_token(client, f"/retention/{old_study}/purge")
    assert client.post(f"/retention/{old_study}/freeze", data={"csrf_token": token, "reason": ""}).status_code == 400
    client.post(f"/retention/{old_study}/freeze", data={"csrf_token": token, "reason": "Contentieux"})
    page = client.get("/retention").get_data(as_text=True)
    assert "Aucun examen n'a dépassé" in page and "Contentieux" in page
    client.post(f"/retention/{old_study}/purge", data={"csrf_token": token, "confirmed": "y", "reason": "fin"})
    assert studies(engine) == 1 and events.of("110105") == []
    assert len(events.of("110110")) == 1


def test_the_tiers_page_counts_and_queues_its_jobs(
    old_study: str, engine: Engine, logged_in: Callable[[Role], FlaskClient]
) -> None:
    client = logged_in(Role.MAINTENANCE)
    page = client.get("/tiers").get_data(as_text=True)
    assert "Accès immédiat (stockage principal)" in page and "Aucun archivage différé" in page
    token = csrf_token(client, "/tiers")
    assert client.post("/tiers/move", data={"csrf_token": token}).status_code == 400
    refused = client.post("/tiers/bring-back", data={"csrf_token": token, "study_instance_uid": old_study})
    assert "aucune image en archivage différé" in refused.get_data(as_text=True)
    assert jobs.recent(engine) == []


def test_the_tiers_page_says_when_lossy_compression_is_on(
    settings: Settings, logged_in: Callable[[Role], FlaskClient], tmp_path: Path
) -> None:
    client = logged_in(Role.ADMINISTRATOR)
    folder = {"deferred": "folder", "directory": str(tmp_path / "nas")}
    write_console_settings(settings.current, {"tiers": folder})
    settings.reload()
    assert 'id="lossy-on"' not in client.get("/tiers").get_data(as_text=True)  # off by default
    write_console_settings(settings.current, {"tiers": {**folder, "lossy": {"enabled": True}}})
    settings.reload()
    page = html.unescape(client.get("/tiers").get_data(as_text=True))
    assert "La compression avec perte est activée (tiers.lossy, jpeg-2000)" in page
