"""Every route of the console, for every role: refused (403) unless the role holds the route's
permission, and nothing but the public pages reachable without logging in. The table is read from
the application itself, so a new page is checked the day it is added."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from appliance.accounts import users
from appliance.accounts.roles import Permission, Role, may

SAMPLE_VALUES = {"int": "1", "string": "1.2.3", "path": "1.2.3", "uuid": "00000000-0000-0000-0000-000000000000"}
PUBLIC = {
    "auth.login",
    "auth.first_visit",
    "auth.language",
    "auth.certificate_authority",
    "static",
    "viewer.asset",  # the built viewer's files (no patient data)
    "viewer.manifest",  # a Weasis manifest: its one-time token is the credential
}


def rules(app: Flask) -> Iterator[Rule]:
    yield from (rule for rule in app.url_map.iter_rules() if rule.endpoint != "static")


def sample_url(rule: Rule) -> str:
    values = {argument: sample_value(rule._converters[argument]) for argument in rule.arguments}
    return rule.build(values, append_unknown=False)[1]  # type: ignore[index]


def sample_value(converter: object) -> str:
    """A value the converter accepts: the first of `any(...)`, else one of its type."""
    if hasattr(converter, "items"):
        return sorted(converter.items)[0]
    return SAMPLE_VALUES.get(type(converter).__name__.removesuffix("Converter").lower(), "1")


def method_of(rule: Rule) -> str:
    return "GET" if "GET" in (rule.methods or set()) else sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})[0]


def call(client: FlaskClient, rule: Rule) -> int:
    return client.open(sample_url(rule), method=method_of(rule)).status_code


def test_every_route_is_public_or_names_its_permission(app: Flask) -> None:
    for rule in rules(app):
        view = app.view_functions[rule.endpoint]
        if getattr(view, "public", False):
            assert rule.endpoint in PUBLIC, f"{rule.endpoint} is public: add it to PUBLIC only if it must be"
        else:
            assert isinstance(getattr(view, "permission", None), Permission), f"{rule.endpoint} names no permission"


def is_tool_route(app: Flask, rule: Rule) -> bool:
    return bool(getattr(app.view_functions[rule.endpoint], "tools", False))


def test_nothing_but_the_public_pages_without_logging_in(
    app: Flask, make_account: Callable[..., users.Account]
) -> None:
    """Pages redirect to the login page; the routes tools use (DICOMweb) answer 401 with a Bearer
    challenge, from any address but the loopback one in development mode."""
    make_account("admin", Role.ADMINISTRATOR)
    client = app.test_client()
    elsewhere = app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    app.config["WTF_CSRF_ENABLED"] = False
    tool_routes = 0
    for rule in rules(app):
        if rule.endpoint in PUBLIC:
            continue
        if is_tool_route(app, rule):
            tool_routes += 1
            answer = elsewhere.open(sample_url(rule), method=method_of(rule))
            assert answer.status_code == 401, rule.endpoint
            assert answer.headers["WWW-Authenticate"].startswith("Bearer"), rule.endpoint
            continue
        answer = client.open(sample_url(rule), method=method_of(rule))
        assert answer.status_code == 302 and answer.headers["Location"].startswith("/login"), rule.endpoint
    assert tool_routes > 20
    assert client.get("/static/house.css").status_code == 200


def test_development_mode_lets_the_loopback_address_use_the_tool_routes_without_login(
    app: Flask, make_account: Callable[..., users.Account], caplog: pytest.LogCaptureFixture
) -> None:
    make_account("admin", Role.ADMINISTRATOR)
    client = app.test_client()  # 127.0.0.1, and the fixture's configuration is development's
    assert app.extensions["appliance"].config.is_development
    for rule in rules(app):
        if is_tool_route(app, rule):
            status = client.open(sample_url(rule), method=method_of(rule)).status_code
            assert status not in (302, 401, 403), f"{rule.endpoint}: {status}"
    warnings = [record for record in caplog.records if "development mode" in record.getMessage()]
    assert len(warnings) == 1  # once, not per request


@pytest.mark.parametrize("role", list(Role))
def test_each_role_is_refused_the_routes_it_may_not_use(
    app: Flask, logged_in: Callable[[Role], FlaskClient], role: Role
) -> None:
    client = logged_in(role)
    app.config["WTF_CSRF_ENABLED"] = False  # the permission is checked before the form
    for rule in rules(app):
        view = app.view_functions[rule.endpoint]
        permission = getattr(view, "permission", None)
        if permission is None or rule.endpoint == "auth.logout":
            continue
        status = call(client, rule)
        if may(role, permission):
            assert status != 403, f"{role} refused {rule.endpoint}"
        else:
            assert status == 403, f"{role} reached {rule.endpoint} ({status})"
