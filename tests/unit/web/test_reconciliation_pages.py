"""The reconciliation pages on real data (HL7 messages through the receiver, images through the
ingest): the list and its reasons, the patient search, both identities side by side, the attachment
and its effect on the archive, permissions, and one audit event per page."""

from __future__ import annotations

from collections.abc import Callable
from html import unescape
from pathlib import Path

import pytest
from console_client import Events, csrf_token
from flask.testing import FlaskClient
from ris_and_images import ORDERED_PATIENT, RIS_ISSUER, RIS_PATIENT, practice
from sqlalchemy import Engine, select
from werkzeug.test import TestResponse as FlaskResponse

from appliance.accounts.roles import Role
from appliance.archive.search import Query, find
from appliance.audit.events import ObjectKind
from appliance.db.schema import identity_change

LoggedIn = Callable[[Role], FlaskClient]


@pytest.fixture()
def waiting(engine: Engine, tmp_path: Path) -> dict[str, str]:
    return practice(engine, tmp_path)


def page(client: FlaskClient, path: str) -> str:
    answer = client.get(path)
    assert answer.status_code == 200, answer.status_code
    return unescape(answer.get_data(as_text=True))


def attach(client: FlaskClient, study_uid: str, patient_id: str, issuer: str, token: str) -> FlaskResponse:
    data = {"patient_id": patient_id, "issuer": issuer, "csrf_token": token}
    return client.post(f"/reconciliation/{study_uid}/attach", data=data, follow_redirects=True)


def test_the_list_says_who_what_and_why_and_records_one_view(
    logged_in: LoggedIn, waiting: dict[str, str], events: Events
) -> None:
    shown = page(logged_in(Role.SECRETARY), "/reconciliation")
    assert "MARTIN Noël" in shown and "ŒUVRARD Chloé" in shown
    assert "NOORDER" in shown and "ACC0001" in shown and "20/11/2026" in shown
    assert "Aucune demande ne le nomme." in shown
    assert f"Son numéro d'accession est demandé pour le patient {ORDERED_PATIENT}." in shown
    assert "2 examens." in shown
    (view,) = events.of("110103")
    assert view.requestor is not None and view.requestor.user_id == "user-secretary"
    assert {item.object_id for item in view.objects if item.kind == ObjectKind.STUDY} == set(waiting.values())
    assert {item.object_id for item in view.objects if item.kind == ObjectKind.PATIENT} == {
        "IPP0004^^^CABINET",
        f"{RIS_PATIENT}^^^{RIS_ISSUER}",
    }


def test_the_home_tile_counts_the_waiting_studies(logged_in: LoggedIn, waiting: dict[str, str]) -> None:
    home = page(logged_in(Role.SECRETARY), "/")
    assert 'href="/reconciliation"' in home and '<span class="tile-value">2</span>' in home


@pytest.mark.parametrize("role", [Role.MAINTENANCE])
def test_maintenance_may_not_reconcile(logged_in: LoggedIn, waiting: dict[str, str], role: Role) -> None:
    client = logged_in(role)
    assert client.get("/reconciliation").status_code == 403
    assert client.get(f"/reconciliation/{waiting['no order']}").status_code == 403
    token = csrf_token(client, "/")
    answer = attach(client, waiting["no order"], RIS_PATIENT, RIS_ISSUER, token)
    assert answer.status_code == 403


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("family=oeuvrard", RIS_PATIENT),  # accents, ligature and case aside, the beginning is enough
        ("family=pat-tr&given=domi", ORDERED_PATIENT),
        (f"ipp={ORDERED_PATIENT}", ORDERED_PATIENT),
        ("ins=1800 1751 2345 678", RIS_PATIENT),
    ],
)
def test_the_search_finds_the_patient_and_records_the_query(
    logged_in: LoggedIn, waiting: dict[str, str], events: Events, query: str, expected: str
) -> None:
    shown = page(logged_in(Role.SECRETARY), f"/reconciliation/{waiting['no order']}?{query}")
    assert f'data-patient="{expected}"' in shown and shown.count("data-patient=") == 1
    assert events.of("110103") == []
    (search,) = events.of("110112")
    (keys,) = search.objects
    assert keys.kind == ObjectKind.QUERY and keys.query


