"""The backup pages with a real local borg repository (the development configuration's): the last
backup per target, "back up now" as a job the worker runs (its progress polled), audited; on a box
the request file the path unit watches; the key-escrow page and the marker the CLI leaves."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from console_client import Events, csrf_token
from flask.testing import FlaskClient
from sqlalchemy import Engine

from appliance import jobs
from appliance.accounts.roles import Role
from appliance.backup.history import KeyExport, record_key_export, runs
from appliance.config import Settings, development_config
from appliance.daemons.runtime import open_index


@pytest.fixture()
def engine(settings: Settings) -> Iterator[Engine]:
    """The configuration's own index: the backup's snapshot reads it."""
    found = open_index(settings.current)
    yield found
    found.dispose()


def test_back_up_now_runs_as_a_job_in_development_and_the_page_shows_the_result(
    logged_in: Callable[[Role], FlaskClient], settings: Settings, engine: Engine, events: Events
) -> None:
    client = logged_in(Role.ADMINISTRATOR)
    page = client.get("/backup").get_data(as_text=True)
    assert 'id="target-local"' in page and "jamais encore" in page and 'id="back-up-now-button"' in page
    answer = client.post("/backup/now", data={"csrf_token": csrf_token(client, "/backup")})
    assert answer.status_code == 302
    [job] = [job for job in jobs.recent(engine) if job.kind == jobs.BACKUP]
    assert job.started_by == "user-administrator" and job.state == jobs.WAITING
    [event] = events.of("110113")
    assert event.objects[0].object_id == "backup" and ("job", str(job.id)) in event.objects[0].details
    page = client.get("/backup").get_data(as_text=True)
    assert f'data-poll="/backup/progress/{job.id}"' in page and 'id="back-up-now-button"' not in page
    assert client.get(f"/backup/progress/{job.id}").get_json()["state"] == jobs.WAITING
    assert jobs.run_next(engine, settings.current, events)  # what the worker does
    done = jobs.get(engine, job.id)
    assert done.state == jobs.SUCCEEDED and done.result["succeeded"] is True, done.result
    [run] = runs(settings.current.backup.state_directory)
    assert run.target == "local" and run.succeeded and run.files > 0
    page = client.get("/backup").get_data(as_text=True)
    assert "réussie" in page and 'id="backup-runs"' in page and 'id="back-up-now-button"' in page


def test_reading_is_for_everyone_backing_up_for_administrators(logged_in: Callable[[Role], FlaskClient]) -> None:
    client = logged_in(Role.SECRETARY)
    page = client.get("/backup")
    assert page.status_code == 200 and 'id="back-up-now-button"' not in page.get_data(as_text=True)
    assert client.post("/backup/now", data={"csrf_token": csrf_token(client, "/backup")}).status_code == 403


def test_on_a_box_back_up_now_writes_the_request_the_path_unit_watches(
    tmp_path: Path, settings: Settings, logged_in: Callable[[Role], FlaskClient], events: Events
) -> None:
    box = dataclasses.replace(development_config(tmp_path / "data"), mode="production")
    settings._current = box  # the configuration in force, as a reload would make it
    client = logged_in(Role.ADMINISTRATOR)
    client.post("/backup/now", data={"csrf_token": csrf_token(client, "/backup")})
    request = box.storage.run_directory / "backup-now"
    assert json.loads(request.read_text())["asked_by"] == "user-administrator"
    assert ("request", "backup-now") in events.of("110113")[0].objects[0].details
    assert 'id="backup-requested"' in client.get("/backup").get_data(as_text=True)


def test_the_key_page_says_whether_each_key_was_printed(
    logged_in: Callable[[Role], FlaskClient], settings: Settings
) -> None:
    client = logged_in(Role.MAINTENANCE)
    page = client.get("/backup/key").get_data(as_text=True)
    assert 'id="key-local"' in page and "pas encore" in page
    assert "appliance backup export-key --target local" in page
    export = KeyExport("local", datetime(2026, 12, 1, 9, 0, tzinfo=UTC), "", "qr-html")
    record_key_export(settings.current.backup.state_directory, export)
    page = client.get("/backup/key").get_data(as_text=True)
    assert "pas encore" not in page and "01/12/2026" in page
