"""What the console's tests share beyond fixtures: the test password, a recorder keeping audit events
in memory, and logging in through the real login form (with its CSRF token)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from flask.testing import FlaskClient

from appliance.audit.events import AuditEvent

PASSWORD = "Correct-Horse-42"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


@dataclass
class Events:
    """A recorder keeping the events in memory, for the tests to read."""

    recorded: list[AuditEvent] = field(default_factory=list)

    def record(self, event: AuditEvent) -> None:
        self.recorded.append(event)

    def of(self, code: str) -> list[AuditEvent]:
        return [event for event in self.recorded if event.event.code == code]


def csrf_token(client: FlaskClient, path: str) -> str:
    page = client.get(path)
    found = CSRF.search(page.get_data(as_text=True))
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def log_in(client: FlaskClient, username: str, password: str = PASSWORD) -> None:
    token = csrf_token(client, "/login")
    answer = client.post("/login", data={"username": username, "password": password, "csrf_token": token})
    assert answer.status_code == 302, answer.get_data(as_text=True)
