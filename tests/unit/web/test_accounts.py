"""The accounts pages: the list, creation of a substitute's time-boxed account, changes, disabling,
unlocking, a temporary password, one's own password; the last administrator rule; one audit record
per change naming the attributes (never a password); who may open each page."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date

import pytest
from console_client import PASSWORD, Events, csrf_token, log_in
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine

from appliance.accounts import users
from appliance.accounts.roles import Role
from appliance.audit.events import AuditEvent


@pytest.fixture()
def admin(logged_in: Callable[[Role], FlaskClient]) -> FlaskClient:
    return logged_in(Role.ADMINISTRATOR)


def post(client: FlaskClient, path: str, data: dict[str, object], form_page: str = "") -> str:
    token = csrf_token(client, form_page or path)
    answer = client.post(path, data={**data, "csrf_token": token}, follow_redirects=True)
    assert answer.status_code == 200
    return answer.get_data(as_text=True)


def errors_of(page: str, field: str) -> list[str]:
    found = re.search(rf'<ul class="errors" id="{field}-errors">(.*?)</ul>', page, re.S)
    return re.findall(r"<li>(.*?)</li>", found.group(1), re.S) if found else []


def alerts(events: Events) -> list[AuditEvent]:
    return events.of("110113")


def only_alert(events: Events) -> AuditEvent:
    (alert,) = alerts(events)
    return alert


def account_of(engine: Engine, username: str) -> users.Account:
    found = users.find_by_username(engine, username)
    assert found is not None
    return found


@pytest.mark.parametrize("role", [role for role in Role if role != Role.ADMINISTRATOR])
def test_only_the_administrator_manages_accounts_but_everyone_has_their_own_page(
    logged_in: Callable[[Role], FlaskClient], engine: Engine, role: Role
) -> None:
    client = logged_in(role)
    admin_id = account_of(engine, "admin").id
    for path in ["/accounts", "/accounts/new", f"/accounts/{admin_id}"]:
        assert client.get(path).status_code == 403, path
    token = csrf_token(client, "/my-account")
    for action in ["disable", "enable", "unlock", "password"]:
        assert client.post(f"/accounts/{admin_id}/{action}", data={"csrf_token": token}).status_code == 403
    page = client.get("/my-account").get_data(as_text=True)
    assert 'id="username">user-' in page


def test_the_list_shows_roles_in_words_validity_and_state(
    admin: FlaskClient, make_account: Callable[..., users.Account], engine: Engine
) -> None:
    make_account("j.durand", Role.RADIOLOGIST, valid_from=date(2026, 8, 1), valid_until=date(2026, 8, 15))
    make_account("ancien", Role.SECRETARY, valid_until=date(2020, 1, 1))
    locked = make_account("marie", Role.SECRETARY)
    for _ in range(users.LOCK_AFTER_FAILURES):
        users.authenticate(engine, "marie", "wrong", f"192.0.2.{_}")
    page = admin.get("/accounts").get_data(as_text=True)
    durand = re.search(r'<tr id="account-j.durand">(.*?)</tr>', page, re.S).group(1)  # type: ignore[union-attr]
    assert "Radiologue" in durand and "du 01/08/2026 au 15/08/2026" in durand
    assert "Expiré" in re.search(r'<tr id="account-ancien">(.*?)</tr>', page, re.S).group(1)  # type: ignore[union-attr]
    assert "Verrouillé" in re.search(r'<tr id="account-marie">(.*?)</tr>', page, re.S).group(1)  # type: ignore[union-attr]
    assert locked.username in page and "Administrateur" in page


def test_a_substitute_account_is_created_for_a_period_and_audited(
    admin: FlaskClient, engine: Engine, events: Events
) -> None:
    form = {
        "username": "j.durand",
        "full_name": "Jean Durand",
        "role": "radiologist",
        "valid_from": "2026-08-01",
        "valid_until": "2026-08-15",
        "note": "remplaçant du Dr Martin du 1er au 15 août",
        "password": "Temporaire-2026",
        "confirmation": "Temporaire-2026",
    }
    page = post(admin, "/accounts/new", form)
    assert "Compte j.durand créé." in page
    created = account_of(engine, "j.durand")
    assert (created.role, created.valid_from, created.valid_until) == (
        Role.RADIOLOGIST,
        date(2026, 8, 1),
        date(2026, 8, 15),
    )
    alert = only_alert(events)
    assert (alert.action, alert.event_type.code) == ("C", "110137")  # type: ignore[union-attr]
    (subject,) = alert.objects
    assert subject.kind == "account" and subject.object_id == "j.durand"
    assert ("role", "radiologist") in subject.details and ("valid_until", "2026-08-15") in subject.details
    assert "Temporaire-2026" not in repr(alert)


def test_bad_account_input_is_refused_next_to_the_field(admin: FlaskClient, events: Events) -> None:
    form = {"username": "Jean Durand", "full_name": "Jean", "role": "radiologist", "password": "court"}
    page = post(admin, "/accounts/new", {**form, "confirmation": "autre"})
    assert errors_of(page, "confirmation") == ["Les deux mots de passe diffèrent."]
    page = post(admin, "/accounts/new", {**form, "confirmation": "court"})
    assert errors_of(page, "username") == ["minuscules, chiffres, points, tirets et tirets bas uniquement"]
    page = post(
        admin,
        "/accounts/new",
        {
            **form,
            "username": "jean",
            "password": PASSWORD,
            "confirmation": PASSWORD,
            "valid_from": "2026-08-15",
            "valid_until": "2026-08-01",
        },
    )
    assert errors_of(page, "valid_until") == ["la fin de validité précède son début"]
    assert alerts(events) == []


def test_a_role_change_is_a_security_roles_changed_event(
    admin: FlaskClient, make_account: Callable[..., users.Account], engine: Engine, events: Events
) -> None:
    marie = make_account("marie", Role.SECRETARY)
    path = f"/accounts/{marie.id}"
    post(admin, path, {"full_name": "Marie Curie", "role": "technologist", "note": ""})
    changed = account_of(engine, "marie")
    assert (changed.full_name, changed.role) == ("Marie Curie", Role.TECHNOLOGIST)
    alert = only_alert(events)
    assert (alert.action, alert.event_type.code) == ("U", "110136")  # type: ignore[union-attr]
    assert alert.objects[0].details == (("full_name", "Marie Curie"), ("role", "technologist"))
    post(admin, path, {"full_name": "Marie Curie", "role": "technologist", "note": "", "valid_until": "2026-12-31"})
    assert alerts(events)[-1].event_type.code == "110137"  # type: ignore[union-attr]
    assert alerts(events)[-1].objects[0].details == (("valid_until", "2026-12-31"),)


def test_disable_enable_unlock_and_a_temporary_password(
    app: Flask, admin: FlaskClient, make_account: Callable[..., users.Account], engine: Engine, events: Events
) -> None:
    marie = make_account("marie", Role.SECRETARY)
    path = f"/accounts/{marie.id}"
    marie_client = app.test_client()
    log_in(marie_client, "marie")
    post(admin, f"{path}/disable", {}, form_page=path)
    assert account_of(engine, "marie").disabled
    assert marie_client.get("/").status_code == 302  # her session ended
    post(admin, f"{path}/enable", {}, form_page=path)
    for attempt in range(users.LOCK_AFTER_FAILURES):
        users.authenticate(engine, "marie", "wrong", f"192.0.2.{attempt}")
    assert "Déverrouiller" in admin.get(path).get_data(as_text=True)
    post(admin, f"{path}/unlock", {}, form_page=path)
    assert not account_of(engine, "marie").locked(users.now())
    weak = post(admin, f"{path}/password", {"password": "court", "confirmation": "court"}, form_page=path)
    assert errors_of(weak, "password") == ["au moins 10 caractères"]
    post(admin, f"{path}/password", {"password": "Provisoire-2026", "confirmation": "Provisoire-2026"}, form_page=path)
    assert users.authenticate(engine, "marie", "Provisoire-2026", "192.0.2.200").succeeded
    recorded = alerts(events)
    assert [(alert.action, alert.objects[0].details) for alert in recorded] == [
        ("E", (("disabled", "true"),)),
        ("E", (("disabled", "false"),)),
        ("E", (("locked", "false"),)),
        ("E", (("password", "set by an administrator"),)),
    ]
    assert all(alert.event_type.code == "110137" for alert in recorded)  # type: ignore[union-attr]
    assert "Provisoire-2026" not in repr(recorded)


def test_the_last_administrator_can_neither_disable_nor_demote_themselves(
    admin: FlaskClient, engine: Engine, events: Events
) -> None:
    me = account_of(engine, "user-administrator")  # the only administrator
    path = f"/accounts/{me.id}"
    page = post(admin, path, {"full_name": me.full_name, "role": "radiologist", "note": ""})
    assert errors_of(page, "role") == ["c’est le dernier administrateur actif : nommez d’abord un autre administrateur"]
    page = post(admin, f"{path}/disable", {}, form_page=path)
    assert "dernier administrateur actif" in page
    assert account_of(engine, "user-administrator") == me
    assert alerts(events) == []


def test_changing_ones_own_password(
    app: Flask, make_account: Callable[..., users.Account], engine: Engine, events: Events
) -> None:
    make_account("marie", Role.SECRETARY)
    client, elsewhere = app.test_client(), app.test_client()
    log_in(client, "marie")
    log_in(elsewhere, "marie")
    page = post(
        client,
        "/my-account",
        {"current_password": "faux", "password": "Nouveau-Mot-42", "confirmation": "Nouveau-Mot-42"},
    )
    assert errors_of(page, "current_password") == ["le mot de passe actuel est faux"]
    page = post(
        client,
        "/my-account",
        {"current_password": PASSWORD, "password": "Nouveau-Mot-42", "confirmation": "Nouveau-Mot-42"},
    )
    assert "Votre mot de passe est changé" in page
    assert client.get("/").status_code == 200  # this session goes on
    assert elsewhere.get("/").status_code == 302  # the other one ended
    assert users.authenticate(engine, "marie", "Nouveau-Mot-42", "192.0.2.9").succeeded
    alert = only_alert(events)
    assert alert.requestor.user_id == "marie" and alert.objects[0].details == (("password", "changed by its holder"),)  # type: ignore[union-attr]
