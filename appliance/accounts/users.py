"""People who use the console (S1, S3): their accounts, passwords (argon2id), validity periods and
the lockout after repeated failures, per account and per source address.

The rules follow CNIL délibération 2022-100 (passwords with a restriction mechanism): at least 10
characters of 3 kinds, a delay growing after 5 failures and a lock after 10 that only an
administrator lifts; one address failing 20 times in 15 minutes waits 15 minutes, whatever the
accounts it tried. Nothing here knows about HTTP: the web edge calls these functions and records the
audit events.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Engine, func, insert, select, update

from appliance.accounts.roles import Role
from appliance.db import as_utc
from appliance.db.schema import account, login_throttle

MINIMUM_LENGTH = 10
MINIMUM_KINDS = 3  # of lower case, upper case, digits, other characters
LONG_PASSPHRASE = 16  # a passphrase this long may use any characters
DELAY_AFTER_FAILURES = 5
LOCK_AFTER_FAILURES = 10
FIRST_DELAY = timedelta(seconds=30)
ADDRESS_FAILURES = 20
ADDRESS_WINDOW = timedelta(minutes=15)
LOCKED_FOR_GOOD = datetime(9999, 12, 31, tzinfo=UTC)
USERNAME_CHARACTERS = frozenset(string.ascii_lowercase + string.digits + ".-_")

HASHER = PasswordHasher()
# Verifying against this hash when the account does not exist costs the same time as a real check.
UNKNOWN_ACCOUNT_HASH = HASHER.hash("no such account")


class AccountError(Exception):
    """A request about accounts that cannot be done; the message says why, in English (the web edge
    shows its own translated words keyed by `field`)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


class LoginRefusal(StrEnum):
    WRONG = "wrong"  # unknown account or wrong password (the same answer for both)
    ACCOUNT_LOCKED = "account-locked"  # too many failures: wait, or ask an administrator
    ADDRESS_LOCKED = "address-locked"  # too many failures from this address
    DISABLED = "disabled"
    NOT_YET_VALID = "not-yet-valid"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Account:
    id: int
    username: str
    full_name: str
    role: Role
    valid_from: date | None
    valid_until: date | None
    disabled: bool
    note: str
    failed_logins: int
    locked_until: datetime | None
    session_version: int
    last_login_at: datetime | None
    created_at: datetime
    created_by: str

    def locked(self, at: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > at

    @property
    def locked_for_good(self) -> bool:
        return until_an_administrator_acts(self.locked_until)


@dataclass(frozen=True)
class LoginResult:
    account: Account | None  # the account logged in, or the account the failure counts against
    refusal: LoginRefusal | None
    just_locked: bool = False  # this failure locked the account or the address (a security alert)
    wait_until: datetime | None = None

    @property
    def succeeded(self) -> bool:
        return self.refusal is None

    @property
    def locked_for_good(self) -> bool:
        """Locked until an administrator unlocks the account (not a wait of a few minutes)."""
        return self.refusal == LoginRefusal.ACCOUNT_LOCKED and until_an_administrator_acts(self.wait_until)


@dataclass(frozen=True)
class AccountChanges:
    """What an administrator changes on an account; None leaves a field as it is."""

    full_name: str | None = None
    role: Role | None = None
    valid_from: date | None = None
    valid_until: date | None = None
    clear_validity: bool = False
    set_validity: bool = False  # take valid_from and valid_until as they are (None: no limit)
    disabled: bool | None = None
    note: str | None = None


def until_an_administrator_acts(locked_until: datetime | None) -> bool:
    return locked_until is not None and locked_until >= LOCKED_FOR_GOOD - timedelta(days=1)


def now() -> datetime:
    return datetime.now(UTC)


def account_from_row(row: object) -> Account:
    mapping = row._mapping  # type: ignore[attr-defined]
    return Account(
        id=mapping["id"],
        username=mapping["username"],
        full_name=mapping["full_name"],
        role=Role(mapping["role"]),
        valid_from=mapping["valid_from"],
        valid_until=mapping["valid_until"],
        disabled=bool(mapping["disabled"]),
        note=mapping["note"],
        failed_logins=mapping["failed_logins"],
        locked_until=as_utc(mapping["locked_until"]),
        session_version=mapping["session_version"],
        last_login_at=as_utc(mapping["last_login_at"]),
        created_at=as_utc(mapping["created_at"]),
        created_by=mapping["created_by"],
    )


def password_problem(password: str, username: str = "") -> str | None:
    """Why `password` is too weak, or None. The same rule for the first administrator and everyone."""
    if len(password) < MINIMUM_LENGTH:
        return f"at least {MINIMUM_LENGTH} characters"
    if username and username.lower() in password.lower():
        return "must not contain the username"
    if len(password) >= LONG_PASSPHRASE:
        return None
    if character_kinds(password) < MINIMUM_KINDS:
        return f"at least {MINIMUM_KINDS} kinds of characters (lower case, upper case, digits, others)"
    return None


def character_kinds(password: str) -> int:
    kinds = (str.islower, str.isupper, str.isdigit, lambda character: not character.isalnum())
    return sum(any(kind(character) for character in password) for kind in kinds)


def username_problem(username: str) -> str | None:
    if not 2 <= len(username) <= 64:
        return "between 2 and 64 characters"
    if not set(username) <= USERNAME_CHARACTERS:
        return "lower-case letters, digits, dots, dashes and underscores only"
    return None


def count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(account)).scalar_one())


