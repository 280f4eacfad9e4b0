"""A console application on a fresh index, its recorded audit events, and logged-in clients."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine

from appliance.accounts import users
from appliance.accounts.roles import Role
from appliance.audit.events import AuditEvent
from appliance.config import Settings, development_config
from appliance.web import create_app

PASSWORD = "Correct-Horse-42"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


@dataclass
class Events:
    """A recorder keeping the events in memory, for the tests to read."""

    recorded: list[AuditEvent] = field(default_factory=list)

    def record(self, event: AuditEvent) -> None:
        self.recorded.append(event)

    def of(self, code: str) -> list[AuditEvent]:
        return [event for event in self.recorded if event.event.code == code]


@pytest.fixture()
def events() -> Events:
    return Events()


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return Settings(lambda: development_config(tmp_path / "data"))


@pytest.fixture()
def app(settings: Settings, engine: Engine, events: Events) -> Iterator[Flask]:
    application = create_app(settings, engine, events)
    application.config["TESTING"] = True
    yield application


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def csrf_token(client: FlaskClient, path: str) -> str:
    page = client.get(path)
    found = CSRF.search(page.get_data(as_text=True))
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def log_in(client: FlaskClient, username: str, password: str = PASSWORD) -> None:
    token = csrf_token(client, "/login")
    answer = client.post("/login", data={"username": username, "password": password, "csrf_token": token})
    assert answer.status_code == 302, answer.get_data(as_text=True)


@pytest.fixture()
def make_account(engine: Engine) -> Callable[..., users.Account]:
    def make(username: str, role: Role, **values: object) -> users.Account:
        return users.create(engine, username, username.title(), role, PASSWORD, "test", **values)  # type: ignore[arg-type]

    return make


@pytest.fixture()
def logged_in(app: Flask, make_account: Callable[..., users.Account]) -> Callable[[Role], FlaskClient]:
    """A client logged in with a new account of the given role."""

    def login_as(role: Role) -> FlaskClient:
        make_account("admin", Role.ADMINISTRATOR) if role != Role.ADMINISTRATOR else None
        account = make_account(f"user-{role.value}", role)
        client = app.test_client()
        log_in(client, account.username)
        return client

    return login_as
