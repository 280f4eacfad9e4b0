"""Account rules the console relies on: an active administrator always stays, validity periods for
substitutes, one's own password change, and what an audit record says changed."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine

from appliance.accounts import users
from appliance.accounts.roles import Role
from appliance.accounts.users import AccountChanges, AccountError

PASSWORD = "Correct-Horse-42"
AUGUST = datetime(2026, 8, 5, 10, 0, tzinfo=UTC)


def make(engine: Engine, username: str, role: Role = Role.ADMINISTRATOR, **values: object) -> users.Account:
    return users.create(engine, username, username.title(), role, PASSWORD, "test", **values)  # type: ignore[arg-type]


def test_the_last_active_administrator_can_be_neither_demoted_nor_disabled(engine: Engine) -> None:
    anne = make(engine, "anne")
    for changes, field in [
        (AccountChanges(role=Role.RADIOLOGIST), "role"),
        (AccountChanges(disabled=True), "disabled"),
        (AccountChanges(set_validity=True, valid_until=date(2020, 1, 1)), "valid_until"),
    ]:
        with pytest.raises(AccountError) as refused:
            users.change(engine, anne.id, changes)
        assert refused.value.field == field and "last active administrator" in str(refused.value)
    assert users.find(engine, anne.id) == anne  # nothing changed


def test_with_another_active_administrator_one_may_step_down(engine: Engine) -> None:
    anne = make(engine, "anne")
    make(engine, "bruno")
    demoted = users.change(engine, anne.id, AccountChanges(role=Role.RADIOLOGIST))
    assert demoted.role == Role.RADIOLOGIST and demoted.session_version == anne.session_version + 1


def test_a_disabled_or_expired_administrator_does_not_count(engine: Engine) -> None:
    anne = make(engine, "anne")
    make(engine, "bruno", valid_until=date(2020, 1, 1))
    claire = make(engine, "claire")
    users.change(engine, claire.id, AccountChanges(disabled=True))
    with pytest.raises(AccountError):
        users.change(engine, anne.id, AccountChanges(disabled=True))


def test_a_substitute_gets_a_period_and_a_note_that_can_be_reopened(engine: Engine) -> None:
    make(engine, "anne")
    locum = make(
        engine,
        "j.durand",
        Role.RADIOLOGIST,
        valid_from=date(2026, 8, 1),
        valid_until=date(2026, 8, 15),
        note="remplaçant du Dr Martin du 1er au 15 août",
    )
    assert users.standing_refusal(locum, AUGUST) is None
    assert users.standing_refusal(locum, datetime(2026, 8, 16, tzinfo=UTC)) == users.LoginRefusal.EXPIRED
    longer = users.change(engine, locum.id, AccountChanges(set_validity=True, valid_from=date(2026, 8, 1)))
    assert (longer.valid_from, longer.valid_until) == (date(2026, 8, 1), None)
    assert users.differences(locum, longer) == (("valid_until", ""),)
    with pytest.raises(AccountError) as refused:
        users.change(
            engine,
            locum.id,
            AccountChanges(set_validity=True, valid_from=date(2026, 9, 1), valid_until=date(2026, 8, 1)),
        )
    assert refused.value.field == "valid_until"


def test_differences_name_each_changed_attribute_and_its_new_value(engine: Engine) -> None:
    make(engine, "anne")
    marie = make(engine, "marie", Role.SECRETARY)
    changed = users.change(engine, marie.id, AccountChanges(full_name="Marie Curie", role=Role.TECHNOLOGIST))
    assert users.differences(marie, changed) == (("full_name", "Marie Curie"), ("role", "technologist"))
    assert users.differences(changed, users.change(engine, marie.id, AccountChanges(disabled=True))) == (
        ("disabled", "true"),
    )


def test_changing_ones_own_password_needs_the_current_one(engine: Engine) -> None:
    marie = make(engine, "marie", Role.SECRETARY)
    with pytest.raises(AccountError) as wrong:
        users.change_own_password(engine, marie.id, "not it", "Another-Horse-43")
    assert wrong.value.field == "current_password"
    with pytest.raises(AccountError) as weak:
        users.change_own_password(engine, marie.id, PASSWORD, "short")
    assert weak.value.field == "password"
    with pytest.raises(AccountError) as same:
        users.change_own_password(engine, marie.id, PASSWORD, PASSWORD)
    assert same.value.field == "password"
    users.change_own_password(engine, marie.id, PASSWORD, "Another-Horse-43")
    assert users.authenticate(engine, "marie", "Another-Horse-43", "192.0.2.1").succeeded
    assert not users.authenticate(engine, "marie", PASSWORD, "192.0.2.1").succeeded