def find(engine: Engine, account_id: int) -> Account | None:
    with engine.connect() as connection:
        row = connection.execute(select(account).where(account.c.id == account_id)).first()
    return account_from_row(row) if row else None


def find_by_username(engine: Engine, username: str) -> Account | None:
    with engine.connect() as connection:
        row = connection.execute(select(account).where(account.c.username == username.strip().lower())).first()
    return account_from_row(row) if row else None


def all_accounts(engine: Engine) -> list[Account]:
    with engine.connect() as connection:
        rows = connection.execute(select(account).order_by(account.c.username)).all()
    return [account_from_row(row) for row in rows]


def create(
    engine: Engine,
    username: str,
    full_name: str,
    role: Role,
    password: str,
    created_by: str,
    valid_from: date | None = None,
    valid_until: date | None = None,
    note: str = "",
    only_if_first: bool = False,
) -> Account:
    """A new account. Raises AccountError naming the field at fault. `only_if_first`: the first
    visit's administrator, refused once any account exists (two first visits at once make one)."""
    username = username.strip().lower()
    check_new_account(username, full_name, password, valid_from, valid_until)
    with engine.begin() as connection:
        if only_if_first and connection.execute(select(func.count()).select_from(account)).scalar_one():
            raise AccountError("username", "the first account exists already")
        if connection.execute(select(account.c.id).where(account.c.username == username)).first():
            raise AccountError("username", "this username is taken")
        values = {
            "username": username,
            "full_name": full_name.strip(),
            "role": role.value,
            "password_hash": HASHER.hash(password),
            "valid_from": valid_from,
            "valid_until": valid_until,
            "note": note.strip(),
            "created_at": now(),
            "created_by": created_by,
        }
        new_id = connection.execute(insert(account).values(**values)).inserted_primary_key[0]  # type: ignore[index]
    created = find(engine, int(new_id))
    assert created is not None
    return created


def check_new_account(
    username: str, full_name: str, password: str, valid_from: date | None, valid_until: date | None
) -> None:
    problem = username_problem(username)
    if problem:
        raise AccountError("username", problem)
    if not full_name.strip():
        raise AccountError("full_name", "a full name is needed (one person, one account)")
    problem = password_problem(password, username)
    if problem:
        raise AccountError("password", problem)
    check_validity(valid_from, valid_until)


def check_validity(valid_from: date | None, valid_until: date | None) -> None:
    if valid_from and valid_until and valid_until < valid_from:
        raise AccountError("valid_until", "the end of validity comes before its start")


def change(engine: Engine, account_id: int, changes: AccountChanges, at: datetime | None = None) -> Account:
    """Apply an administrator's changes; a role change or a disabling ends the account's sessions.
    Raises AccountError naming the field at fault, among them when the change would leave no active
    administrator (nobody could manage the accounts or the settings any more)."""
    current = find(engine, account_id)
    if current is None:
        raise AccountError("username", "no such account")
    values = changed_values(current, changes)
    if values:
        ends_sessions = "role" in values or values.get("disabled") is True
        with engine.begin() as connection:
            check_an_administrator_stays(connection, current, values, at or now())
            statement = update(account).where(account.c.id == account_id).values(**values)
            if ends_sessions:
                statement = statement.values(session_version=account.c.session_version + 1)
            connection.execute(statement)
    changed = find(engine, account_id)
    assert changed is not None
    return changed


LAST_ADMINISTRATOR = "this is the last active administrator: make another administrator first"


def active_administrator(candidate: Account, at: datetime) -> bool:
    """An administrator who can log in today (not disabled, within the validity period)."""
    return candidate.role == Role.ADMINISTRATOR and standing_refusal(candidate, at) is None


