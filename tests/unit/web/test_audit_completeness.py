"""Every console page that opens patient data leaves exactly one audit record, in the real trail:
the routes are read from the application itself (a new patient-data page without its sample
address here fails the test the day it is added), each is opened with real data in place (HL7
messages through the receiver, images through the ingest), and its record names the logged-in
account (user ID and address) as requestor and the console as the other participant.

And the console's verification finds a record edited, one removed and one inserted in the file."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from html import unescape
from pathlib import Path

import pytest
from console_client import csrf_token
from flask import Flask
from flask.testing import FlaskClient
from ris_and_images import RIS_ISSUER, RIS_PATIENT, practice
from sqlalchemy import Engine, select
from werkzeug.routing import Rule

from appliance import inbox, jobs
from appliance.accounts.roles import Permission, Role
from appliance.archive import retrieve
from appliance.archive.search import Query
from appliance.audit.chain import canonical, link
from appliance.audit.events import Action, AuditEvent, EventId, Outcome, ParticipantKind, application, patient, person
from appliance.audit.trail import AuditRecord, AuditTrail
from appliance.config import Settings
from appliance.db.schema import series, study
from appliance.forward import remote
from appliance.web import create_app
from appliance.web.services import APPLICATION_NAME

# The permissions that open patient data (or the trail of who saw it).
PATIENT_DATA = {
    Permission.SEARCH_PATIENTS,
    Permission.VIEW_WORKLIST,
    Permission.RECONCILE,
    Permission.VIEW_HL7_CONTENT,
    Permission.READ_AUDIT,
}

# Sample addresses of every GET route holding one of these permissions, by endpoint; `{name}` is
# filled from the data the fixture puts in. A new patient-data page needs its line here.
SAMPLES: dict[str, tuple[str, ...]] = {
    "studies.search": ("/studies", f"/studies?patient_id={RIS_PATIENT}", "/studies?patient_name=martin"),
    "studies.show": ("/studies/{no_order}",),
    "worklist.today": ("/worklist", "/worklist?day=2025-06-01&modality=CT"),
    "reconciliation.index": ("/reconciliation",),
    "reconciliation.choose": ("/reconciliation/{no_order}", "/reconciliation/{no_order}?family=oeuvrard"),
    "reconciliation.confirm": (f"/reconciliation/{{no_order}}/attach?patient_id={RIS_PATIENT}&issuer={RIS_ISSUER}",),
    "messages.show": ("/messages/in/{message}",),
    "audit_log.index": ("/audit", f"/audit?patient={RIS_PATIENT}&event=110110"),
    "audit_log.show": ("/audit/1",),
    "audit_log.verification": ("/audit/verify/{verification}",),
    "audit_log.verification_state": ("/audit/verify/{verification}/state",),
    "audit_log.export_records": ("/audit/export?format=csv", f"/audit/export?format=xml&patient={RIS_PATIENT}"),
    "audit_log.patient_report": (f"/audit/access-report?patient={RIS_PATIENT}",),
    "dicomweb.search_studies": ("/dicomweb/studies?PatientName=martin*",),
    "dicomweb.search_study_series": ("/dicomweb/studies/{no_order}/series",),
    "dicomweb.search_series": ("/dicomweb/series?Modality=MR",),
    "dicomweb.search_series_instances": ("/dicomweb/studies/{no_order}/series/{series}/instances",),
    "dicomweb.search_study_instances": ("/dicomweb/studies/{no_order}/instances?limit=1&offset=1",),
    "dicomweb.search_instances": ("/dicomweb/instances?00100020=IPP0004",),
    "dicomweb.retrieve_study": ("/dicomweb/studies/{no_order}",),
    "dicomweb.retrieve_series": ("/dicomweb/studies/{no_order}/series/{series}",),
    "dicomweb.retrieve_instance": ("/dicomweb/studies/{no_order}/series/{series}/instances/{instance}",),
    "dicomweb.study_metadata": ("/dicomweb/studies/{no_order}/metadata",),
    "dicomweb.series_metadata": ("/dicomweb/studies/{no_order}/series/{series}/metadata",),
    "dicomweb.instance_metadata": ("/dicomweb/studies/{no_order}/series/{series}/instances/{instance}/metadata",),
    "dicomweb.retrieve_frames": ("/dicomweb/studies/{no_order}/series/{series}/instances/{instance}/frames/1",),
    "dicomweb.rendered_instance": ("/dicomweb/studies/{no_order}/series/{series}/instances/{instance}/rendered",),
    "dicomweb.rendered_frame": ("/dicomweb/studies/{no_order}/series/{series}/instances/{instance}/frames/1/rendered",),
    "dicomweb.instance_thumbnail": ("/dicomweb/studies/{no_order}/series/{series}/instances/{instance}/thumbnail",),
    "dicomweb.series_thumbnail": ("/dicomweb/studies/{no_order}/series/{series}/thumbnail",),
    "dicomweb.study_thumbnail": ("/dicomweb/studies/{no_order}/thumbnail",),
    "dicomweb.wado_uri": (
        "/wado?requestType=WADO&studyUID={no_order}&seriesUID={series}&objectUID={instance}&contentType=application/dicom",
        "/wado?requestType=WADO&objectUID={instance}",
    ),
    "viewer.show": ("/viewer/studies/{no_order}",),
    "viewer.description": ("/viewer/studies/{no_order}/study.json",),  # the page's script: no record of its own
    "viewer.launch": ("/viewer/weasis/{no_order}?path=dicomweb", "/viewer/weasis/{no_order}?scope=patient"),
    "forward.search": ("/priors",),
    "forward.results": ("/priors/{remote_search}",),
    "forward.state": ("/priors/{remote_search}/state",),
}
# Pages of those permissions that show no patient data, and so record nothing (the empty form).
NO_PATIENT_DATA = {"forward.search"}


@pytest.fixture()
def trail(settings: Settings) -> Iterator[AuditTrail]:
    opened = AuditTrail(settings.current.audit.database)
    yield opened
    opened.close()


@pytest.fixture()
def app(settings: Settings, engine: Engine, trail: AuditTrail) -> Flask:
    """The console recording into the real trail, as the daemon's workers do."""
    console = create_app(settings, engine, trail)
    console.config["TESTING"] = True
    return console


