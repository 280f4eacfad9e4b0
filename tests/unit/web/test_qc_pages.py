"""The quality-control pages: a report made by the real daily run on the console's index, listed,
shown in the console, as a standalone document and as a PDF; signed off by a radiologist only,
once, recorded in the audit trail; a sign-off without the box ticked answered next to the field."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from console_client import Events, csrf_token
from flask.testing import FlaskClient
from sqlalchemy import Engine

from appliance.accounts.roles import Role
from appliance.audit.events import Outcome
from appliance.audit.trail import verify_file
from appliance.config import Settings
from appliance.qc import store
from appliance.qc.daily import run_daily

NOW = datetime(2026, 12, 4, 6, 30, tzinfo=UTC)


@pytest.fixture()
def report(settings: Settings, engine: Engine, tmp_path: Path) -> store.StoredReport:
    return run_daily(settings.current, engine, NOW, lambda: verify_file(tmp_path / "audit.sqlite")).report


def test_the_report_is_listed_shown_and_given_as_html_and_pdf(
    logged_in: Callable[[Role], FlaskClient], report: store.StoredReport, events: Events
) -> None:
    client = logged_in(Role.SECRETARY)
    listing = client.get("/qc").get_data(as_text=True)
    assert 'id="qc-report-2026-12-04"' in listing and "04/12/2026" in listing and "pas encore" in listing
    page = client.get(f"/qc/{report.id}").get_data(as_text=True)
    assert "Contrôle qualité du système d'archivage" in page and report.facts_sha256 in page
    assert "Intégrité des images (échantillon tournant)" in page and 'id="sign-form"' not in page  # not hers to sign
    document = client.get(f"/qc/{report.id}/document")
    assert document.mimetype == "text/html" and 'href="/qc/report.css"' in document.get_data(as_text=True)
    assert client.get("/qc/report.css").mimetype == "text/css"
    pdf = client.get(f"/qc/{report.id}/pdf")
    assert pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF-")
    assert "controle-qualite-2026-12-04.pdf" in pdf.headers["Content-Disposition"]
    assert client.get("/qc/999").status_code == 404
    assert events.of("110113") == []  # reading a report records nothing: it holds no patient data


def test_the_radiologist_signs_off_once_and_it_is_audited(
    logged_in: Callable[[Role], FlaskClient], report: store.StoredReport, events: Events, engine: Engine
) -> None:
    client = logged_in(Role.RADIOLOGIST)
    token = csrf_token(client, f"/qc/{report.id}")
    answer = client.post(f"/qc/{report.id}/sign", data={"csrf_token": token, "read": "y", "comment": " Relu, RAS. "})
    assert answer.status_code == 302
    signed = store.get(engine, report.id)
    assert signed is not None and signed.signed_by == "user-radiologist" and signed.signed_comment == "Relu, RAS."
    [event] = events.of("110113")
    assert event.outcome is Outcome.SUCCESS and event.event_type is not None and event.event_type.code == "110132"
    assert event.participants[0].user_id == "user-radiologist"
    [signed_object] = event.objects
    assert signed_object.object_id == f"qc-report:{report.id}"
    assert ("facts-sha256", report.facts_sha256) in signed_object.details
    page = client.get(f"/qc/{report.id}").get_data(as_text=True)
    assert 'id="qc-signed"' in page and "User-Radiologist" in page and 'id="sign-form"' not in page
    again = client.post(f"/qc/{report.id}/sign", data={"csrf_token": token, "read": "y"}, follow_redirects=True)
    assert "Ce rapport a déjà été visé." in again.get_data(as_text=True)
    assert [event.outcome for event in events.of("110113")] == [Outcome.SUCCESS, Outcome.MINOR_FAILURE]


def test_a_sign_off_without_the_box_ticked_is_answered_next_to_it(
    logged_in: Callable[[Role], FlaskClient], report: store.StoredReport, events: Events, engine: Engine
) -> None:
    client = logged_in(Role.RADIOLOGIST)
    token = csrf_token(client, f"/qc/{report.id}")
    answer = client.post(f"/qc/{report.id}/sign", data={"csrf_token": token, "comment": "x" * 1001})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert 'id="read-errors"' in page and "Cochez cette case pour viser le rapport." in page
    assert 'id="comment-errors"' in page
    kept = store.get(engine, report.id)
    assert kept is not None and not kept.signed and events.of("110113") == []


@pytest.mark.parametrize("role", [Role.ADMINISTRATOR, Role.SECRETARY, Role.MAINTENANCE, Role.TECHNOLOGIST])
def test_only_radiologists_sign_off(
    logged_in: Callable[[Role], FlaskClient], report: store.StoredReport, role: Role
) -> None:
    client = logged_in(role)
    token = csrf_token(client, "/qc")
    assert client.post(f"/qc/{report.id}/sign", data={"csrf_token": token, "read": "y"}).status_code == 403
