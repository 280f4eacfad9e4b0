"""The audit trail's pages on a real trail (an SQLite file the console both records into and reads):
the search by patient, user, event and days of the practice's time zone, newest first by keyset
pages; one record in full; the verification run as a job; the exports (CSV, XML) and a patient's
access report, each recorded once (110101); who may open them."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from html import unescape
from xml.etree import ElementTree

import pytest
from console_client import csrf_token
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine

from appliance import jobs
from appliance.accounts import users
from appliance.accounts.roles import Role
from appliance.audit.events import (
    Action,
    AuditEvent,
    EventId,
    EventType,
    ObjectKind,
    Outcome,
    ae,
    application,
    patient,
    person,
    study,
)
from appliance.audit.trail import AUDIT_LOG, AuditFilter, AuditRecord, AuditTrail
from appliance.config import Settings
from appliance.web import create_app

LoggedIn = Callable[[Role], FlaskClient]
PATIENT = "IPP0042"
CT = "1.2.840.10008.5.1.4.1.1.2"


@pytest.fixture()
def trail(settings: Settings) -> Iterator[AuditTrail]:
    opened = AuditTrail(settings.current.audit.database)
    yield opened
    opened.close()


@pytest.fixture()
def app(settings: Settings, engine: Engine, trail: AuditTrail) -> Flask:
    """The console recording into the real trail (the pages read it through a trail of their own)."""
    application_ = create_app(settings, engine, trail)
    application_.config["TESTING"] = True
    return application_


def viewed(at: datetime, user: str = "dr.martin", patient_id: str = PATIENT, accession: str = "A1") -> AuditEvent:
    return AuditEvent(
        EventId.INSTANCES_ACCESSED,
        Action.READ,
        Outcome.SUCCESS,
        (person(user, "192.168.1.23", "MARTIN^Paul"), application("appliance-web", "pacs.cabinet.lan")),
        (patient(f"{patient_id}^^^CABINET", "DUPONT^MARIE"), study("1.2.250.1.59.3", accession, ((CT, 212),))),
        at=at,
    )


def stored(at: datetime) -> AuditEvent:
    return AuditEvent(
        EventId.INSTANCES_TRANSFERRED,
        Action.CREATE,
        Outcome.MINOR_FAILURE,
        (
            ae(
                "CT_SALLE1",
                "192.168.1.40",
                True,
            ),
            ae("APPLIANCE", "192.168.1.10", False),
        ),
        (patient(f"{PATIENT}^^^CABINET", "DUPONT^MARIE"), study("1.2.250.1.59.4", "A2026-0413")),
        outcome_description="2 instance(s) refused",
        at=at,
    )


def page(client: FlaskClient, path: str, status: int = 200) -> str:
    answer = client.get(path)
    assert answer.status_code == status, (answer.status_code, answer.get_data(as_text=True)[:500])
    return unescape(answer.get_data(as_text=True))


def newest(trail: AuditTrail, count: int = 1) -> list[AuditRecord]:
    return trail.search(limit=count)


def uses(trail: AuditTrail) -> list[AuditRecord]:
    return trail.search(AuditFilter(event=EventId.AUDIT_LOG_USED))


@pytest.mark.usefixtures("in_reunion")
def test_an_overseas_practice_reads_its_records_on_its_own_clock(logged_in: LoggedIn, trail: AuditTrail) -> None:
    trail.record(viewed(datetime(2026, 12, 2, 13, 5, tzinfo=UTC)))
    shown = page(logged_in(Role.ADMINISTRATOR), "/audit").split('id="records"')[1]
    assert "02/12/2026 17:05" in shown and "14:05" not in shown


def test_the_search_shows_records_in_words_newest_first_and_is_recorded(logged_in: LoggedIn, trail: AuditTrail) -> None:
    trail.record(viewed(datetime(2026, 12, 2, 13, 5, tzinfo=UTC)))
    trail.record(stored(datetime(2026, 12, 2, 13, 10, tzinfo=UTC)))
    client = logged_in(Role.ADMINISTRATOR)
    shown = page(client, "/audit").split('id="records"')[1]
    assert shown.index("Réception d'images") < shown.index("Consultation d'examen")  # newest first
    assert "02/12/2026 14:05" in shown  # Paris time
    assert "dr.martin" in shown and "MARTIN Paul" in shown and "192.168.1.23" in shown and "appliance-web" in shown
    assert "IPP0042 DUPONT MARIE" in shown and "A1" in shown
    assert "échec" in shown and "2 instance(s) refused" in shown and "Lecture" in shown and "Création" in shown
    assert "Connexion" in shown  # the administrator's own login
    (use,) = uses(trail)
    assert use.event.action is Action.READ
    requestor = use.event.requestor
    assert requestor is not None and requestor.user_id == "user-administrator" and requestor.address == "127.0.0.1"
    assert [participant.user_id for participant in use.event.participants] == ["user-administrator", "appliance-web"]
    (log,) = use.event.objects
    assert (log.kind, log.object_id, log.query) == (ObjectKind.SECURITY_RESOURCE, AUDIT_LOG, b"{}")


def test_the_search_filters_by_patient_user_event_and_local_days(logged_in: LoggedIn, trail: AuditTrail) -> None:
    trail.record(viewed(datetime(2026, 12, 1, 23, 30, tzinfo=UTC), accession="LATE"))  # 2 December in Paris
    trail.record(viewed(datetime(2026, 12, 1, 10, 0, tzinfo=UTC), accession="MORNING"))
    trail.record(viewed(datetime(2026, 12, 2, 10, 0, tzinfo=UTC), user="secretaire", accession="OTHER-USER"))
    trail.record(viewed(datetime(2026, 12, 2, 10, 0, tzinfo=UTC), patient_id="IPP0099", accession="OTHER-PATIENT"))
    trail.record(stored(datetime(2026, 12, 2, 11, 0, tzinfo=UTC)))
    client = logged_in(Role.ADMINISTRATOR)
    shown = page(client, f"/audit?patient={PATIENT}&user=dr.martin&event=110103&since=2026-12-02&until=2026-12-02")
    assert "LATE" in shown
    assert not {"MORNING", "OTHER-USER", "OTHER-PATIENT", "A2026-0413"} & set(shown.split())
    assert "1 enregistrement correspond." in shown
    use = uses(trail)[0]
    assert use.event.objects[0].query.decode() == (
        '{"event": "110103", "patient": "IPP0042", "since": "2026-12-02", "until": "2026-12-02", "user": "dr.martin"}'
    )
    assert [(item.kind, item.object_id) for item in use.event.objects[1:]] == [(ObjectKind.PATIENT, PATIENT)]


def test_pages_of_fifty_newest_first(logged_in: LoggedIn, trail: AuditTrail) -> None:
    for minute in range(120):
        trail.record(viewed(datetime(2026, 12, 2, 8, minute // 2, minute % 2, tzinfo=UTC), accession=f"ACC{minute}"))
    client = logged_in(Role.ADMINISTRATOR)
    seqs: list[int] = []
    path = f"/audit?patient={PATIENT}"
    while path:
        shown = page(client, path)
        seqs += [int(part.split('"')[0]) for part in shown.split('data-seq="')[1:]]
        path = shown.split('id="older" href="')[1].split('"')[0] if 'id="older"' in shown else ""
    assert len(seqs) == 120 and seqs == sorted(seqs, reverse=True) and len(set(seqs)) == 120
    assert "Aucun enregistrement plus ancien." not in shown  # the last page is full, no empty page after it


def test_bad_filters_are_answered_next_to_their_field(logged_in: LoggedIn, trail: AuditTrail) -> None:
    client = logged_in(Role.ADMINISTRATOR)
    shown = page(client, "/audit?since=2026-12-05&until=2026-12-01")
    assert 'id="until-errors"' in shown and "La fin précède le début." in shown
    assert 'id="records"' not in shown
    assert uses(trail) == []  # nothing shown, nothing recorded
    shown = page(client, "/audit?event=999999")
    assert 'id="event-errors"' in shown


def test_one_record_in_full_with_its_hashes(logged_in: LoggedIn, trail: AuditTrail) -> None:
    trail.record(stored(datetime(2026, 12, 2, 13, 10, tzinfo=UTC)))
    (record,) = newest(trail)
    client = logged_in(Role.ADMINISTRATOR)
    shown = page(client, f"/audit/{record.seq}")
    assert f"Enregistrement {record.seq}" in shown and "Réception d'images" in shown
    assert record.hash in shown and record.previous_hash in shown
    assert "CT_SALLE1" in shown and "192.168.1.40" in shown and "APPLIANCE" in shown
    assert "appareil DICOM (titre AE)" in shown
    assert "IPP0042^^^CABINET" in shown and "DUPONT MARIE" in shown and "A2026-0413" in shown
    assert "échec : 2 instance(s) refused" in shown
    (use,) = uses(trail)
    assert use.event.objects[0].query == f'{{"seq": "{record.seq}"}}'.encode()
    assert [(item.object_id, item.name) for item in use.event.objects[1:]] == [("IPP0042^^^CABINET", "DUPONT^MARIE")]
    page(client, "/audit/999999", status=404)


def test_the_search_keys_of_a_query_are_shown_as_text(logged_in: LoggedIn, trail: AuditTrail) -> None:
    client = logged_in(Role.ADMINISTRATOR)
    page(client, "/audit?patient=IPP0042")  # a 110101 whose query is the filters
    (use,) = uses(trail)
    shown = page(client, f"/audit/{use.seq}")
    assert '{"patient": "IPP0042"}' in shown and "Consultation du journal d'accès" in shown


def run_queued(engine: Engine, settings: Settings, trail: AuditTrail) -> None:
    """What the background worker does: run the waiting job."""
    assert jobs.run_next(engine, settings.current, trail)


def test_a_verification_runs_as_a_job_and_names_the_last_hash(
    logged_in: LoggedIn, trail: AuditTrail, engine: Engine, settings: Settings
) -> None:
    for minute in range(3):
        trail.record(viewed(datetime(2026, 12, 2, 8, minute, tzinfo=UTC)))
    client = logged_in(Role.ADMINISTRATOR)
    assert "Aucune vérification depuis la console pour l'instant." in page(client, "/audit")
    answer = client.post("/audit/verify", data={"csrf_token": csrf_token(client, "/audit")})
    assert answer.status_code == 302
    job_id = int(answer.headers["Location"].rsplit("/", 1)[1])
    started = newest(trail)[0]
    assert (started.event.event, started.event.action) == (EventId.AUDIT_LOG_USED, Action.EXECUTE)
    assert dict(started.event.objects[0].details) == {"job": str(job_id)}
    waiting = page(client, f"/audit/verify/{job_id}")
    assert f'data-poll="/audit/verify/{job_id}/state"' in waiting
    state = client.get(f"/audit/verify/{job_id}/state").get_json()
    assert state["state"] == "waiting" and state["finished"] is False
    run_queued(engine, settings, trail)
    result = jobs.get(engine, job_id).result
    verified_last = trail.find(result["last_seq"])
    assert verified_last is not None and result["last_hash"] == verified_last.hash
    shown = page(client, f"/audit/verify/{job_id}")
    assert "Le journal est intact" in shown and verified_last.hash in shown
    checked = result["checked"]
    assert f'id="checked">{checked}<' in shown and checked >= 5
    home = page(client, "/audit")
    assert "Intact" in home and f"{checked} enregistrements" in home


def test_a_second_verification_while_one_waits_goes_to_the_first(logged_in: LoggedIn, engine: Engine) -> None:
    client = logged_in(Role.ADMINISTRATOR)
    token = csrf_token(client, "/audit")
    first = client.post("/audit/verify", data={"csrf_token": token}).headers["Location"]
    second = client.post("/audit/verify", data={"csrf_token": token}, follow_redirects=True)
    assert second.request.path == first
    assert "Une vérification attend déjà ou est en cours." in unescape(second.get_data(as_text=True))
    assert client.post("/audit/verify", data={}).status_code == 400


def test_a_verification_is_not_another_job(logged_in: LoggedIn, engine: Engine) -> None:
    job_id = jobs.submit(engine, jobs.VERIFY, {}, "someone")
    client = logged_in(Role.ADMINISTRATOR)
    page(client, f"/audit/verify/{job_id}", status=404)
    page(client, "/audit/verify/999", status=404)


def test_the_jobs_page_names_the_audit_verification(
    logged_in: LoggedIn, engine: Engine, settings: Settings, trail: AuditTrail
) -> None:
    client = logged_in(Role.ADMINISTRATOR)
    assert "Vérifier le journal d'accès" in page(client, "/jobs")
    job_id = jobs.submit(engine, jobs.VERIFY_AUDIT, {}, "user-administrator")
    run_queued(engine, settings, trail)
    shown = page(client, f"/jobs/{job_id}")
    assert "journal d'accès intact" in shown and f'href="/audit/verify/{job_id}"' in shown


def csv_rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def test_the_export_downloads_the_search_as_the_command_line_writes_it(logged_in: LoggedIn, trail: AuditTrail) -> None:
    trail.record(viewed(datetime(2026, 12, 1, 10, 0, tzinfo=UTC), accession="MORNING"))
    trail.record(stored(datetime(2026, 12, 2, 11, 0, tzinfo=UTC)))
    trail.record(viewed(datetime(2026, 12, 2, 12, 0, tzinfo=UTC), patient_id="IPP0099"))
    client = logged_in(Role.ADMINISTRATOR)
    assert "/audit/export?format=csv&amp;patient=IPP0042" in client.get("/audit?patient=IPP0042").get_data(as_text=True)
    answer = client.get(f"/audit/export?format=csv&patient={PATIENT}&since=2026-12-02")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    disposition = answer.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="audit-trail-20') and disposition.endswith('.csv"')
    stored_row, search_row = csv_rows(answer.data)  # the search above named the patient: it is hers too
    assert (stored_row["event_id"], stored_row["requestor"], stored_row["outcome"]) == ("110104", "CT_SALLE1", "4")
    assert (search_row["event_id"], search_row["requestor"]) == ("110101", "user-administrator")
    export = newest(trail)[0]
    assert (export.event.event, export.event.action) == (EventId.AUDIT_LOG_USED, Action.READ)
    details = dict(export.event.objects[0].details)
    assert details["format"] == "csv" and details["records"] == "2" and details["patient"] == PATIENT
    assert details["since"].startswith("2026-12-01T23:00:00")  # midnight in Paris
    assert export.event.objects[1].object_id == PATIENT
    requestor = export.event.requestor
    assert requestor is not None and requestor.user_id == "user-administrator"


def test_the_xml_export_holds_one_audit_message_per_record(logged_in: LoggedIn, trail: AuditTrail) -> None:
    trail.record(stored(datetime(2026, 12, 2, 11, 0, tzinfo=UTC)))
    client = logged_in(Role.ADMINISTRATOR)
    answer = client.get("/audit/export?format=xml&event=110104")
    assert answer.status_code == 200 and answer.headers["Content-Disposition"].endswith('.xml"')
    document = ElementTree.fromstring(answer.data)
    (record,) = document.findall("Record")
    assert record.get("hash") == trail.search(AuditFilter(event=EventId.INSTANCES_TRANSFERRED))[0].hash
    assert record.find("AuditMessage/EventIdentification/EventID").get("csd-code") == "110104"  # type: ignore[union-attr]
    assert dict(newest(trail)[0].event.objects[0].details)["format"] == "xml"


def test_an_export_with_bad_filters_goes_back_to_the_search(logged_in: LoggedIn, trail: AuditTrail) -> None:
    client = logged_in(Role.ADMINISTRATOR)
    answer = client.get("/audit/export?format=csv&since=2026-12-05&until=2026-12-01")
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/audit?")
    assert "format" not in answer.headers["Location"]
    assert client.get("/audit/export?format=pdf").status_code == 400
    assert uses(trail) == []


def test_a_patient_access_report_gives_dates_actions_and_roles_never_names(
    logged_in: LoggedIn, trail: AuditTrail, make_account: Callable[..., users.Account]
) -> None:
    make_account("claire.secretaire", Role.SECRETARY)
    trail.record(viewed(datetime(2026, 12, 2, 13, 5, tzinfo=UTC), user="claire.secretaire"))
    trail.record(stored(datetime(2026, 12, 2, 13, 10, tzinfo=UTC)))
    trail.record(viewed(datetime(2026, 12, 2, 13, 20, tzinfo=UTC), patient_id="IPP0099"))
    client = logged_in(Role.ADMINISTRATOR)
    form = page(client, "/audit/access-report")
    assert "article 15" in form and 'name="patient"' in form
    assert uses(trail) == []  # the empty form shows nothing of the trail
    answer = client.get(f"/audit/access-report?patient={PATIENT}")
    assert answer.status_code == 200 and f"access-report-{PATIENT}-20" in answer.headers["Content-Disposition"]
    text = answer.data.decode("utf-8")
    assert text.startswith("\ufeffDate;Action;Rôle\r\n")
    rows = [line.split(";") for line in text.lstrip("\ufeff").splitlines()[1:]]
    assert rows == [
        ["02/12/2026 14:05", "Consultation d'examen", "Secrétaire"],
        ["02/12/2026 14:10", "Réception d'images", "appareil d'imagerie ou poste DICOM"],
    ]
    assert "claire" not in text.lower() and "martin" not in text.lower() and "CT_SALLE1" not in text
    report = newest(trail)[0]
    assert dict(report.event.objects[0].details)["format"] == "access-report"
    assert report.event.objects[1].object_id == PATIENT


def test_a_patient_access_report_needs_a_patient(logged_in: LoggedIn, trail: AuditTrail) -> None:
    shown = page(logged_in(Role.ADMINISTRATOR), "/audit/access-report?patient=")
    assert 'id="patient-errors"' in shown and "Tapez l'identifiant du patient (IPP)." in shown
    assert uses(trail) == []


AUDIT_PAGES = ["/audit", "/audit/1", "/audit/export?format=csv", "/audit/access-report?patient=IPP0042"]


@pytest.mark.parametrize("role", [role for role in Role if role != Role.ADMINISTRATOR])
def test_only_the_administrator_reads_the_trail(logged_in: LoggedIn, role: Role, trail: AuditTrail) -> None:
    client = logged_in(role)
    for path in AUDIT_PAGES:
        assert client.get(path).status_code == 403, path
    assert client.post("/audit/verify", data={"csrf_token": csrf_token(client, "/")}).status_code == 403
    assert "/audit" not in page(client, "/").split("<main>")[0]  # not in the menu either
    assert uses(trail) == []


def test_the_menu_leads_the_administrator_to_the_trail(logged_in: LoggedIn) -> None:
    assert 'href="/audit"' in page(logged_in(Role.ADMINISTRATOR), "/")


def test_security_events_read_as_people_say_them(logged_in: LoggedIn, trail: AuditTrail) -> None:
    requestor = (person("admin", "192.168.1.2"), application("appliance-web"))
    for event_type, action in (
        (EventType.SECURITY_ROLES_CHANGED, Action.UPDATE),
        (EventType.USER_SECURITY_ATTRIBUTES_CHANGED, Action.CREATE),
        (EventType.SOFTWARE_CONFIGURATION, Action.EXECUTE),
    ):
        trail.record(AuditEvent(EventId.SECURITY_ALERT, action, Outcome.SUCCESS, requestor, event_type=event_type))
    trail.record(AuditEvent(EventId.PATIENT_RECORD, Action.UPDATE, Outcome.SUCCESS, requestor))
    shown = page(logged_in(Role.ADMINISTRATOR), "/audit")
    for words in ("Changement de rôle", "Création de compte", "Modification des réglages",
                  "Modification de dossier patient"):  # fmt: skip
        assert words in shown, words


def test_a_download_cut_short_is_recorded_as_a_failure(logged_in: LoggedIn, trail: AuditTrail) -> None:
    for minute in range(450):  # more than two pieces of 200 records
        trail.record(viewed(datetime(2026, 12, 2, 8, minute % 60, tzinfo=UTC)))
    client = logged_in(Role.ADMINISTRATOR)
    answer = client.get("/audit/export?format=csv", buffered=False)
    pieces = iter(answer.response)
    assert next(pieces).startswith(b"seq,event_time,")
    answer.close()  # the browser went away
    export = newest(trail)[0]
    assert (export.event.event, export.event.outcome) == (EventId.AUDIT_LOG_USED, Outcome.SERIOUS_FAILURE)
    assert export.event.outcome_description == "the download did not complete"
    assert dict(export.event.objects[0].details)["records"] == "0"