def patient_data_routes(app: Flask) -> Iterator[tuple[Rule, bool]]:
    """(rule, is a background poll) of each GET route whose permission opens patient data."""
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if getattr(view, "permission", None) in PATIENT_DATA and "GET" in (rule.methods or set()):
            yield rule, bool(getattr(view, "background", False))


def test_every_patient_data_page_has_its_sample_address(app: Flask) -> None:
    endpoints = {rule.endpoint for rule, _poll in patient_data_routes(app)}
    missing = endpoints - set(SAMPLES)
    assert not missing, f"add a sample address of these pages to SAMPLES (and check they are audited): {missing}"
    assert set(SAMPLES) <= endpoints, f"no such page any more: {set(SAMPLES) - endpoints}"


@pytest.fixture()
def data(engine: Engine, tmp_path: Path) -> dict[str, str]:
    """Patients, orders and studies from the HL7 receiver and the ingest; a verification job."""
    studies = practice(engine, tmp_path)
    (received, *_others) = inbox.listing(engine, inbox.Selection())
    verification = jobs.submit(engine, jobs.VERIFY_AUDIT, {}, "user-administrator")
    planned = retrieve.plan(engine, Query("STUDY", {"StudyInstanceUID": studies["no order"]})).items
    with engine.connect() as connection:
        of_study = series.join(study, study.c.id == series.c.study_pk)
        chosen = select(series.c.series_instance_uid).select_from(of_study)
        series_uid = connection.execute(chosen.where(study.c.study_instance_uid == studies["no order"])).scalar()
    search = remote.submit(engine, "ORTHANC", {"PatientID": RIS_PATIENT}, "user-administrator")
    remote.finish(engine, search, [{"StudyInstanceUID": "1.2.3", "PatientID": RIS_PATIENT, "PatientName": "X^Y"}])
    return {"no_order": studies["no order"], "message": str(received.id), "verification": str(verification),
            "series": str(series_uid), "instance": planned[0].sop_instance_uid,
            "remote_search": str(search)}  # fmt: skip


def new_records(trail: AuditTrail, after: int) -> list[AuditRecord]:
    return list(trail.records(after=after))


def test_each_patient_data_page_leaves_exactly_one_record_naming_who_asked(
    app: Flask, logged_in: Callable[[Role], FlaskClient], trail: AuditTrail, data: dict[str, str]
) -> None:
    client = logged_in(Role.ADMINISTRATOR)
    polls = {rule.endpoint for rule, poll in patient_data_routes(app) if poll}
    for endpoint, samples in SAMPLES.items():
        for sample in samples:
            path = sample.format(**data)
            before = trail.tail()[0]
            answer = client.get(path)
            answer.get_data()  # a download is recorded once it has been read to its end
            expected = 302 if endpoint == "viewer.launch" else 200  # Weasis is started by a redirect to weasis://
            assert answer.status_code == expected, (
                path,
                answer.status_code,
                unescape(answer.get_data(as_text=True))[:300],
            )
            records = new_records(trail, before)
            if endpoint in polls or endpoint in NO_PATIENT_DATA:  # a poll shows a percentage, a form nothing
                assert records == [], path
                continue
            assert len(records) == 1, (path, [record.event.event for record in records])
            check_participants(records[0].event, path)


def check_participants(event: AuditEvent, path: str) -> None:
    requestor, *others = event.participants
    assert requestor.is_requestor and (requestor.user_id, requestor.address) == ("user-administrator", "127.0.0.1")
    assert requestor.kind is ParticipantKind.PERSON and requestor.user_name == "User-Administrator", path
    assert [(other.user_id, other.kind, other.is_requestor) for other in others] == [
        (APPLICATION_NAME, ParticipantKind.APPLICATION, False)
    ], path


