"""A console application on a fresh index, its recorded audit events, and logged-in clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from console_client import PASSWORD, Events, log_in
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine

from appliance.accounts import users
from appliance.accounts.roles import Role
from appliance.config import Settings, development_config
from appliance.web import create_app


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
