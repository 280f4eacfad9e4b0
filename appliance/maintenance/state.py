"""The tunnel's state: whether an administrator has opened it, until when, by whom and why. One small
JSON file, `<data_directory>/run/maintenance-tunnel.json`, that every party reads: the console
writes an opening and a closing, `appliance-tunnel` runs autossh while it says open, the worker
records the expiry, the monitor shows it. Written atomically (a temporary file fsynced, then renamed
over) under a lock file, so that a reader never sees half a file and two writers never lose each
other's change (a closing from the console while the worker records the expiry).

The file holds the last opening only; the history of openings is the audit trail's.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from appliance.config import Config

STATE_FILE = "maintenance-tunnel.json"
LOCK_FILE = "maintenance-tunnel.lock"
MINIMUM_HOURS = 1
MAXIMUM_HOURS = 72
CLOSED = "closed"  # by an administrator, at once
EXPIRED = "expired"  # its time was up
MOMENTS = ("opened_at", "until", "closed_at")


class StateError(Exception):
    """The state file cannot be read (not JSON, fields missing) or written."""


class AlreadyOpen(Exception):
    """An opening was asked while the tunnel is open."""


@dataclass(frozen=True)
class Opening:
    """One opening of the tunnel. `opened_by` is the console account (username), `opened_by_name`
    its full name; `address` the workstation it was asked from; `reason` why (required); `consent`
    that the practice's consent box was ticked. `closed_at` and `closed_because` (CLOSED, EXPIRED)
    once it is over; `closed_by` the account that closed it at once."""

    opened_by: str
    opened_by_name: str
    address: str
    reason: str
    consent: bool
    opened_at: datetime
    until: datetime
    closed_at: datetime | None = None
    closed_by: str = ""
    closed_because: str = ""

    def is_open(self, now: datetime) -> bool:
        """Open now: not closed and not past its end."""
        return self.closed_at is None and now < self.until

    def is_overdue(self, now: datetime) -> bool:
        """Past its end and not yet recorded as expired."""
        return self.closed_at is None and now >= self.until

    def remaining(self, now: datetime) -> timedelta:
        return max(self.until - now, timedelta(0)) if self.closed_at is None else timedelta(0)

    @property
    def hours(self) -> float:
        return (self.until - self.opened_at) / timedelta(hours=1)


def state_path(config: Config) -> Path:
    return config.storage.run_directory / STATE_FILE


def read_state(path: Path) -> Opening | None:
    """The last opening recorded in `path`, None when there never was one; raises StateError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise StateError(f"{path}: {error.strerror}") from error
    try:
        document = json.loads(text)
        return None if document.get("opening") is None else opening_of(document["opening"])
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise StateError(f"{path}: not a tunnel state ({type(error).__name__}: {error})") from error


def opening_of(fields: dict[str, Any]) -> Opening:
    moments = {name: datetime.fromisoformat(fields[name]) if fields.get(name) else None for name in MOMENTS}
    return Opening(**{**fields, **moments})


def write_state(path: Path, opening: Opening) -> None:
    """Replace the state file by one holding `opening`, atomically (readers see the old or the new)."""
    fields = {
        name: value.isoformat() if isinstance(value, datetime) else value for name, value in asdict(opening).items()
    }
    text = json.dumps({"opening": fields}, ensure_ascii=False, indent=1, sort_keys=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=".tunnel-", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o640)  # the tunnel's account reads it through the appliance group
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the state's lock (exclusive) for a read-change-write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def open_tunnel(path: Path, opening: Opening) -> Opening:
    """Record `opening` (its hours checked: 1 to 72); raises AlreadyOpen while another one runs,
    ValueError for a duration out of bounds or no reason."""
    if not timedelta(hours=MINIMUM_HOURS) <= opening.until - opening.opened_at <= timedelta(hours=MAXIMUM_HOURS):
        raise ValueError(f"between {MINIMUM_HOURS} and {MAXIMUM_HOURS} hours")
    if not opening.reason.strip() or not opening.consent:
        raise ValueError("a reason and the practice's consent are required")
    with locked(path):
        current = read_state(path)
        if current is not None and current.is_open(opening.opened_at):
            raise AlreadyOpen(f"open until {current.until.isoformat()}")
        write_state(path, opening)
    return opening


def close_tunnel(path: Path, closed_by: str, now: datetime) -> Opening | None:
    """Close the open tunnel at once; the opening closed, or None when none was open."""
    with locked(path):
        current = read_state(path)
        if current is None or not current.is_open(now):
            return None
        closed = replace(current, closed_at=now, closed_by=closed_by, closed_because=CLOSED)
        write_state(path, closed)
    return closed


def expire(path: Path, now: datetime) -> Opening | None:
    """Record the end of an opening whose time is up; the opening expired, or None when there was
    nothing to do (closed, still open, no state)."""
    with locked(path):
        current = read_state(path)
        if current is None or not current.is_overdue(now):
            return None
        expired = replace(current, closed_at=current.until, closed_because=EXPIRED)
        write_state(path, expired)
    return expired