# --- the verification finds what was done to the file behind the console's back


def tamper(trail: AuditTrail, *statements: tuple[str, tuple[object, ...]]) -> None:
    """Change the file as an intruder with write access to it would: the triggers dropped first."""
    trail.close()
    connection = sqlite3.connect(trail.path)
    for table in ("audit_record", "audit_patient"):
        for operation in ("update", "delete"):
            connection.execute(f"DROP TRIGGER IF EXISTS {table}_no_{operation}")
    for sql, parameters in statements:
        connection.execute(sql, parameters)
    connection.commit()
    connection.close()


def stored_document(trail: AuditTrail, seq: int) -> tuple[dict[str, object], str]:
    """A record's document and its hash, as stored."""
    with sqlite3.connect(trail.path) as connection:
        row = connection.execute("SELECT document, hash FROM audit_record WHERE seq = ?", (seq,)).fetchone()
    text, hash_value = row
    loaded: dict[str, object] = json.loads(text)
    return loaded, hash_value


def forged_insertion(trail: AuditTrail, after: int) -> list[tuple[str, tuple[object, ...]]]:
    """A forged record slipped in after seq `after`, the later ones renumbered, its own hash valid."""
    forged, previous_hash = stored_document(trail, after)
    forged["seq"] = after + 1
    forged["participants"][0]["id"] = "alibi"  # type: ignore[index]
    text = canonical(forged)
    columns = "seq, recorded_at, event_at, event_id, action, outcome, event_type, user_id, address, patient_ids"
    renumbered = []
    for table in ("audit_record", "audit_patient"):
        renumbered += [(f"UPDATE {table} SET seq = seq + 1000 WHERE seq > ?", (after,)),
                       (f"UPDATE {table} SET seq = seq - 999 WHERE seq > 1000", ())]  # fmt: skip
    insert = (
        f"INSERT INTO audit_record ({columns}, study_uids, document, previous_hash, hash) SELECT ?, recorded_at,"
        " event_at, event_id, action, outcome, event_type, 'alibi', address, patient_ids, study_uids, ?, ?, ?"
        " FROM audit_record WHERE seq = ?"
    )
    patient_rows = ("INSERT INTO audit_patient (patient_id, seq) SELECT patient_id, ? FROM audit_patient WHERE seq = ?",
                    (after + 1, after))  # fmt: skip
    return [*renumbered, (insert, (after + 1, text.decode(), previous_hash, link(previous_hash, text), after)),
            patient_rows]  # fmt: skip


def test_the_console_s_verification_names_each_record_edited_removed_or_inserted(
    logged_in: Callable[[Role], FlaskClient], trail: AuditTrail, engine: Engine, settings: Settings
) -> None:
    who = (person("dr.martin", "192.168.1.23", "MARTIN^Paul"), application("appliance-web", "pacs"))
    for number in range(1, 13):
        viewed = AuditEvent(EventId.INSTANCES_ACCESSED, Action.READ, Outcome.SUCCESS, who, (patient(f"P{number}"),))
        trail.record(viewed)
    edited, _hash = stored_document(trail, 3)
    edited["participants"][0]["id"] = "someone-else"  # type: ignore[index]
    tamper(
        trail,
        ("UPDATE audit_record SET document = ? WHERE seq = 3", (canonical(edited).decode(),)),
        ("DELETE FROM audit_record WHERE seq = 6", ()),
        ("DELETE FROM audit_patient WHERE seq = 6", ()),
        *forged_insertion(trail, 9),
    )
    client = logged_in(Role.ADMINISTRATOR)
    answer = client.post("/audit/verify", data={"csrf_token": csrf_token(client, "/audit")})
    assert jobs.run_next(engine, settings.current, trail)
    shown = unescape(client.get(answer.headers["Location"]).get_data(as_text=True))
    rows = {int(part.split('"')[0]): part.split("</tr>")[0] for part in shown.split('<tr data-seq="')[1:]}
    assert f"{len(rows)} enregistrements rompent la chaîne." in shown
    # 3 edited; 6 removed, so 7 follows nothing; 10 forged (well made), so 11 (the old 10) no longer
    # follows, and every record renumbered after it no longer agrees with its own content
    assert {3, 7, 11} <= set(rows) and 10 not in rows and min(set(rows) - {3, 7}) == 11
    assert "son contenu a été modifié" in rows[3]  # edited
    assert "les enregistrements 6 à 6 manquent" in rows[7] and "ne suit pas l'enregistrement précédent" in rows[7]
    assert "ne suit pas l'enregistrement précédent" in rows[11]  # the one after the forged record 10
    assert "Rompu" in unescape(client.get("/audit").get_data(as_text=True))
