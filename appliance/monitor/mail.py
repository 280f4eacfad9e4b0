"""Mails from the box to the practice and its contractor, through the relay of `mail` in the
configuration (on the box, the local Postfix that forwards to the practice's relay). Alerts, the
daily digest, the test alert of the console: plain French text, never patient data."""

from __future__ import annotations

import smtplib
import socket
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from appliance.config import Config

TIMEOUT_SECONDS = 20


class MailError(Exception):
    """The mail could not be handed to the relay (none configured, refused, unreachable)."""


def send(config: Config, subject: str, body: str, now: datetime) -> None:
    """Hand one mail to the relay for every recipient of `config.mail`, or raise MailError."""
    if not config.mail.enabled:
        raise MailError("no mail relay or no recipient configured (mail.relay_host, mail.recipients)")
    message = compose(config, subject, body, now)
    try:
        with smtplib.SMTP(config.mail.relay_host, config.mail.relay_port, timeout=TIMEOUT_SECONDS) as relay:
            relay.send_message(message)
    except (OSError, smtplib.SMTPException) as error:
        raise MailError(f"relay {config.mail.relay_host}:{config.mail.relay_port}: {error}") from error


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
