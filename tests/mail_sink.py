"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps the mails it receives, for the health
alerts' tests; it can be stopped and started again on the same port (a relay that goes down)."""

from __future__ import annotations

import email
import email.policy
import threading
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from servers import free_port


class Keeper:
    """aiosmtpd handler: every message received, parsed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self.lock:
            self.messages.append(parsed)
        return "250 Message accepted for delivery"


class Login:
    """aiosmtpd authenticator accepting one user and password (AUTH PLAIN / LOGIN)."""

    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username, password
        self.accepted: list[str] = []

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        good = isinstance(data, LoginPassword) and data.login.decode() == self.username
        good = good and data.password.decode() == self.password
        if good:
            self.accepted.append(self.username)
        return AuthResult(success=good, handled=False)


class MailSink:
    """The SMTP server; `mails` are (subject, body) pairs in arrival order. With `login`, it asks
    for that user and password before it takes a mail (without TLS: loopback only)."""

    def __init__(self, login: Login | None = None) -> None:
        self.port = free_port()
        self.keeper = Keeper()
        self.login = login
        self.controller: Controller | None = None

    def start(self) -> MailSink:
        options: dict[str, Any] = {}
        if self.login is not None:
            options = {"authenticator": self.login, "auth_required": True, "auth_require_tls": False}
        self.controller = Controller(self.keeper, hostname="127.0.0.1", port=self.port, **options)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def messages(self) -> list[EmailMessage]:
        with self.keeper.lock:
            return list(self.keeper.messages)

    @property
    def mails(self) -> list[tuple[str, str]]:
        return [(str(message["Subject"]), body_of(message)) for message in self.messages]


def body_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")
