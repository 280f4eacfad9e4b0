"""The jobs pages: start a job, follow its state as JSON, cancel it, read its result."""

from __future__ import annotations

from collections.abc import Callable

from console_client import Events, csrf_token
from flask.testing import FlaskClient
from sqlalchemy import Engine

from appliance import jobs
from appliance.accounts.roles import Role


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