def test_opening_the_study_records_a_view_and_bad_searches_are_answered_next_to_the_field(
    logged_in: LoggedIn, waiting: dict[str, str], events: Events
) -> None:
    client = logged_in(Role.TECHNOLOGIST)
    path = f"/reconciliation/{waiting['no order']}"
    shown = page(client, path)
    assert "MARTIN Noël" in shown and "NOORDER" in shown
    (view,) = events.of("110103")
    assert [item.object_id for item in view.objects if item.kind == ObjectKind.STUDY] == [waiting["no order"]]
    empty = page(client, f"{path}?family=&given=&ipp=&ins=")
    assert 'id="family-errors"' in empty and "Tapez un nom, un IPP ou un INS." in empty
    wrong = page(client, f"{path}?ins=12345")
    assert 'id="ins-errors"' in wrong and "Un INS a 15 chiffres." in wrong
    assert events.of("110112") == []
    nobody = page(client, f"{path}?family=personne")
    assert 'id="no-patient-found"' in nobody


def test_attaching_moves_the_study_to_the_patient_chosen_and_is_audited(
    logged_in: LoggedIn, waiting: dict[str, str], events: Events, engine: Engine
) -> None:
    client = logged_in(Role.SECRETARY)
    study_uid = waiting["no order"]
    confirm = f"/reconciliation/{study_uid}/attach?patient_id={RIS_PATIENT}&issuer={RIS_ISSUER}"
    shown = page(client, confirm)
    assert 'id="identity-received"' in shown and 'id="identity-target"' in shown
    assert "MARTIN Noël" in shown and "ŒUVRARD Chloé" in shown and "180017512345678" in shown
    (view,) = events.of("110103")
    assert {item.object_id for item in view.objects} == {
        "IPP0004^^^CABINET",
        f"{RIS_PATIENT}^^^{RIS_ISSUER}",
        study_uid,
    }
    answer = attach(client, study_uid, RIS_PATIENT, RIS_ISSUER, csrf_token(client, confirm))
    assert answer.request.path == "/reconciliation"
    listed = unescape(answer.get_data(as_text=True))
    assert "L'examen est rattaché au patient" in listed and study_uid not in listed
    (now,) = find(engine, Query("STUDY", {"StudyInstanceUID": study_uid, "PatientID": ""}), 1)
    assert (now["PatientID"], now["IssuerOfPatientID"]) == (RIS_PATIENT, RIS_ISSUER)
    with engine.connect() as connection:
        change = connection.execute(select(identity_change).order_by(identity_change.c.id.desc())).first()
    assert change is not None and (change.action, change.source_application) == ("study-attached", "user-secretary")
    assert change.detail.startswith(f"study {study_uid} moved")
    (attached,) = events.of("110110")
    assert attached.action == "U" and attached.outcome == 0
    assert attached.outcome_description == f"attached to {RIS_PATIENT}^^^{RIS_ISSUER} by console"
    assert [item.object_id for item in attached.objects] == [
        "IPP0004^^^CABINET",
        f"{RIS_PATIENT}^^^{RIS_ISSUER}",
        study_uid,
    ]


def test_each_outcome_is_answered_in_words(
    logged_in: LoggedIn, waiting: dict[str, str], events: Events, engine: Engine
) -> None:
    client = logged_in(Role.RADIOLOGIST)
    study_uid = waiting["ordered elsewhere"]
    token = csrf_token(client, "/reconciliation")

    def answer(uid: str, patient_id: str, issuer: str) -> str:
        return unescape(attach(client, uid, patient_id, issuer, token).get_data(as_text=True))

    assert "L'examen appartenait déjà à ce patient" in answer(study_uid, RIS_PATIENT, RIS_ISSUER)
    assert "Ce patient n'est pas dans l'archive : rien n'a changé." in answer(study_uid, "NOBODY", "")
    assert "Cet examen n'est pas dans l'archive : rien n'a changé." in answer("1.2.3", RIS_PATIENT, RIS_ISSUER)
    assert [event.outcome for event in events.of("110110")] == [0, 4, 4]
    expired = client.post(f"/reconciliation/{study_uid}/attach", data={"patient_id": RIS_PATIENT})
    assert expired.status_code in (302, 400)
    assert len(events.of("110110")) == 3


def test_a_study_no_longer_waiting_or_an_unknown_patient_sends_back(
    logged_in: LoggedIn, waiting: dict[str, str]
) -> None:
    client = logged_in(Role.SECRETARY)
    gone = client.get("/reconciliation/1.2.3", follow_redirects=True)
    assert gone.request.path == "/reconciliation" and "n'attend plus" in unescape(gone.get_data(as_text=True))
    unknown = client.get(f"/reconciliation/{waiting['no order']}/attach?patient_id=NOBODY", follow_redirects=True)
    assert unknown.request.path == f"/reconciliation/{waiting['no order']}"
