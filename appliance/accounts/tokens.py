"""Access tokens: what a tool presents instead of a console session (S1), for an account.

- A **DICOMweb token** (`DICOMWEB`) is sent as `Authorization: Bearer <token>` by Weasis, scripts
  and other tools; it works until it expires (at most `MAXIMUM_MINUTES`), with the account's role.
- A **one-time token** (`ONE_TIME`) opens one thing once (a Weasis manifest): `consume` accepts it
  the first time only.

Only the SHA-256 of a token is kept. A token stops working when it expires, when it is used up, or
when its account can no longer log in (disabled, locked, outside its validity). Nothing here knows
about HTTP: the web edge and the command line call these functions and record the audit events.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, insert, select, update

from appliance.accounts import users
from appliance.accounts.users import Account, AccountError
from appliance.db import as_utc
from appliance.db.schema import access_token

DICOMWEB = "dicomweb"
ONE_TIME = "one-time"
PURPOSES = (DICOMWEB, ONE_TIME)
MAXIMUM_MINUTES = 24 * 60  # short-lived: a working day at most
TOKEN_BYTES = 32


@dataclass(frozen=True)
class IssuedToken:
    """A new token: shown once to whoever asked for it, never stored as such."""

    id: int
    token: str
    account_id: int
    purpose: str
    expires_at: datetime


def now() -> datetime:
    return datetime.now(UTC)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(
    engine: Engine, account_id: int, minutes: int, purpose: str = DICOMWEB, note: str = "", at: datetime | None = None
) -> IssuedToken:
    """A new token for the account, valid `minutes` (1 to MAXIMUM_MINUTES) from `at`.

    Raises AccountError (field `minutes`, `purpose` or `account`) when it cannot be made.
    """
    if not 1 <= minutes <= MAXIMUM_MINUTES:
        raise AccountError("minutes", f"a token lasts from 1 to {MAXIMUM_MINUTES} minutes")
    if purpose not in PURPOSES:
        raise AccountError("purpose", f"unknown token purpose {purpose!r}")
    moment = at or now()
    found = users.find(engine, account_id)
    if found is None or usable(found, moment) is None:
        raise AccountError("account", "this account cannot log in, so it cannot have a token")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    expires_at = moment + timedelta(minutes=minutes)
    values = {
        "account_pk": account_id,
        "digest": digest(token),
        "purpose": purpose,
        "note": note[:200],
        "created_at": moment,
        "expires_at": expires_at,
    }
    with engine.begin() as connection:
        key = connection.execute(insert(access_token), values).inserted_primary_key
    assert key is not None
    return IssuedToken(int(key[0]), token, account_id, purpose, expires_at)


def check(engine: Engine, token: str, at: datetime | None = None) -> Account | None:
    """The account a DICOMweb token stands for, or None (unknown, expired, one-time, or an account
    that cannot log in now)."""
    moment = at or now()
    statement = select(access_token.c.account_pk, access_token.c.expires_at).where(
        access_token.c.digest == digest(token), access_token.c.purpose == DICOMWEB
    )
    with engine.connect() as connection:
        row = connection.execute(statement).first()
    if row is None or as_utc(row.expires_at) <= moment:
        return None
    found = users.find(engine, int(row.account_pk))
    return usable(found, moment) if found is not None else None


def consume(engine: Engine, token: str, at: datetime | None = None) -> Account | None:
    """The account of a one-time token on its first use (it is used up at once), else None."""
    moment = at or now()
    with engine.begin() as connection:
        row = connection.execute(
            select(access_token.c.id, access_token.c.account_pk, access_token.c.expires_at).where(
                access_token.c.digest == digest(token), access_token.c.purpose == ONE_TIME
            )
        ).first()
        if row is None or as_utc(row.expires_at) <= moment:
            return None
        used = connection.execute(
            update(access_token)
            .where(access_token.c.id == row.id, access_token.c.used_at.is_(None))
            .values(used_at=moment)
        )
        if not used.rowcount:  # used before, or by a concurrent request a moment ago
            return None
    found = users.find(engine, int(row.account_pk))
    return usable(found, moment) if found is not None else None


def usable(found: Account, moment: datetime) -> Account | None:
    """The account when it may act now (not locked, disabled, or outside its validity)."""
    if found.locked(moment) or users.standing_refusal(found, moment) is not None:
        return None
    return found


def remove_expired(engine: Engine, at: datetime | None = None) -> int:
    """Forget the tokens that expired before `at`; how many."""
    with engine.begin() as connection:
        result = connection.execute(delete(access_token).where(access_token.c.expires_at <= (at or now())))
    return int(result.rowcount or 0)
