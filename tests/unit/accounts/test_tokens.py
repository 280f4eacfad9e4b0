"""Access tokens for tools: hashed, expiring, one-time ones used once, gone with their account."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from appliance.accounts import tokens, users
from appliance.accounts.roles import Role
from appliance.accounts.users import AccountChanges, AccountError
from appliance.db.schema import access_token

PASSWORD = "Correct-Horse-42"


def account(engine: Engine, username: str = "manip") -> users.Account:
    return users.create(engine, username, "Manip Radio", Role.TECHNOLOGIST, PASSWORD, "test")


def test_a_token_works_until_it_expires_and_only_its_hash_is_kept(engine: Engine) -> None:
    owner = account(engine)
    issued = tokens.create(engine, owner.id, 60)
    found = tokens.check(engine, issued.token)
    assert found is not None and found.username == "manip"
    assert tokens.check(engine, issued.token, at=issued.expires_at - timedelta(seconds=1)) is not None
    assert tokens.check(engine, issued.token, at=issued.expires_at) is None
    assert tokens.check(engine, issued.token + "x") is None
    with engine.connect() as connection:
        stored = connection.execute(select(access_token.c.digest)).scalar_one()
    assert issued.token not in stored and stored == tokens.digest(issued.token)
    assert tokens.remove_expired(engine, at=issued.expires_at) == 1


def test_a_one_time_token_opens_once_and_is_no_bearer_token(engine: Engine) -> None:
    owner = account(engine)
    issued = tokens.create(engine, owner.id, 5, purpose=tokens.ONE_TIME, note="Weasis manifest")
    assert tokens.check(engine, issued.token) is None
    first = tokens.consume(engine, issued.token)
    assert first is not None and first.id == owner.id
    assert tokens.consume(engine, issued.token) is None


def test_a_token_stops_with_its_account_and_lasts_a_day_at_most(engine: Engine) -> None:
    owner = account(engine)
    issued = tokens.create(engine, owner.id, 60)
    users.change(engine, owner.id, AccountChanges(disabled=True), at=users.now())
    assert tokens.check(engine, issued.token) is None
    with pytest.raises(AccountError, match="cannot log in"):
        tokens.create(engine, owner.id, 60)
    with pytest.raises(AccountError, match="minutes"):
        tokens.create(engine, account(engine, "other").id, tokens.MAXIMUM_MINUTES + 1)