def check_an_administrator_stays(
    connection: Connection, current: Account, values: dict[str, object], at: datetime
) -> None:
    """Raise AccountError when `values` would take away the last active administrator."""
    after = replace(current, **{key: Role(value) if key == "role" else value for key, value in values.items()})  # type: ignore[arg-type]
    if not active_administrator(current, at) or active_administrator(after, at):
        return
    rows = connection.execute(
        select(account).where(account.c.role == Role.ADMINISTRATOR.value, account.c.id != current.id)
    ).all()
    if not any(active_administrator(account_from_row(row), at) for row in rows):
        field = "role" if "role" in values else "disabled" if "disabled" in values else "valid_until"
        raise AccountError(field, LAST_ADMINISTRATOR)


def changed_values(current: Account, changes: AccountChanges) -> dict[str, object]:
    values: dict[str, object] = {}
    if changes.full_name is not None and changes.full_name.strip() != current.full_name:
        if not changes.full_name.strip():
            raise AccountError("full_name", "a full name is needed (one person, one account)")
        values["full_name"] = changes.full_name.strip()
    if changes.role is not None and changes.role != current.role:
        values["role"] = changes.role.value
    values.update(validity_values(current, changes))
    if changes.disabled is not None and changes.disabled != current.disabled:
        values["disabled"] = changes.disabled
    if changes.note is not None and changes.note.strip() != current.note:
        values["note"] = changes.note.strip()
    return values


def validity_values(current: Account, changes: AccountChanges) -> dict[str, object]:
    """The validity columns that change (none when the period stays the same)."""
    if changes.clear_validity:
        valid_from, valid_until = None, None
    elif changes.set_validity:
        valid_from, valid_until = changes.valid_from, changes.valid_until
    elif changes.valid_from is not None or changes.valid_until is not None:
        valid_from = changes.valid_from or current.valid_from
        valid_until = changes.valid_until or current.valid_until
    else:
        return {}
    check_validity(valid_from, valid_until)
    if (valid_from, valid_until) == (current.valid_from, current.valid_until):
        return {}
    return {"valid_from": valid_from, "valid_until": valid_until}


def differences(before: Account, after: Account) -> tuple[tuple[str, str], ...]:
    """(attribute, new value) of what an administrator changed, for the audit trail (no secrets:
    an account holds none but its password hash, which is never compared here)."""
    names = ("full_name", "role", "valid_from", "valid_until", "disabled", "note")
    return tuple((name, shown(getattr(after, name))) for name in names if getattr(before, name) != getattr(after, name))


def shown(value: object) -> str:
    """An attribute's value in the audit trail's words: dates in ISO form, '' for none."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def set_password(engine: Engine, account_id: int, password: str) -> None:
    """A new password (checked against the rule); ends the account's other sessions."""
    current = find(engine, account_id)
    if current is None:
        raise AccountError("username", "no such account")
    problem = password_problem(password, current.username)
    if problem:
        raise AccountError("password", problem)
    with engine.begin() as connection:
        connection.execute(
            update(account)
            .where(account.c.id == account_id)
            .values(password_hash=HASHER.hash(password), session_version=account.c.session_version + 1)
        )


def change_own_password(engine: Engine, account_id: int, current_password: str, new_password: str) -> None:
    """The holder of an account changes its password: the current one is needed. Raises
    AccountError ("current_password" when it is wrong, "password" when the new one is too weak)."""
    with engine.connect() as connection:
        row = connection.execute(select(account.c.password_hash).where(account.c.id == account_id)).first()
    if row is None:
        raise AccountError("username", "no such account")
    if not password_matches(row.password_hash, current_password):
        raise AccountError("current_password", "the current password is wrong")
    if new_password == current_password:
        raise AccountError("password", "the new password must differ from the current one")
    set_password(engine, account_id, new_password)


def note_login(engine: Engine, account_id: int) -> None:
    """A session opened without a password check (the first visit's administrator, just created)."""
    with engine.begin() as connection:
        connection.execute(update(account).where(account.c.id == account_id).values(last_login_at=now()))


def unlock(engine: Engine, account_id: int) -> None:
    """An administrator lifts a lock: the failure count starts again."""
    with engine.begin() as connection:
        connection.execute(update(account).where(account.c.id == account_id).values(failed_logins=0, locked_until=None))


def end_sessions(engine: Engine, account_id: int) -> None:
    """Every session cookie of this account stops working (logout everywhere)."""
    with engine.begin() as connection:
        connection.execute(
            update(account).where(account.c.id == account_id).values(session_version=account.c.session_version + 1)
        )


