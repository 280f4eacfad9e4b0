"""The HL7 message log on real data: messages received through the HL7 receiver, messages queued for
the RIS (a workflow change) and for a modality (a storage commitment report) by their producers.
The log for administrators and maintenance, the content for administrators only (recorded with the
patients it names), filters and pages, and the retry of a parked message."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path

import pytest
from console_client import Events, csrf_token
from flask.testing import FlaskClient
from ris_and_images import RIS_ISSUER, RIS_PATIENT, receive, step_of
from sqlalchemy import Engine

from appliance import inbox, outbox
from appliance.accounts.roles import Role
from appliance.archive import changes
from appliance.archive.commitment import Reference, check_received, record_request
from appliance.archive.storage import FileStore
from appliance.audit.events import ObjectKind
from appliance.config import development_config
from appliance.hl7.outbound import enqueue_events
from appliance.practice_time import today as practice_today
from appliance.web.messages import views

LoggedIn = Callable[[Role], FlaskClient]
POLICY = outbox.RetryPolicy(initial_seconds=1, maximum_seconds=1, refusals_before_parking=1)


@pytest.fixture()
def log(engine: Engine, tmp_path: Path) -> dict[str, int]:
    """Three messages received (A28, ORM, A40), an ORM^O01 for the RIS refused and parked, and a
    storage commitment report waiting for CT1; their ids."""
    receive(engine, tmp_path, "a28_utf8.hl7", "orm_zds_8859-15.hl7", "a40_merge.hl7")
    with engine.begin() as connection:
        moment = datetime.now(UTC)
        step = step_of(engine, "ACC0001")
        changes.publish(connection, changes.PROCEDURE_IN_PROGRESS, "1.2.3", moment, scheduled_step_pk=step)
    assert enqueue_events(engine, development_config(tmp_path / "out")) == 1
    to_ris = outbox.next_due(engine, ("hl7-ris",))
    assert to_ris is not None
    outbox.record(engine, to_ris, outbox.Attempt(outbox.Outcome.REFUSED, "AE: unknown order"), POLICY)
    record_request(engine, "1.2.3.4.5", "CT1", [Reference("1.2.840.10008.5.1.4.1.1.2", "1.2.3.4.6")])
    assert check_received(engine, FileStore(tmp_path / "files", 0)) == 1
    received = {row.message_type.split("^")[1]: row.id for row in inbox.listing(engine, inbox.Selection())}
    sent = {row.channel: row.id for row in outbox.listing(engine, outbox.Selection())}
    return {**received, "ris": sent["hl7-ris"], "commitment": sent["storage-commitment:CT1"]}


def page(client: FlaskClient, path: str, status: int = 200) -> str:
    answer = client.get(path)
    assert answer.status_code == status, answer.status_code
    return unescape(answer.get_data(as_text=True))


def test_the_log_of_received_messages_for_an_administrator(
    logged_in: LoggedIn, log: dict[str, int], events: Events
) -> None:
    shown = page(logged_in(Role.ADMINISTRATOR), "/messages")
    for control_id, message_type in (("A28-0001", "ADT^A28^ADT_A05"), ("MSG0001", "ORM^O01"), ("A40-0001", "")):
        assert control_id in shown and message_type in shown
    assert shown.count('class="badge ok">appliqué<') == 3 and "<td>AA</td>" in shown and "RIS|CAB-X" in shown
    assert f'href="/messages/in/{log["A28"]}"' in shown
    assert "ŒUVRARD" not in shown and "IPP1001" not in shown  # no patient data on the log
    assert events.of("110110") == [] and events.of("110103") == []


def test_the_log_of_messages_sent_says_what_waits_and_what_was_set_aside(
    logged_in: LoggedIn, log: dict[str, int]
) -> None:
    shown = page(logged_in(Role.ADMINISTRATOR), "/messages?direction=out")
    assert "hl7-ris" in shown and "ORM^O01" in shown and "mis de côté (refusé)" in shown
    assert "AE: unknown order" in shown
    assert "storage-commitment:CT1" in shown and "N-EVENT-REPORT" in shown and "en attente" in shown
    assert f'action="/messages/out/{log["ris"]}/retry"' in shown
    assert f'action="/messages/out/{log["commitment"]}/retry"' not in shown  # only parked ones


def test_maintenance_sees_the_log_but_not_the_content_and_cannot_retry(
    logged_in: LoggedIn, log: dict[str, int]
) -> None:
    client = logged_in(Role.MAINTENANCE)
    shown = page(client, "/messages")
    assert "A28-0001" in shown and "/messages/in/" not in shown
    assert "/retry" not in page(client, "/messages?direction=out")
    page(client, f"/messages/in/{log['A28']}", status=403)
    page(client, f"/messages/out/{log['ris']}", status=403)
    answer = client.post(f"/messages/out/{log['ris']}/retry", data={"csrf_token": csrf_token(client, "/messages")})
    assert answer.status_code == 403


@pytest.mark.parametrize("role", [Role.SECRETARY, Role.TECHNOLOGIST, Role.RADIOLOGIST])
def test_clinical_roles_do_not_see_the_hl7_log(logged_in: LoggedIn, log: dict[str, int], role: Role) -> None:
    client = logged_in(role)
    page(client, "/messages", status=403)
    page(client, f"/messages/in/{log['A28']}", status=403)
    assert "/messages" not in page(client, "/")  # neither in the menu nor on the tile


def test_the_content_is_shown_one_segment_a_line_and_recorded_with_its_patient(
    logged_in: LoggedIn, log: dict[str, int], events: Events
) -> None:
    shown = page(logged_in(Role.ADMINISTRATOR), f"/messages/in/{log['A28']}")
    assert "\nPID|1||IPP1001^^^RIS-CAB-X^PI~180017512345678" in shown and "ŒUVRARD^Chloé" in shown
    assert "\nEVN||20250601080000\n" in shown
    assert 'id="acknowledgement-content"' in shown and "MSA|AA|A28-0001" in shown
    (reading,) = events.of("110110")
    assert reading.action == "R" and reading.requestor is not None
    (person,) = reading.objects
    assert (person.kind, person.object_id, person.name) == (
        ObjectKind.PATIENT,
        f"{RIS_PATIENT}^^^{RIS_ISSUER}",
        "ŒUVRARD^Chloé",
    )
    assert person.details == (("identifier", "180017512345678^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO"),)


def test_a_latin_9_message_and_a_merge_name_their_patients(
    logged_in: LoggedIn, log: dict[str, int], events: Events
) -> None:
    client = logged_in(Role.ADMINISTRATOR)
    assert "Mammographie bilatérale (contrôle Œdème, 20 €)" in page(client, f"/messages/in/{log['O01']}")
    page(client, f"/messages/in/{log['A40']}")
    merge = events.of("110110")[-1]
    assert [item.object_id for item in merge.objects] == ["IPP1001^^^RIS-CAB-X", "IPP1009^^^RIS-CAB-X"]


def test_sent_messages_show_their_content_and_a_report_names_no_patient(
    logged_in: LoggedIn, log: dict[str, int], events: Events
) -> None:
    client = logged_in(Role.ADMINISTRATOR)
    to_ris = page(client, f"/messages/out/{log['ris']}")
    assert "\nORC|SC|" in to_ris and 'id="retry"' in to_ris
    report = page(client, f"/messages/out/{log['commitment']}")
    assert '"transaction_uid": "1.2.3.4.5"' in report and 'id="retry"' not in report
    first, second = events.of("110110")
    assert [item.object_id for item in first.objects] == ["IPP123^^^RIS-CAB-X"] and second.objects == ()
    page(client, "/messages/out/9999", status=404)


def test_a_parked_message_is_retried_once_and_audited(
    logged_in: LoggedIn, log: dict[str, int], events: Events, engine: Engine
) -> None:
    client = logged_in(Role.ADMINISTRATOR)
    token = csrf_token(client, f"/messages/out/{log['ris']}")
    answer = client.post(f"/messages/out/{log['ris']}/retry", data={"csrf_token": token}, follow_redirects=True)
    assert "Le message est remis en file" in unescape(answer.get_data(as_text=True))
    found = outbox.message(engine, log["ris"])
    assert found is not None and found.status == outbox.PENDING
    again = client.post(f"/messages/out/{log['ris']}/retry", data={"csrf_token": token}, follow_redirects=True)
    assert "n'est pas mis de côté" in unescape(again.get_data(as_text=True))
    retried, refused = events.of("110113")
    assert retried.event_type is not None and retried.event_type.code == "110132"
    assert (retried.outcome, retried.outcome_description) == (0, "message retried")
    assert retried.objects[0].object_id == f"outbox:{log['ris']}" and refused.outcome == 4
    assert client.post(f"/messages/out/{log['ris']}/retry", data={}).status_code == 400  # no CSRF token


def test_filters_and_their_errors(logged_in: LoggedIn, log: dict[str, int]) -> None:
    client = logged_in(Role.ADMINISTRATOR)
    orders = page(client, "/messages?direction=in&message_type=ORM")
    assert "MSG0001" in orders and "A28-0001" not in orders
    assert "Aucun message ne correspond." in page(client, "/messages?direction=in&status=refused")
    parked = page(client, "/messages?direction=out&status=parked")
    assert "hl7-ris" in parked and "storage-commitment:CT1" not in parked
    wrong = page(client, "/messages?direction=in&status=parked")
    assert 'id="status-errors"' in wrong
    today = practice_today()
    backwards = page(client, f"/messages?since={today}&until={today - timedelta(days=1)}")
    assert 'id="until-errors"' in backwards and "La fin précède le début." in backwards
    assert "A28-0001" in page(client, f"/messages?since={today - timedelta(days=1)}&until={today}")
    assert "Aucun message ne correspond." in page(client, f"/messages?until={today - timedelta(days=1)}")


def test_pages_go_back_in_time(logged_in: LoggedIn, log: dict[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(views, "PAGE", 2)
    client = logged_in(Role.MAINTENANCE)
    first = page(client, "/messages?direction=in")
    assert "A40-0001" in first and "MSG0001" in first and "A28-0001" not in first
    older = first.split('id="older" href="')[1].split('"')[0]
    second = page(client, older)
    assert "A28-0001" in second and "A40-0001" not in second and 'id="older"' not in second
