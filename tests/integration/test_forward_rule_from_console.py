"""A forwarding rule added in the console is in force in the running worker (A7, issue 12): the
console's page writes the rule to its settings layer and sends SIGHUP to the daemons, then a CT
study sent by storescu reaches the destination (DCMTK's storescp), and an MR study the rule does
not match stays home. Real archive and worker daemons; the console through Flask's test client."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from datagen import PATIENTS, write_series
from flask.testing import FlaskClient
from pydicom import dcmread
from servers import Daemon, archive_config, free_port, run, wait_for, wait_for_port, write_config
from sqlalchemy import Engine, func, select

from appliance.accounts import users
from appliance.accounts.roles import Role
from appliance.archive.changes import cursor_of
from appliance.audit.events import AuditEvent
from appliance.config import Settings, load_config
from appliance.db import create_index_engine
from appliance.db.schema import change, outbox
from appliance.web import create_app

PASSWORD = "Tilleuls-Transfert-2026!"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


@dataclass
class Kept:
    """The console's audit events, kept in memory."""

    events: list[AuditEvent] = field(default_factory=list)

    def record(self, event: AuditEvent) -> None:
        self.events.append(event)


@dataclass
class Site:
    work: Path
    archive: Daemon
    engine: Engine
    console: FlaskClient
    received: Path
    audit: Kept


@pytest.fixture()
def site(tmp_path: Path) -> Iterator[Site]:
    destination_port = free_port()
    config = archive_config(tmp_path / "data", destination_port, lossless={"enabled": False},
                            forward={"retry_initial_seconds": 1, "retry_maximum_seconds": 2},
                            web={"secure_cookies": False})  # fmt: skip
    config_path = write_config(tmp_path / "appliance.yaml", config)
    received = tmp_path / "received"
    received.mkdir()
    destination = subprocess.Popen(["storescp", "-aet", "STORESCP", "-od", str(received), str(destination_port)])
    archive = Daemon("appliance.daemons.archive", config_path, tmp_path / "archive.log").start()
    worker = Daemon("appliance.daemons.worker", config_path, tmp_path / "worker.log").start()
    engine = create_index_engine(load_config(config_path).database_url)
    try:
        wait_for_port(destination_port, "storescp", destination)
        run_directory = load_config(config_path).storage.run_directory
        wait_for(lambda: (run_directory / "appliance-worker.pid").exists(), "the worker's PID file")
        audit = Kept()
        application = create_app(Settings(lambda: load_config(config_path)), engine, audit)
        yield Site(tmp_path, archive, engine, logged_in_administrator(application.test_client(), engine),
                   received, audit)  # fmt: skip
    finally:
        worker.stop()
        archive.stop()
        destination.terminate()
        destination.wait()
        engine.dispose()


def token_of(client: FlaskClient, path: str) -> str:
    found = CSRF.search(client.get(path).get_data(as_text=True))
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def logged_in_administrator(client: FlaskClient, engine: Engine) -> FlaskClient:
    users.create(engine, "m.durand", "Marc Durand", Role.ADMINISTRATOR, PASSWORD, "test")
    answer = client.post("/login", data={"username": "m.durand", "password": PASSWORD,
                                         "csrf_token": token_of(client, "/login")})  # fmt: skip
    assert answer.status_code == 302
    return client


def store(site: Site, files: list[Path]) -> None:
    run(["storescu", "-aec", "APPLIANCE", "-aet", "STORESCU", "127.0.0.1", str(site.archive.port), *map(str, files)])


def queued(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(outbox)).scalar() or 0)


def routed_everything(engine: Engine) -> bool:
    with engine.connect() as connection:
        last = int(connection.execute(select(func.max(change.c.id))).scalar() or 0)
        return cursor_of(connection, "forward") >= last


def test_a_rule_added_in_the_console_sends_the_next_study_to_its_destination(site: Site) -> None:
    rule = {"name": "Scanners vers le second avis", "destination": "STORESCP", "enabled": "y", "modalities": "CT",
            "csrf_token": token_of(site.console, "/forward/rules/new")}  # fmt: skip
    answer = site.console.post("/forward/rules/new", data=rule, follow_redirects=True)
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "Scanners vers le second avis" in page
    assert "appliance-worker" in page  # the worker confirmed its reload before the page came back
    assert [event.event.code for event in site.audit.events] == ["110114", "110113"]  # the login, the change

    ct = write_series(site.work / "ct", 4, "CT", PATIENTS[0], study_date="20261201")
    mr = write_series(site.work / "mr", 2, "MR", PATIENTS[1], study_date="20261201")
    store(site, [*ct, *mr])
    wait_for(lambda: len(list(site.received.glob("*"))) == 4, "the CT study received by storescp")
    wait_for(lambda: routed_everything(site.engine), "the rules read every instance stored")
    sent = {str(dcmread(path).SOPInstanceUID) for path in site.received.glob("*")}
    assert sent == {str(dcmread(path).SOPInstanceUID) for path in ct}
    assert queued(site.engine) == 4  # the MR was not queued
