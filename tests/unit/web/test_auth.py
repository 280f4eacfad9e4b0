"""Logging in and out, the first visit, lockout, sessions, CSRF and the security headers."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from console_client import PASSWORD, Events, csrf_token, log_in
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, update

from appliance.accounts import users
from appliance.accounts.roles import Role
from appliance.db.schema import account
from appliance.web.auth.access import SEEN, STARTED


def test_a_new_box_asks_for_the_administrator_first_and_has_no_default_account(
    client: FlaskClient, engine: Engine
) -> None:
    assert users.count(engine) == 0
    assert client.get("/").headers["Location"].endswith("/first-visit")
    assert client.get("/login").status_code == 200  # public, but nobody can log in
    token = csrf_token(client, "/first-visit")
    weak = client.post(
        "/first-visit",
        data={
            "full_name": "Anne Admin",
            "username": "anne",
            "password": "short",
            "confirmation": "short",
            "csrf_token": token,
        },
    )
    assert weak.status_code == 200 and "10" in weak.get_data(as_text=True)
    created = client.post(
        "/first-visit",
        data={
            "full_name": "Anne Admin",
            "username": "anne",
            "password": PASSWORD,
            "confirmation": PASSWORD,
            "csrf_token": token,
        },
    )
    assert created.status_code == 302
    assert users.find_by_username(engine, "anne").role == Role.ADMINISTRATOR  # type: ignore[union-attr]
    assert client.get("/").status_code == 200  # logged in straight away
    assert client.get("/first-visit").headers["Location"].endswith("/login")  # never a second time


def test_login_logout_and_the_audit_records(
    app: Flask, make_account: Callable[..., users.Account], events: Events
) -> None:
    make_account("marie", Role.SECRETARY)
    client = app.test_client()
    assert client.get("/").headers["Location"].startswith("/login")
    log_in(client, "marie")
    assert client.get("/").status_code == 200
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    assert client.get("/").headers["Location"].startswith("/login")
    logins = events.of("110114")
    assert [event.event_type.code for event in logins] == ["110122", "110123"]  # type: ignore[union-attr]
    assert all(event.requestor.user_id == "marie" for event in logins)  # type: ignore[union-attr]


def test_a_wrong_password_says_so_and_is_audited_as_a_failure(
    app: Flask, make_account: Callable[..., users.Account], events: Events
) -> None:
    make_account("marie", Role.SECRETARY)
    client = app.test_client()
    token = csrf_token(client, "/login")
    answer = client.post("/login", data={"username": "marie", "password": "nope", "csrf_token": token})
    assert answer.status_code == 200
    assert "Identifiant ou mot de passe incorrect" in answer.get_data(as_text=True)
    assert events.of("110114")[0].outcome == 4


def test_ten_failures_lock_the_account_until_an_administrator_unlocks_it(
    app: Flask, engine: Engine, make_account: Callable[..., users.Account], events: Events
) -> None:
    account = make_account("marie", Role.SECRETARY)
    moment = users.now()
    waits = []
    for attempt in range(1, users.LOCK_AFTER_FAILURES + 1):
        result = users.authenticate(engine, "marie", "wrong", "10.0.0.1", at=moment)
        locking = attempt == users.LOCK_AFTER_FAILURES
        assert result.refusal == (users.LoginRefusal.ACCOUNT_LOCKED if locking else users.LoginRefusal.WRONG)
        assert result.locked_for_good == result.just_locked == locking
        if result.wait_until and result.wait_until < users.LOCKED_FOR_GOOD:
            assert (
                users.authenticate(engine, "marie", PASSWORD, "10.0.0.1", at=moment).refusal
                == users.LoginRefusal.ACCOUNT_LOCKED
            )
            waits.append(result.wait_until - moment)
            moment = result.wait_until + timedelta(seconds=1)
    assert waits == sorted(waits) and len(waits) == users.LOCK_AFTER_FAILURES - users.DELAY_AFTER_FAILURES
    a_week_later = moment + timedelta(days=7)
    assert (
        users.authenticate(engine, "marie", PASSWORD, "10.0.0.2", at=a_week_later).refusal
        == users.LoginRefusal.ACCOUNT_LOCKED
    )
    users.unlock(engine, account.id)
    assert users.authenticate(engine, "marie", PASSWORD, "10.0.0.2").succeeded


def test_failures_from_one_address_lock_that_address(
    engine: Engine, make_account: Callable[..., users.Account]
) -> None:
    make_account("marie", Role.SECRETARY)
    for attempt in range(users.ADDRESS_FAILURES):
        users.authenticate(engine, f"nobody{attempt}", "wrong", "10.0.0.9")
    assert users.authenticate(engine, "marie", PASSWORD, "10.0.0.9").refusal == users.LoginRefusal.ADDRESS_LOCKED
    assert users.authenticate(engine, "marie", PASSWORD, "10.0.0.8").succeeded


def test_a_form_without_its_csrf_token_is_refused(app: Flask, make_account: Callable[..., users.Account]) -> None:
    make_account("marie", Role.SECRETARY)
    client = app.test_client()
    app.config["WTF_CSRF_ENABLED"] = True
    answer = client.post("/login", data={"username": "marie", "password": PASSWORD})
    assert answer.status_code == 400


def test_an_idle_session_ends(app: Flask, make_account: Callable[..., users.Account]) -> None:
    make_account("marie", Role.SECRETARY)
    client = app.test_client()
    log_in(client, "marie")
    with client.session_transaction() as session:
        session[SEEN] = time.time() - 16 * 60
    assert client.get("/").headers["Location"].startswith("/login")


def test_a_session_ends_after_its_longest_life_even_when_busy(
    app: Flask, make_account: Callable[..., users.Account]
) -> None:
    make_account("marie", Role.SECRETARY)
    client = app.test_client()
    log_in(client, "marie")
    with client.session_transaction() as session:
        session[STARTED] = time.time() - 11 * 3600
    assert client.get("/").headers["Location"].startswith("/login")


def test_a_disabled_account_loses_its_open_sessions(
    app: Flask, engine: Engine, make_account: Callable[..., users.Account]
) -> None:
    account = make_account("marie", Role.SECRETARY)
    client = app.test_client()
    log_in(client, "marie")
    users.change(engine, account.id, users.AccountChanges(disabled=True))
    assert client.get("/").headers["Location"].startswith("/login")


def test_security_headers(client: FlaskClient) -> None:
    headers = client.get("/login").headers
    policy = headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store"
    assert "Strict-Transport-Security" not in headers


def test_the_console_speaks_french_by_default_and_english_on_request(client: FlaskClient) -> None:
    assert "Se connecter" in client.get("/login").get_data(as_text=True)
    token = csrf_token(client, "/login")
    client.post("/language", data={"language": "en", "next": "/login", "csrf_token": token})
    assert "Log in" in client.get("/login").get_data(as_text=True)


def test_login_never_redirects_to_another_site(app: Flask, make_account: Callable[..., users.Account]) -> None:
    make_account("marie", Role.SECRETARY)
    client = app.test_client()
    token = csrf_token(client, "/login")
    answer = client.post(
        "/login?next=//evil.example/", data={"username": "marie", "password": PASSWORD, "csrf_token": token}
    )
    assert answer.headers["Location"] == "/"


def test_the_login_page_says_which_lock_stopped_the_attempt(
    app: Flask, engine: Engine, make_account: Callable[..., users.Account], events: Events
) -> None:
    make_account("marie", Role.SECRETARY)
    make_account("paul", Role.RADIOLOGIST)
    client = app.test_client()
    token = csrf_token(client, "/login")
    with engine.begin() as connection:  # nine failures behind it, the last wait over
        connection.execute(update(account).where(account.c.username == "marie").values(failed_logins=9))
    tenth = client.post("/login", data={"username": "marie", "password": "wrong", "csrf_token": token})
    assert "Ce compte est verrouillé" in tenth.get_data(as_text=True)
    for attempt in range(users.ADDRESS_FAILURES - 2):
        users.authenticate(engine, f"nobody{attempt}", "wrong", "127.0.0.1")
    # The address's 20th failure, on an account that is not locked: the computer waits, not the account.
    last = client.post("/login", data={"username": "paul", "password": "wrong", "csrf_token": token})
    page = last.get_data(as_text=True)
    assert "depuis cet ordinateur" in page and "Ce compte est verrouillé" not in page
    locks = [(event.objects[0].kind.value, event.objects[0].object_id) for event in events.of("110113")]
    assert locks == [("account", "marie"), ("security-resource", "127.0.0.1")]
