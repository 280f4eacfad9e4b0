"""Mails from the box to the practice and its contractor, through the relay of `mail` in the
configuration (on the box, the local Postfix that forwards to the practice's relay). Alerts, the
daily digest, the test alert of the console: plain French text, never patient data."""

from __future__ import annotations

import smtplib
import socket
import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from appliance.config import Config, MailConfig

TIMEOUT_SECONDS = 20


class MailError(Exception):
    """The mail could not be handed to the relay (none configured, refused, unreachable)."""


def send(config: Config, subject: str, body: str, now: datetime) -> None:
    """Hand one mail to the relay for every recipient of `config.mail`, or raise MailError."""
    if not config.mail.enabled:
        raise MailError("no mail relay or no recipient configured (mail.relay_host, mail.recipients)")
    message = compose(config, subject, body, now)
    try:
        with connect(config.mail) as relay:
            if config.mail.username:
                relay.login(config.mail.username, relay_password(config.mail))
            relay.send_message(message)
    except (OSError, smtplib.SMTPException) as error:
        raise MailError(f"relay {config.mail.relay_host}:{config.mail.relay_port}: {error}") from error


def connect(mail: MailConfig) -> smtplib.SMTP:
    """An SMTP connection to the relay, protected as `mail.security` says (the certificate checked)."""
    if mail.security == "tls":
        return smtplib.SMTP_SSL(
            mail.relay_host, mail.relay_port, timeout=TIMEOUT_SECONDS, context=ssl.create_default_context()
        )
    relay = smtplib.SMTP(mail.relay_host, mail.relay_port, timeout=TIMEOUT_SECONDS)
    if mail.security == "starttls":
        try:
            relay.starttls(context=ssl.create_default_context())
        except BaseException:
            relay.close()
            raise
    return relay


def relay_password(mail: MailConfig) -> str:
    """The relay password, read from its root-only file at each mail (it can change without a restart)."""
    try:
        return Path(mail.password_file).read_text(encoding="utf-8").strip()
    except OSError as error:
        raise MailError(f"mail.password_file {mail.password_file}: {error.strerror}") from error


def compose(config: Config, subject: str, body: str, now: datetime) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = f"[{config.site_name}] {subject}"
    message["From"] = sender(config)
    message["To"] = ", ".join(config.mail.recipients)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=socket.getfqdn() or "appliance")
    message.set_content(body, charset="utf-8")
    return message


def sender(config: Config) -> str:
    return config.mail.sender or f"pacs@{socket.getfqdn() or 'localhost'}"


def send_test_alert(config: Config, requested_by: str, now: datetime) -> None:
    """The console's "send a test alert": proves the relay and the recipients work (raises MailError)."""
    body = (
        f"Ceci est une alerte d'essai envoyée depuis la console du PACS « {config.site_name} » "
        f"à la demande de {requested_by}.\n\n"
        "Si vous la recevez, les alertes de santé du boîtier (disques, RAID, onduleur, services) "
        "vous parviendront aussi.\n"
    )
    send(config, "Alerte d'essai", body, now)
