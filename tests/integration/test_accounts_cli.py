"""`appliance accounts list | unlock | set-password | create-administrator`: the way back into the
console from the box's own console, on a real index and audit trail, the password typed twice
(getpass), each command recorded (110113) with the local OS user as requestor."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from servers import archive_config, write_config
from sqlalchemy import Engine

from appliance.accounts import users
from appliance.accounts.roles import Role
from appliance.audit.activity import local_user
from appliance.audit.events import Action, AuditEvent, EventId, EventType, ObjectKind, Outcome
from appliance.audit.trail import AuditTrail
from appliance.cli import main
from appliance.config import load_config
from appliance.db import create_index_engine

OLD = "Forgotten-Pass-1"
NEW = "Brand-New-Pass-42"


@pytest.fixture()
def config_path(tmp_path: Path) -> Path:
    path = write_config(tmp_path / "appliance.yaml", archive_config(tmp_path / "data", 1))
    assert main(["db", "upgrade", "--config", str(path)]) == 0
    return path


@pytest.fixture()
def engine(config_path: Path) -> Iterator[Engine]:
    opened = create_index_engine(load_config(config_path).database_url)
    yield opened
    opened.dispose()


@pytest.fixture()
def locked_administrator(engine: Engine) -> users.Account:
    """The only administrator, locked after ten wrong passwords."""
    account = users.create(engine, "dr.martin", "Paul Martin", Role.ADMINISTRATOR, OLD, "first visit")
    for hour in range(users.LOCK_AFTER_FAILURES):  # an hour apart: past each growing delay
        at = users.now() + timedelta(hours=hour)
        users.authenticate(engine, "dr.martin", "not-the-password", f"192.168.1.{hour}", at)
    locked = users.find(engine, account.id)
    assert locked is not None and locked.locked_for_good
    return locked


def typed(monkeypatch: pytest.MonkeyPatch, *answers: str) -> list[str]:
    """getpass answers `answers` in turn; the prompts shown are kept."""
    prompts: list[str] = []
    replies = iter(answers)

    def answer(prompt: str = "") -> str:
        prompts.append(prompt)
        return next(replies)

    monkeypatch.setattr(getpass, "getpass", answer)
    return prompts


def recorded(config_path: Path) -> list[AuditEvent]:
    trail = AuditTrail(load_config(config_path).audit.database)
    try:
        return [record.event for record in trail.records()]
    finally:
        trail.close()


def accounts(config_path: Path, *arguments: str) -> int:
    return main(["accounts", *arguments, "--config", str(config_path)])


def check_recorded_by_the_local_user(event: AuditEvent) -> None:
    assert event.event is EventId.SECURITY_ALERT
    requestor, cli = event.participants
    assert requestor == local_user() and (cli.user_id, cli.is_requestor) == ("appliance-cli", False)


def test_list_shows_roles_and_states_and_is_recorded(
    config_path: Path, locked_administrator: users.Account, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    users.create(engine, "secretaire", "Claire Durand", Role.SECRETARY, OLD, "dr.martin")
    assert accounts(config_path, "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["dr.martin", "administrator", "locked", "never"]
    assert lines[1].split()[:4] == ["secretaire", "secretary", "active", "never"] and "Claire Durand" in lines[1]
    (event,) = recorded(config_path)
    check_recorded_by_the_local_user(event)
    assert (event.action, event.event_type) == (Action.EXECUTE, EventType.USE_OF_RESTRICTED_FUNCTION)
    assert (event.objects[0].kind, dict(event.objects[0].details)) == (ObjectKind.SECURITY_RESOURCE, {"accounts": "2"})


def test_unlock_lets_the_administrator_log_in_again(
    config_path: Path, locked_administrator: users.Account, engine: Engine
) -> None:
    assert accounts(config_path, "unlock", "dr.martin") == 0
    assert users.authenticate(engine, "dr.martin", OLD, "192.168.1.24").succeeded
    (event,) = recorded(config_path)
    check_recorded_by_the_local_user(event)
    (subject,) = event.objects
    assert (subject.kind, subject.object_id, subject.name, subject.details) == (
        ObjectKind.ACCOUNT, "dr.martin", "Paul Martin", (("locked", "false"),),
    )  # fmt: skip


def test_set_password_asks_twice_and_ends_the_sessions(
    config_path: Path, locked_administrator: users.Account, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts = typed(monkeypatch, NEW, NEW)
    assert accounts(config_path, "set-password", "dr.martin") == 0
    assert prompts == ["new password for dr.martin: ", "the same password again: "]
    changed = users.find(engine, locked_administrator.id)
    assert changed is not None and changed.session_version == locked_administrator.session_version + 1
    assert accounts(config_path, "unlock", "dr.martin") == 0
    assert users.authenticate(engine, "dr.martin", NEW, "192.168.1.24").succeeded
    event = recorded(config_path)[0]
    check_recorded_by_the_local_user(event)
    assert event.outcome is Outcome.SUCCESS
    assert event.objects[0].details == (("password", "set on the box's command line"),)
    assert NEW not in repr(recorded(config_path))


@pytest.mark.parametrize(
    ("answers", "why"),
    [(("short",), "at least 10 characters"), ((NEW, NEW + "x"), "the two passwords differ")],
)
def test_a_password_refused_changes_nothing_and_is_recorded(
    config_path: Path,
    locked_administrator: users.Account,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    answers: tuple[str, ...],
    why: str,
) -> None:
    typed(monkeypatch, *answers)
    assert accounts(config_path, "set-password", "dr.martin") == 1
    assert why in capsys.readouterr().err
    assert users.find(engine, locked_administrator.id) == locked_administrator
    (event,) = recorded(config_path)
    assert (event.outcome, event.outcome_description) == (Outcome.MINOR_FAILURE, why)


def test_an_unknown_account_is_refused(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert accounts(config_path, "unlock", "nobody") == 1
    assert "no such account" in capsys.readouterr().err
    (event,) = recorded(config_path)
    assert (event.outcome, event.objects[0].object_id) == (Outcome.MINOR_FAILURE, "nobody")


def test_a_new_administrator_even_when_accounts_exist(
    config_path: Path, locked_administrator: users.Account, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    typed(monkeypatch, NEW, NEW)
    assert accounts(config_path, "create-administrator", "prestataire.admin", "--full-name", "Jeanne Roux") == 0
    created = users.find_by_username(engine, "prestataire.admin")
    assert created is not None and (created.role, created.full_name) == (Role.ADMINISTRATOR, "Jeanne Roux")
    assert created.created_by.endswith("(command line)")
    assert users.authenticate(engine, "prestataire.admin", NEW, "192.168.1.24").succeeded
    (event,) = recorded(config_path)
    check_recorded_by_the_local_user(event)
    assert (event.action, event.objects[0].object_id, event.objects[0].name) == (
        Action.CREATE, "prestataire.admin", "Jeanne Roux",
    )  # fmt: skip
    typed(monkeypatch, NEW, NEW)
    assert accounts(config_path, "create-administrator", "dr.martin", "--full-name", "Someone") == 1  # taken
    assert recorded(config_path)[-1].outcome_description == "this username is taken"