def authenticate(engine: Engine, username: str, password: str, address: str, at: datetime | None = None) -> LoginResult:
    """Check a login attempt from `address`; counts failures and locks per account and per address."""
    at = at or now()
    with engine.begin() as connection:
        waiting = address_locked_until(connection, address, at)
        if waiting:
            return LoginResult(None, LoginRefusal.ADDRESS_LOCKED, wait_until=waiting)
        row = connection.execute(select(account).where(account.c.username == username.strip().lower())).first()
        found = account_from_row(row) if row else None
        if found is not None and found.locked(at):
            return LoginResult(found, LoginRefusal.ACCOUNT_LOCKED, wait_until=found.locked_until)
        password_hash = row.password_hash if row else None
        if not password_matches(password_hash, password) or found is None:
            return failure(connection, found, address, at)
        refusal = standing_refusal(found, at)
        if refusal:
            return LoginResult(found, refusal)
        return success(connection, found, password, password_hash)


def password_matches(password_hash: str | None, password: str) -> bool:
    """Whether `password` matches; an unknown account costs the same time as a known one."""
    try:
        return HASHER.verify(password_hash or UNKNOWN_ACCOUNT_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def standing_refusal(found: Account, at: datetime) -> LoginRefusal | None:
    today = at.date()
    if found.disabled:
        return LoginRefusal.DISABLED
    if found.valid_from and today < found.valid_from:
        return LoginRefusal.NOT_YET_VALID
    if found.valid_until and today > found.valid_until:
        return LoginRefusal.EXPIRED
    return None


def success(connection: Connection, found: Account, password: str, password_hash: str | None) -> LoginResult:
    values: dict[str, object] = {"failed_logins": 0, "locked_until": None, "last_login_at": now()}
    if password_hash and HASHER.check_needs_rehash(password_hash):
        values["password_hash"] = HASHER.hash(password)
    connection.execute(update(account).where(account.c.id == found.id).values(**values))
    return LoginResult(found, None)


def failure(connection: Connection, found: Account | None, address: str, at: datetime) -> LoginResult:
    address_lock = count_address_failure(connection, address, at)
    if found is None and address_lock is not None:
        return LoginResult(None, LoginRefusal.ADDRESS_LOCKED, just_locked=True, wait_until=address_lock)
    if found is None:
        return LoginResult(None, LoginRefusal.WRONG)
    failures = found.failed_logins + 1
    locked_until = lock_after(failures, at)
    connection.execute(
        update(account).where(account.c.id == found.id).values(failed_logins=failures, locked_until=locked_until)
    )
    if address_lock is not None:
        return LoginResult(found, LoginRefusal.ADDRESS_LOCKED, just_locked=True, wait_until=address_lock)
    if failures >= LOCK_AFTER_FAILURES:
        return LoginResult(found, LoginRefusal.ACCOUNT_LOCKED, just_locked=True, wait_until=locked_until)
    return LoginResult(found, LoginRefusal.WRONG, wait_until=locked_until)


def lock_after(failures: int, at: datetime) -> datetime | None:
    """No wait for the first failures, then a doubling wait, then locked until an administrator acts."""
    if failures >= LOCK_AFTER_FAILURES:
        return LOCKED_FOR_GOOD
    if failures >= DELAY_AFTER_FAILURES:
        delay: timedelta = FIRST_DELAY * 2 ** (failures - DELAY_AFTER_FAILURES)
        return at + delay
    return None


def address_locked_until(connection: Connection, address: str, at: datetime) -> datetime | None:
    row = connection.execute(select(login_throttle.c.locked_until).where(login_throttle.c.address == address)).first()
    locked_until = as_utc(row.locked_until) if row else None
    return locked_until if locked_until and locked_until > at else None


def count_address_failure(connection: Connection, address: str, at: datetime) -> datetime | None:
    """One more failure from `address`; returns when the address may try again if this one locked it."""
    row = connection.execute(select(login_throttle).where(login_throttle.c.address == address)).first()
    if row is None:
        connection.execute(insert(login_throttle).values(address=address, failures=1, last_failure_at=at))
        return None
    recent = as_utc(row.last_failure_at) > at - ADDRESS_WINDOW
    failures = row.failures + 1 if recent else 1
    locked_until = at + ADDRESS_WINDOW if failures >= ADDRESS_FAILURES else None
    connection.execute(
        update(login_throttle)
        .where(login_throttle.c.address == address)
        .values(failures=0 if locked_until else failures, last_failure_at=at, locked_until=locked_until)
    )
    return locked_until
