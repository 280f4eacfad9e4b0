"""The jobs pages: start a job, follow its state as JSON, cancel it, read its result."""

from __future__ import annotations

import json
from collections.abc import Callable

from console_client import Events, csrf_token
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, update

from appliance import jobs
from appliance.accounts.roles import Role
from appliance.db.schema import job


def test_start_follow_and_cancel_a_job(
    logged_in: Callable[[Role], FlaskClient], engine: Engine, events: Events
) -> None:
    client = logged_in(Role.MAINTENANCE)
    page = client.get("/jobs").get_data(as_text=True)
    assert "Vérifier l'archive" in page and "Aucune tâche" in page
    token = csrf_token(client, "/jobs")
    started = client.post("/jobs/start", data={"kind": "verify", "csrf_token": token})
    job_id = int(started.headers["Location"].rsplit("/", 1)[1])
    job = jobs.get(engine, job_id)
    assert (job.kind, job.state, job.started_by) == ("verify", "waiting", "user-maintenance")
    again = client.post("/jobs/start", data={"kind": "verify", "csrf_token": token}, follow_redirects=True)
    assert "déjà en attente" in again.get_data(as_text=True)
    state = client.get(f"/jobs/{job_id}/state").get_json()
    assert state["state"] == "waiting" and state["percent"] == 0 and state["finished"] is False
    client.post(f"/jobs/{job_id}/cancel", data={"csrf_token": token})
    assert jobs.get(engine, job_id).state == "cancelled"  # a waiting job is cancelled at once
    cancelled = events.of("110113")
    assert len(cancelled) == 1 and cancelled[0].requestor.user_id == "user-maintenance"  # type: ignore[union-attr]
    assert cancelled[0].objects[0].object_id == str(job_id)
    assert "annulée à la demande" in client.get(f"/jobs/{job_id}").get_data(as_text=True)


def test_an_unknown_kind_or_job_is_refused(logged_in: Callable[[Role], FlaskClient]) -> None:
    client = logged_in(Role.ADMINISTRATOR)
    token = csrf_token(client, "/jobs")
    assert client.post("/jobs/start", data={"kind": "format-the-disks", "csrf_token": token}).status_code == 400
    assert client.get("/jobs/999").status_code == 404


def test_damaged_files_and_their_patients_are_shown_to_clinical_roles_only_and_audited(
    app: Flask, logged_in: Callable[[Role], FlaskClient], engine: Engine, events: Events
) -> None:
    job_id = jobs.submit(engine, "verify", {}, "someone")
    missing = {
        "path": "2026/12/01/a.dcm",
        "study_instance_uid": "1.2.3",
        "study_date": "20261201",
        "patient_id": "IPP0042",
    }
    result = {"verified": 10, "damaged": 1, "missing": 1, "intact": False, "missing_files": [missing]}
    with engine.begin() as connection:
        connection.execute(update(job).where(job.c.id == job_id).values(state="succeeded", result=json.dumps(result)))
    maintenance = logged_in(Role.MAINTENANCE).get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "2026/12/01/a.dcm" not in maintenance and "IPP0042" not in maintenance
    assert not events.of("110103")
    administrator = logged_in(Role.ADMINISTRATOR).get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "2026/12/01/a.dcm" in administrator and "IPP0042" in administrator
    (accessed,) = events.of("110103")
    assert [item.object_id for item in accessed.objects] == ["IPP0042"]
